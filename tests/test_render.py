"""Rendering: declared variables only, of the declared type, inside the sandbox."""

import pytest

from core.catalog.render import render_messages
from core.catalog.spec import MessageSpec, VariableSpec, VersionSpec
from core.errors import ValidationError

GOOD = {"product": "Northwind Cloud", "question": "How do I export?", "attempt": 2}


def with_template(content, variables=()):
    return VersionSpec(messages=(MessageSpec("user", content),), variables=tuple(variables), model="gpt-4o-mini")


def test_renders_every_message(simple_version):
    assert render_messages(simple_version, GOOD) == [
        {"role": "system", "content": "You answer questions about Northwind Cloud."},
        {"role": "user", "content": "How do I export? (attempt 2)"},
    ]


def test_missing_variable_is_named_and_never_blank(simple_version):
    with pytest.raises(ValidationError, match="missing variable 'question'"):
        render_messages(simple_version, {"product": "X", "attempt": 1})


def test_undeclared_variable_is_named(simple_version):
    with pytest.raises(ValidationError, match="undeclared variable 'customer_email'"):
        render_messages(simple_version, {**GOOD, "customer_email": "a@b.example"})


@pytest.mark.parametrize("bad", ["2", True, 2.5, None])
def test_wrong_type_is_named(simple_version, bad):
    with pytest.raises(ValidationError, match="variable 'attempt' must be integer"):
        render_messages(simple_version, {**GOOD, "attempt": bad})


def test_list_variables_loop_over_mappings():
    version = with_template(
        "{% for s in snippets %}[{{ s.id }}] {{ s.title }}\n{% endfor %}",
        [VariableSpec("snippets", "list")],
    )
    rendered = render_messages(version, {"snippets": [{"id": 1, "title": "Reset"}, {"id": 2, "title": "2FA"}]})
    assert rendered[0]["content"] == "[1] Reset\n[2] 2FA\n"


def test_undefined_attribute_is_an_error_not_a_blank():
    version = with_template("{{ s.missing }}", [VariableSpec("s", "list")])
    with pytest.raises(ValidationError, match="message 0"):
        render_messages(version, {"s": []})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__init__.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_refused(template):
    version = with_template(template, [VariableSpec("x", "string")])
    with pytest.raises(ValidationError, match="refused by the template sandbox|unsafe"):
        render_messages(version, {"x": "hello"})


def test_huge_repetition_is_refused():
    version = with_template("{{ x * 100000000 }}", [VariableSpec("x", "string")])
    with pytest.raises(ValidationError, match="sandbox"):
        render_messages(version, {"x": "abc"})


def test_template_cannot_mutate_inputs():
    version = with_template("{{ items.append(1) }}", [VariableSpec("items", "list")])
    items = []
    with pytest.raises(ValidationError):
        render_messages(version, {"items": items})
    assert items == []


def test_syntax_error_names_message_and_line():
    version = VersionSpec(
        messages=(MessageSpec("system", "fine"), MessageSpec("user", "line one\n{{ question }")),
        variables=(VariableSpec("question", "string"),),
        model="gpt-4o-mini",
    )
    with pytest.raises(ValidationError, match=r"message 1 \(user\), line 2"):
        render_messages(version, {"question": "q"})


def test_no_html_escaping():
    version = with_template("{{ x }}", [VariableSpec("x", "string")])
    assert render_messages(version, {"x": "<b>&</b>"})[0]["content"] == "<b>&</b>"
