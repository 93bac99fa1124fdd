"""The review diff: field by field, a message's lines, whitespace-only changes named as such,
and nothing listed that did not change."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from core.catalog.diff import ADDED, CHANGED, REMOVED, WHITESPACE, version_changes
from core.catalog.spec import MessageSpec, ModelParams, VariableSpec, VersionSpec

BASE = VersionSpec(
    messages=(
        MessageSpec("system", "You answer questions about {{ product }}.\nBe brief.\nCite the KB."),
        MessageSpec("user", "{{ question }}"),
    ),
    variables=(VariableSpec("product", "string"), VariableSpec("question", "string")),
    model="gpt-4o-mini",
    params=ModelParams(temperature=0.2, max_tokens=200),
)


def test_one_changed_line_in_a_long_message_is_shown_as_that_line():
    new = replace(
        BASE,
        messages=(
            MessageSpec("system", "You answer questions about {{ product }}.\nBe brief and kind.\nCite the KB."),
            BASE.messages[1],
        ),
    )
    [change] = version_changes(BASE, new)
    assert (change.field, change.kind) == ("message 1 (system)", CHANGED)
    assert [line for line in change.lines if line[:1] in "+-"] == ["-Be brief.", "+Be brief and kind."]


def test_fields_params_variables_added_and_removed_are_named():
    new = replace(
        BASE,
        model="gpt-4o",
        params=ModelParams(temperature=0.2),
        variables=(VariableSpec("product", "string"), VariableSpec("tone", "string", "how formal")),
        messages=BASE.messages[:1],
    )
    found = {(c.field, c.kind, c.old, c.new) for c in version_changes(BASE, new)}
    assert found == {
        ("model", CHANGED, "gpt-4o-mini", "gpt-4o"),
        ("max_tokens", REMOVED, "200", ""),
        ("message 2 (user)", REMOVED, "{{ question }}", ""),
        ("variable question", REMOVED, "string", ""),
        ("variable tone", ADDED, "", "string: how formal"),
    }


def test_a_change_of_spaces_or_line_breaks_only_is_called_whitespace():
    reflowed = BASE.messages[0].content.replace("\n", " ").replace("brief.", "brief.  ")
    new = replace(BASE, messages=(MessageSpec("system", reflowed), BASE.messages[1]))
    [change] = version_changes(BASE, new)
    assert change.kind == WHITESPACE


def test_a_first_version_lists_its_model_and_messages_as_added():
    changes = version_changes(None, BASE)
    assert [(c.field, c.kind) for c in changes] == [
        ("model", ADDED),
        ("message 1 (system)", ADDED),
        ("message 2 (user)", ADDED),
    ]


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@given(_text, _text, st.sampled_from(["gpt-4o", "gpt-4o-mini"]))
def test_a_version_against_itself_has_no_changes_and_any_edit_is_found(system, user, model):
    version = replace(BASE, model=model, messages=(MessageSpec("system", system), MessageSpec("user", user)))
    assert version_changes(version, version) == []
    edited = replace(version, messages=(MessageSpec("system", system + " (edited)"), version.messages[1]))
    [change] = version_changes(version, edited)
    assert change.field == "message 1 (system)" and change.kind in (CHANGED, ADDED)
