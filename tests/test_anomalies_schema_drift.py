"""Drift of the JSON-schema failure rate: the answers the gateway checks against their prompt
version's schema (counted per hour, version and model), and the detector on crafted counts:
fires naming the change, not below its minimum of checked answers, not for a small rise,
not for a fall, and not twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from openai.types.chat import ChatCompletion
from sqlalchemy import insert, text

from core import db
from core.anomalies import alerts, history, run
from core.catalog import store
from core.catalog.escalation import EscalationRule
from core.catalog.spec import MessageSpec, ModelParams, PromptSpec, VariableSpec, VersionSpec
from core.db import table_of
from core.gateway import policies, schema_checks
from core.gateway.call_state import Caller, CallState
from core.gateway.errors import GuardrailBlocked
from core.models.anomalies import SchemaCheckRollup
from core.permissions import Actor
from tests.anomaly_support import HOUR, NOW, TARGET, at_now, concurrently, team_id
from tests.escalation_support import TOM, approve_and_label, call_prompt, key_caller
from tests.gateway_support import client, new_key

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "shipping", "other"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "urgent"],
    "additionalProperties": False,
}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "triage", "strict": True, "schema": SCHEMA}}
PROMPT = "ticket-triage"


# ---- the check itself -------------------------------------------------------------------------


def _call(check) -> CallState:
    call = CallState("req_x", Caller(actor=Actor.system("t"), team_id=1), "chat", 0.0)
    call.answer_check = check
    return call


def _chat(content):
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.mark.parametrize(
    ("response", "valid"),
    [
        (_chat('{"category": "billing", "urgent": false}'), True),
        (_chat('{"category": "refunds", "urgent": false}'), False),  # not in the enum
        (_chat('{"category": "billing"'), False),  # cut off: not JSON
        (_chat(None), False),  # a refusal has no content
        ({"choices": []}, False),
        ({"object": "chat.completion.stream", "complete": True, "content": '{"category":"other","urgent":true}'}, True),
        ({"object": "chat.completion.stream", "complete": False, "content": '{"categ'}, None),  # the client left
        (None, None),
    ],
)
def test_an_answer_is_checked_against_its_versions_schema(response, valid):
    check = schema_checks.compiled_check(9_001, JSON_FORMAT)
    assert schema_checks.validity(_call(check), response) is valid


def test_only_json_schema_formats_are_checked_and_each_version_compiles_once():
    assert schema_checks.compiled_check(9_002, {"type": "json_object"}) is None
    assert schema_checks.compiled_check(9_002, None) is None
    assert schema_checks.compiled_check(None, JSON_FORMAT) is None
    first = schema_checks.compiled_check(9_003, JSON_FORMAT)
    assert schema_checks.compiled_check(9_003, JSON_FORMAT) is first
    # A schema beyond the fast subset falls back to jsonschema, same answers.
    patterned = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^a"}}}
    check = schema_checks.compiled_check(9_004, patterned)
    assert check is not None and check("abc") and not check("b")
    # The same id naming another schema (a reset database) compiles again.
    assert schema_checks.compiled_check(9_004, JSON_FORMAT) is not check


# ---- the detector on crafted counts ---------------------------------------------------------


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


def _checks(team: int, *, version: str, start, hours: int, checked: int, failed: int, model="gpt-4o-mini") -> None:
    rows = [
        dict(
            hour=start + i * HOUR,
            team_id=team,
            prompt_name=PROMPT,
            prompt_version=version,
            model=model,
            checked=checked,
            failed=failed,
        )
        for i in range(hours)
    ]
    with db.write_session() as s:
        s.execute(insert(table_of(SchemaCheckRollup)), rows)
        s.commit()


def _before(support: int) -> None:
    _checks(support, version="v3", start=TARGET - timedelta(days=3), hours=48, checked=10, failed=0)
    _checks(support, version="v3", start=TARGET - timedelta(days=3, hours=-48), hours=1, checked=100, failed=2)


def _open(session):
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return [v for v in views if v.detector == "schema_drift"]


def test_a_new_version_failing_its_schema_more_often_fires_once_naming_the_change(session, support):
    _before(support)
    _checks(support, version="v4", start=TARGET - 2 * HOUR, hours=3, checked=10, failed=3)
    at_now()
    run.detect(actor=run.SYSTEM)
    [alert] = _open(session)
    assert alert.series == f"prompt:{PROMPT}:v4:gpt-4o-mini"
    assert alert.sentence == (
        "Prompt `ticket-triage`: 30.0% of answers failed its JSON schema after the change of version v3 → v4, "
        "against 0.3% before, over 30 checked answers up to the hour to 03:00 UTC on Tue 24 Nov."
    )
    assert alerts.DETECTORS["schema_drift"].concerns == "governance_lead"
    # Its chart: the prompt's failing share hour by hour, the step at the change.
    past = history.alert_history(session, actor=run.SYSTEM, alert_id=alert.id)
    by_hour = dict(zip(past.hours, past.values, strict=True))
    assert past.unit == "rate" and by_hour[TARGET] == pytest.approx(0.3)
    assert by_hour[TARGET - timedelta(days=1)] == pytest.approx(0.02) and by_hour[TARGET - 3 * HOUR] == 0.0
    # More failing hours of the same version, detected later: the same alert.
    _checks(support, version="v4", start=TARGET + HOUR, hours=2, checked=10, failed=5)
    run.detect(actor=run.SYSTEM, now=NOW + 3 * HOUR)
    assert len(_open(session)) == 1


def test_a_model_change_is_named(session, support):
    _before(support)
    _checks(support, version="v3", model="gpt-4.1-nano", start=TARGET - HOUR, hours=2, checked=15, failed=6)
    at_now()
    run.detect(actor=run.SYSTEM)
    [alert] = _open(session)
    assert "after the change of model `gpt-4o-mini` → `gpt-4.1-nano`" in alert.sentence


def test_below_the_minimum_of_checked_answers_it_does_not_fire(session, support):
    _before(support)
    _checks(support, version="v4", start=TARGET, hours=1, checked=19, failed=19)
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_a_small_rise_or_a_fall_does_not_fire(session, support):
    _checks(support, version="v3", start=TARGET - timedelta(days=3), hours=48, checked=10, failed=1)  # 10 %
    _checks(support, version="v4", start=TARGET - HOUR, hours=2, checked=20, failed=3)  # 15 %: +5 points
    _checks(support, version="v5", model="gpt-4.1-nano", start=TARGET, hours=1, checked=40, failed=0)  # better
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_sensitivity_raises_the_rise_needed(session, support):
    from core.anomalies.tuning import set_sensitivity

    set_sensitivity(session, actor=run.SYSTEM, detector="schema_drift", team_id=support, factor=4)
    _before(support)
    _checks(support, version="v4", start=TARGET - HOUR, hours=2, checked=50, failed=15)  # +30 points, under 40
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


# ---- what the gateway counts, through the real HTTP endpoint and the official SDK -----------


def _version(max_tokens: int, rules=(), note: str = "") -> VersionSpec:
    return VersionSpec(
        messages=(MessageSpec("system", "Triage the ticket."), MessageSpec("user", "{{ ticket }}")),
        variables=(VariableSpec("ticket", "string"),),
        model="gpt-4o-mini",
        params=ModelParams(temperature=0.3, max_tokens=max_tokens, response_format=JSON_FORMAT),
        escalation=rules,
        change_note=note,
    )


def _prompt(session, directory, max_tokens: int, rules=()) -> int:
    created = store.create_prompt(
        session=session,
        actor=directory.by_email(TOM),
        prompt=PromptSpec(PROMPT, "Support", "Triage tickets", "low", "internal"),
        version=_version(max_tokens, rules),
    )
    approve_and_label(session, directory, created.id)
    return created.prompt_id


def _counts(session) -> list[tuple]:
    session.rollback()
    return [
        tuple(r)
        for r in session.execute(
            text(
                "SELECT prompt_name, prompt_version, model, SUM(checked), SUM(failed) FROM schema_check_rollup "
                "GROUP BY prompt_name, prompt_version, model ORDER BY prompt_version"
            )
        )
    ]


def test_concurrent_calls_are_counted_per_version_checked_and_failed(server, gateway, session, directory):
    policies.forget()
    prompt_id = _prompt(session, directory, max_tokens=300)
    key = new_key(session)
    sdk = client(server, key)

    def ask(index: int) -> None:
        answer = sdk.post(
            f"/prompts/{PROMPT}/completions",
            body={"variables": {"ticket": f"My parcel {index} is late"}},
            cast_to=ChatCompletion,
        )
        assert answer.choices[0].message.content

    concurrently(12, ask)
    # v2 leaves the answer 4 tokens: cut off, never valid JSON.
    v2 = store.create_version(
        session=session,
        actor=directory.by_email(TOM),
        prompt_id=prompt_id,
        version=_version(max_tokens=4, note="Shorter answers"),
    )
    approve_and_label(session, directory, v2.id)
    concurrently(8, ask)
    assert _counts(session) == [(PROMPT, "v1", "gpt-4o-mini", 12, 0), (PROMPT, "v2", "gpt-4o-mini", 8, 8)]


def test_an_answer_blocked_for_failing_its_schema_is_counted(session, directory, gateway):
    policies.forget()
    _prompt(session, directory, max_tokens=4, rules=(EscalationRule("broken-json", {"fails_schema": True}, "block"),))
    with pytest.raises(GuardrailBlocked):
        call_prompt_named(gateway, key_caller(session))
    assert _counts(session) == [(PROMPT, "v1", "gpt-4o-mini", 1, 1)]


def test_calls_without_a_json_schema_are_not_counted(session, directory, gateway):
    from tests.escalation_support import create_prompt

    policies.forget()
    create_prompt(session, directory, ())
    call_prompt(gateway, key_caller(session))
    assert _counts(session) == []


def call_prompt_named(gateway, caller):
    from core.gateway.pipeline import GatewayRequest, PromptCall

    return gateway.call(
        caller=caller, request=GatewayRequest(kind="chat", body={}, prompt=PromptCall(PROMPT, {"ticket": "Refund?"}))
    )


def test_a_persons_call_is_not_counted(session, directory, gateway):
    # A draft tried in the playground is no change of what the prompt answers in production.
    policies.forget()
    _prompt(session, directory, max_tokens=4)
    tom = directory.by_email(TOM)
    call_prompt_named(gateway, Caller(actor=tom, team_id=team_id(session, "Support")))
    assert _counts(session) == []
