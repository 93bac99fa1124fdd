"""The escalation rule language: what each condition catches, the strongest action winning,
and bad rules refused with a message naming the rule (file schema, static checks, import)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.catalog.checks import static_checks
from core.catalog.escalation import Answer, EscalationRule, compile_rules, compiled_for
from core.catalog.files import dump_prompt_file, load_prompt_text
from core.catalog.spec import ModelParams, PromptSpec, content_hash
from core.catalog.yaml_io import CatalogValidationError
from core.errors import ValidationError
from tests.escalation_support import version

SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number"},
        "meta": {"type": "object", "properties": {"score": {"type": "number"}}},
    },
}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}


def fired(when, answer: Answer, schema=SCHEMA):
    result = compile_rules([EscalationRule("r", when, "hold")], schema).evaluate(answer)
    return result is not None


def ans(text="", **kw) -> Answer:
    return Answer(text=text, **kw)


@pytest.mark.parametrize(
    ("when", "answer", "expected"),
    [
        ({"fails_schema": True}, ans('{"answer": "ok", "confidence": 0.9}'), False),
        ({"fails_schema": True}, ans('{"answer": "ok"}'), True),
        ({"fails_schema": True}, ans("not json at all"), True),
        ({"matches": r"\bguarantee"}, ans("We guarantee a refund"), True),
        ({"matches": r"\bguarantee"}, ans("No promises"), False),
        ({"not_matches": r"^Dear "}, ans("Hi there"), True),
        ({"not_matches": r"^Dear "}, ans("Dear Ana"), False),
        ({"field": "confidence", "below": 0.6}, ans('{"confidence": 0.4}'), True),
        ({"field": "confidence", "below": 0.6}, ans('{"confidence": 0.6}'), False),
        ({"field": "confidence", "below": 0.6}, ans('{"answer": "no confidence given"}'), True),
        ({"field": "confidence", "below": 0.6}, ans('{"confidence": "high"}'), True),
        ({"field": "confidence", "above": 0.99}, ans('{"confidence": 1}'), True),
        ({"field": "meta.score", "above": 5}, ans('{"meta": {"score": 3}}'), False),
        ({"mentions": ["lawsuit", "attorney"]}, ans("My ATTORNEY will call"), True),
        ({"mentions": ["law"]}, ans("a lawsuit is not the word law-firm? yes it is: law"), True),
        ({"mentions": ["law"]}, ans("lawsuits only"), False),
        ({"mentions": ["a.b"]}, ans("axb"), False),  # terms are words, not patterns
        ({"tool_calls": ["issue_refund"]}, ans(tool_names=["lookup", "issue_refund"]), True),
        ({"tool_calls": ["issue_refund"]}, ans(tool_names=["lookup"]), False),
        ({"longer_than_tokens": 50}, ans(output_tokens=51), True),
        ({"longer_than_tokens": 50}, ans(output_tokens=50), False),
        ({"risk_flags": ["pii"]}, ans(risk_flags=["pii.email"]), True),
        ({"risk_flags": ["moderation"]}, ans(risk_flags=["pii.email"]), False),
        ({"variable": "tier", "equals": "enterprise"}, ans(variables={"tier": "enterprise"}), True),
        ({"variable": "tier", "in": ["gold", "platinum"]}, ans(variables={"tier": "standard"}), False),
        ({"variable": "tier", "equals": "x"}, ans(variables={}), False),
    ],
)
def test_each_condition_catches_what_it_says(when, answer, expected):
    assert fired(when, answer) is expected


def test_the_strongest_action_wins_and_every_fired_rule_is_named():
    rules = [
        EscalationRule("queue-legal", {"mentions": ["refund"]}, "review_after"),
        EscalationRule("too-long", {"longer_than_tokens": 3}, "hold"),
        EscalationRule("never-fires", {"mentions": ["zebra"]}, "block"),
        EscalationRule("also-long", {"longer_than_tokens": 2}, "hold"),
    ]
    result = compile_rules(rules, None).evaluate(ans("a refund", output_tokens=9))
    assert result is not None
    assert (result.action, result.rule, result.rules) == ("hold", "too-long", ("queue-legal", "too-long", "also-long"))
    assert compile_rules(rules, None).evaluate(ans("nothing", output_tokens=1)) is None


def test_rules_are_compiled_once_per_version_and_again_when_the_id_names_other_rules():
    rules = [EscalationRule("r", {"mentions": ["x"]}, "hold")]
    first = compiled_for(("test", 1), rules, None)
    assert compiled_for(("test", 1), [EscalationRule("r", {"mentions": ["x"]}, "hold")], None) is first
    other = compiled_for(("test", 1), [EscalationRule("other", {"mentions": ["y"]}, "block")], None)
    assert other is not first and other.evaluate(ans("y")) is not None and other.evaluate(ans("x")) is None


@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=4))
def test_mentions_never_raises_and_agrees_with_a_plain_word_search(text, terms):
    result = fired({"mentions": terms}, ans(text))
    import re

    expected = any(re.search(r"(?<!\w)" + re.escape(t.strip()) + r"(?!\w)", text, re.IGNORECASE) for t in terms)
    assert result is expected


@given(st.one_of(st.text(max_size=50), st.integers(), st.none(), st.lists(st.integers(), max_size=3)))
def test_a_threshold_never_raises_whatever_the_model_answers(value):
    text = json.dumps({"confidence": value}) if not isinstance(value, str) else value
    fired({"field": "confidence", "below": 0.5}, ans(text))


# ---- bad rules are refused, naming the rule ------------------------------------------------


def _findings(rules, **params):
    spec = version(tuple(rules))
    if params:
        spec = version(tuple(rules)).__class__(**{**spec.__dict__, "params": ModelParams(**params)})
    return [f.message for f in static_checks(spec) if f.code == "escalation-rule"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            EscalationRule("bad-regex", {"matches": "(unclosed"}, "hold"),
            "escalation rule 'bad-regex': matches: the regular expression does not parse",
        ),
        (
            EscalationRule("two-things", {"mentions": ["a"], "longer_than_tokens": 3}, "hold"),
            "escalation rule 'two-things': 'when' has 2 conditions",
        ),
        (EscalationRule("nothing", {}, "hold"), "escalation rule 'nothing': 'when' needs exactly one condition"),
        (
            EscalationRule("no-schema", {"field": "confidence", "below": 0.5}, "hold"),
            "escalation rule 'no-schema': reads the field 'confidence' but the version has no response_format",
        ),
        (
            EscalationRule("who", {"variable": "plan", "equals": "x"}, "hold"),
            "escalation rule 'who': reads the variable 'plan', which the version does not declare",
        ),
        (
            EscalationRule("tools", {"tool_calls": ["refund"]}, "hold"),
            "escalation rule 'tools': watches calls to refund, which the version does not define",
        ),
        (EscalationRule("act", {"mentions": ["a"]}, "escalate"), "escalation rule 'act': action must be one of"),
        (
            EscalationRule("bound", {"field": "x", "below": "low"}, "hold"),
            "escalation rule 'bound': below takes a number",
        ),
    ],
)
def test_static_checks_refuse_a_bad_rule_naming_it(rule, message):
    found = _findings([rule])
    assert any(m.startswith(message) for m in found), found


def test_a_threshold_on_a_field_the_schema_lacks_is_refused_naming_the_rule():
    rules = [
        EscalationRule("fine", {"field": "confidence", "below": 0.5}, "hold"),
        EscalationRule("missing", {"field": "certainty", "below": 0.5}, "hold"),
        EscalationRule("nested", {"field": "meta.score", "above": 3}, "review_after"),
    ]
    found = _findings(rules, response_format=JSON_FORMAT)
    assert found == [
        "escalation rule 'missing': reads the field 'certainty', which the version's JSON schema does not have"
    ]


PROMPT_YAML = """
name: refund-helper
team: Support
purpose: Answer refund questions
risk_tier: low
data_classification: internal
model: gpt-4o-mini
variables:
  question: {type: string}
  tier: {type: string}
messages:
  - role: user
    content: "{{ question }} {{ tier }}"
escalation:
"""


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            "  - {name: loud, when: {matches: '(['}, action: hold}",
            "escalation rule 'loud': matches: the regular expression",
        ),
        (
            "  - {name: sure, when: {field: confidence, below: 0.5}, action: hold}",
            "escalation rule 'sure': reads the field 'confidence'",
        ),
        ("  - {name: Bad Name, when: {mentions: [x]}, action: hold}", "is not a valid rule name"),
        ("  - {name: odd, when: {shouts: true}, action: hold}", "odd"),
        ("  - {name: act, when: {mentions: [x]}, action: escalate}", "action"),
    ],
)
def test_a_prompt_file_with_a_bad_rule_is_refused(rules, message):
    with pytest.raises(CatalogValidationError) as caught:
        load_prompt_text(PROMPT_YAML + rules + "\n", "refund-helper.yaml")
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_rules_survive_a_file_round_trip_and_move_the_content_hash():
    rules = (
        EscalationRule("legal", {"mentions": ["lawsuit"]}, "review_after"),
        EscalationRule("gold", {"variable": "tier", "in": ["gold"]}, "hold"),
    )
    spec = version(rules)
    prompt = PromptSpec("refund-helper", "Support", "Answer refund questions", "low", "internal")
    _prompt, loaded = load_prompt_text(dump_prompt_file(prompt, spec), "x.yaml")
    assert loaded.escalation == rules and content_hash(loaded) == content_hash(spec)
    assert content_hash(version(())) != content_hash(spec)
    assert content_hash(version(rules[:1])) != content_hash(spec)


# ---- the fast schema check agrees with jsonschema ------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["", "a", "ok"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=8,
)
_leaf_schemas = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["string", "number", "integer", "boolean", "null", "array", "object", ["string", "null"]]
        ),
        "enum": st.lists(st.sampled_from([1, 1.0, True, "a", None, 0]), min_size=1, max_size=3),
        "minimum": st.integers(-3, 3),
        "maximum": st.integers(-3, 3),
        "minLength": st.integers(0, 2),
        "maxItems": st.integers(0, 2),
    },
)
_schemas = st.recursive(
    _leaf_schemas,
    lambda inner: (
        st.fixed_dictionaries(
            {"type": st.just("object")},
            optional={
                "properties": st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
                "required": st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True),
                "additionalProperties": st.booleans() | inner,
            },
        )
        | st.fixed_dictionaries({"type": st.just("array"), "items": inner})
    ),
    max_leaves=5,
)


@given(_schemas, _json_values)
def test_the_fast_schema_check_agrees_with_jsonschema(schema, value):
    import jsonschema

    from core.catalog.answer_schema import compile_subset

    check = compile_subset(schema)
    assert check is not None
    assert check(value) is jsonschema.Draft202012Validator(schema).is_valid(value)


def test_a_schema_beyond_the_subset_falls_back_to_jsonschema():
    from core.catalog.answer_schema import compile_subset

    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
    assert compile_subset(schema) is None
    assert fired({"fails_schema": True}, ans('{"code": "abc"}'), schema) is True
    assert fired({"fails_schema": True}, ans('{"code": "ABC"}'), schema) is False


# ---- the editor's form keeps, edits and checks the rules -------------------------------------


def _edited(base, escalation):
    from core.catalog import editor

    return editor.build_version(
        prompt=PromptSpec("refund-helper", "Support", "Answer refund questions", "low", "internal"),
        model=base.model,
        temperature=None,
        max_tokens=None,
        messages=[(m.role, m.content) for m in base.messages],
        variables=editor.variables_text(base),
        change_note="edit",
        base=base,
        escalation=escalation,
    )[1]


def test_the_editor_keeps_edits_and_refuses_rules_naming_them():
    from core.catalog import editor

    base = version((EscalationRule("legal", {"mentions": ["lawsuit"]}, "review_after"),))
    assert _edited(base, None).escalation == base.escalation  # not shown: carried over
    assert _edited(base, editor.escalation_text(base)).escalation == base.escalation  # shown, unchanged
    assert _edited(base, "  ").escalation == ()  # cleared
    changed = _edited(base, "- {name: vip, when: {variable: tier, equals: gold}, action: hold}\n")
    assert changed.escalation == (EscalationRule("vip", {"variable": "tier", "equals": "gold"}, "hold"),)
    with pytest.raises(CatalogValidationError) as caught:
        _edited(base, "- {name: vip, when: {variable: plan, equals: gold}, action: hold}\n")
    assert "escalation rule 'vip': reads the variable 'plan'" in str(caught.value.problems)
    with pytest.raises(ValidationError, match="YAML list"):
        _edited(base, "name: vip\n")


def test_a_reviewer_sees_each_rule_added_changed_or_removed_by_name():
    from core.catalog.diff import ADDED, CHANGED, REMOVED, version_changes

    before = version(
        (
            EscalationRule("legal", {"mentions": ["lawsuit"]}, "review_after"),
            EscalationRule("vip", {"variable": "tier", "equals": "gold"}, "hold"),
        )
    )
    after = version(
        (
            EscalationRule("legal", {"mentions": ["lawsuit"]}, "hold"),
            EscalationRule("long", {"longer_than_tokens": 500}, "review_after"),
        )
    )
    changes = {c.field: c.kind for c in version_changes(before, after)}
    assert changes == {"escalation rule legal": CHANGED, "escalation rule vip": REMOVED, "escalation rule long": ADDED}
    first = {c.field: c.kind for c in version_changes(None, before)}
    assert first["escalation rule vip"] == ADDED
