"""Escalation rules in the gateway (hold, review after, block), the review-after queue and
test cases made from catches, with retention following the source; and the whole loop."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import select

from core import db
from core.catalog import store
from core.catalog.escalation import EscalationRule
from core.errors import Conflict, InvalidTransition, PermissionDenied, ValidationError
from core.experiments import catches, testset_store
from core.experiments import production_cases as cases
from core.gateway import policies
from core.gateway.call_state import Caller
from core.gateway.errors import GuardrailBlocked, HeldForReview, InvalidRequest
from core.gateway.feedback import record_feedback
from core.models.audit import AuditEvent
from core.models.budgets import BudgetHold, UsageRecord
from core.models.escalation import EscalationCatch
from core.models.experiments import TestSet, TestSetCase
from core.models.gateway import GatewayCall, HeldRequest
from core.retention import privacy, rules
from tests.escalation_support import (
    MONEY_RULE,
    QUESTION,
    RAFAEL,
    SYSTEM,
    TOM,
    call_prompt,
    create_prompt,
    key_caller,
    rows,
)

MONEY = MONEY_RULE


@pytest.fixture
def caller(session, directory, gateway) -> Caller:
    policies.forget()
    return key_caller(session)


def actions(session, name: str) -> list[AuditEvent]:
    session.rollback()
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == name)).all())


def test_a_hold_rule_answers_202_and_the_held_answer_waits_for_a_lead(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY,))
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    [held] = rows(session, HeldRequest)
    assert held.public_id == caught.value.held_id and held.rule == "escalation.money-back" and held.kind == "output"
    assert "money" in json.loads(held.response_json)["choices"][0]["message"]["content"]
    [call] = rows(session, GatewayCall)
    assert (call.status, call.http_status, call.rule, call.prompt_version) == (
        "held",
        202,
        "escalation.money-back",
        "v1",
    )
    [catch] = rows(session, EscalationCatch)
    assert (catch.action, catch.review_status, catch.request_id) == ("hold", "", call.request_id)
    [event] = [e for e in actions(session, "gateway.call") if e.target_id == call.request_id]
    assert json.loads(event.after_json)["rule"] == "escalation.money-back"
    # Billed like any answer (the model ran); nothing left reserved.
    assert rows(session, UsageRecord)[0].cost_micro > 0 and rows(session, BudgetHold) == []


def test_a_question_that_trips_no_rule_is_answered_as_usual(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY,))
    result = call_prompt(gateway, caller, {"question": "Where is my parcel?", "tier": "standard"})
    assert "parcel" in result.body["choices"][0]["message"]["content"]
    assert rows(session, EscalationCatch) == [] and rows(session, GatewayCall)[0].status == "ok"


def test_a_block_rule_refuses_the_answer_names_the_rule_and_still_bills_it(session, directory, gateway, caller):
    create_prompt(session, directory, (EscalationRule("no-money-talk", {"mentions": ["money"]}, "block"),))
    with pytest.raises(GuardrailBlocked, match="no-money-talk") as caught:
        call_prompt(gateway, caller)
    assert caught.value.rule == "escalation.no-money-talk"
    [call] = rows(session, GatewayCall)
    assert (call.status, call.http_status) == ("blocked", 400) and call.cost_micro > 0
    assert rows(session, BudgetHold) == [] and rows(session, UsageRecord)[0].cost_micro == call.cost_micro
    assert [c.action for c in rows(session, EscalationCatch)] == ["block"]


def test_the_strongest_rule_wins_and_variable_and_risk_flag_rules_read_the_request(session, directory, gateway, caller):
    create_prompt(
        session,
        directory,
        (
            EscalationRule("gold-customers", {"variable": "tier", "in": ["gold"]}, "review_after"),
            EscalationRule("personal-data", {"risk_flags": ["pii"]}, "hold"),
        ),
    )
    call_prompt(gateway, caller, {"question": "Where is my parcel?", "tier": "gold"})
    with pytest.raises(HeldForReview):
        call_prompt(gateway, caller, {"question": "Mail me at ana@example.com please", "tier": "gold"})
    assert [(c.rule, c.action) for c in rows(session, EscalationCatch)] == [
        ("escalation.gold-customers", "review_after"),
        ("escalation.personal-data", "hold"),
    ]


def test_a_prompt_with_rules_refuses_to_stream_to_an_application(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY,))
    with pytest.raises(InvalidRequest, match="without stream"):
        call_prompt(gateway, caller, stream=True)


def test_a_person_trying_the_prompt_is_answered_and_nothing_is_held(session, directory, gateway):
    from core.identity.people import team_by_name

    create_prompt(session, directory, (MONEY,))
    tom = directory.by_email(TOM)
    result = call_prompt(gateway, Caller(actor=tom, team_id=team_by_name(session, "Support").id))
    assert "money" in result.body["choices"][0]["message"]["content"]
    assert rows(session, HeldRequest) == [] and rows(session, EscalationCatch) == []
    # The playground says what production would have done with the answer.
    from core.experiments import playground
    from core.experiments.runner import VariantChoice

    version_id = store.versions_of(session, store.prompt_by_name(session, "refund-helper").id)[0].id
    [answer] = playground.run(session=session, actor=tom, variants=[VariantChoice(version_id)], variables=QUESTION)
    assert answer.escalation == ("hold", "money-back") and "money" in answer.text
    assert rows(session, HeldRequest) == []


# ---- review after delivery ---------------------------------------------------------------


def test_review_after_delivers_then_a_lead_marks_it_wrong_with_what_it_should_have_said(
    session, directory, gateway, caller
):
    create_prompt(session, directory, (EscalationRule("refund-talk", {"mentions": ["money"]}, "review_after"),))
    result = call_prompt(gateway, caller)
    assert "money" in result.body["choices"][0]["message"]["content"]  # delivered
    lead, tom = directory.by_email(RAFAEL), directory.by_email(TOM)
    with pytest.raises(PermissionDenied):
        catches.review_queue(session, actor=tom)
    [queued] = catches.review_queue(session, actor=lead)
    assert queued.rule == "escalation.refund-talk" and queued.answer and "money" in queued.answer
    with pytest.raises(ValidationError, match="should have said"):
        catches.mark(session, actor=lead, catch_id=queued.id, correct=False, expected="  ")
    with pytest.raises(PermissionDenied):
        catches.mark(session, actor=tom, catch_id=queued.id, correct=True)
    reviewed = catches.mark(session, actor=lead, catch_id=queued.id, correct=False, expected="Refunds take 5 days")
    assert reviewed.review_status == "wrong" and catches.review_queue(session, actor=lead) == []
    with pytest.raises(InvalidTransition):
        catches.mark(session, actor=lead, catch_id=queued.id, correct=True)
    [event] = actions(session, "escalation.review")
    assert json.loads(event.after_json)["review_status"] == "wrong" and event.actor == lead.ref
    # The verdict becomes the case's expectation.
    case = cases.add_case(session, actor=lead, source="catch", ref=str(queued.id))
    assert json.loads(case.assertions_json) == [{"type": "icontains", "value": "Refunds take 5 days"}]
    counted = catches.catches_per_version(session, actor=tom, prompt_name="refund-helper")
    assert [(c["version"], c["action"], c["catches"]) for c in counted] == [("v1", "review_after", 1)]


def test_under_a_no_payload_policy_the_reviewer_sees_no_answer_and_no_case_can_be_made(
    session, directory, gateway, caller
):
    from core.identity.people import team_by_name

    rules.set_payload_storage_mode(
        session=session, actor=SYSTEM, team_id=team_by_name(session, "Support").id, mode="none"
    )
    create_prompt(session, directory, (EscalationRule("refund-talk", {"mentions": ["money"]}, "review_after"),))
    call_prompt(gateway, caller)
    lead = directory.by_email(RAFAEL)
    [queued] = catches.review_queue(session, actor=lead)
    assert queued.answer is None
    with pytest.raises(ValidationError, match="payload policy kept no input"):
        cases.add_case(session, actor=lead, source="catch", ref=str(queued.id))


# ---- from a catch to a test case, and retention following the source ------------------------


def test_a_case_from_a_held_request_carries_redacted_variables_and_a_link_and_dies_with_its_payload(
    session, directory, gateway, caller
):
    create_prompt(session, directory, (MONEY,))
    question = {"question": "I want my money back, write to ana@example.com", "tier": "standard"}
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller, question, user="end-user-7")
    lead, tom = directory.by_email(RAFAEL), directory.by_email(TOM)
    with pytest.raises(PermissionDenied):
        cases.add_case(session, actor=tom, source="held", ref=caught.value.held_id)
    case = cases.add_case(session, actor=lead, source="held", ref=caught.value.held_id)
    variables = json.loads(case.variables_json)
    assert "ana@example.com" not in variables["question"] and "money back" in variables["question"]
    assert json.loads(case.assertions_json) == [{"type": "not-contains", "value": "money"}]
    assert json.loads(case.source_json)["ref"] == caught.value.held_id
    with pytest.raises(Conflict, match="already"):
        cases.add_case(session, actor=lead, source="held", ref=caught.value.held_id)
    [listed] = cases.production_cases(session, actor=tom, prompt_name="refund-helper")
    assert listed["source"]["kind"] == "held"
    [event] = actions(session, "testset.case.from_production")
    assert json.loads(event.after_json)["source"]["request_id"] == case.source_request_id
    # Erasing the end user's data deletes the stored payload, and the case made from it.
    privacy.erase(session=session, actor=lead, end_user="end-user-7")
    assert rows(session, TestSetCase) == []


def test_retention_deleting_the_payload_by_sql_takes_the_case_with_it(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY,))
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    case = cases.add_case(session, actor=directory.by_email(RAFAEL), source="held", ref=caught.value.held_id)
    # An engineer edits the set (a YAML round trip replaces its cases): the link survives.
    tom = directory.by_email(TOM)
    exported = testset_store.export_yaml(session, actor=tom, testset_id=case.testset_id)
    testset_store.import_yaml(
        session=session,
        actor=tom,
        prompt_id=store.prompt_by_name(session, "refund-helper").id,
        text=exported,
        name="from-production",
    )
    [kept] = rows(session, TestSetCase)
    assert (kept.source_request_id, kept.source_json) == (case.source_request_id, case.source_json)
    session.commit()
    with db.get_engine().begin() as connection:
        connection.execute(text("DELETE FROM stored_payload"))
    assert rows(session, TestSetCase) == []


def test_a_low_feedback_score_becomes_a_case_and_a_good_one_does_not(session, directory, gateway, caller):
    create_prompt(session, directory, (EscalationRule("never", {"mentions": ["zebra"]}, "hold"),))
    low = call_prompt(gateway, caller)
    good = call_prompt(gateway, caller, {"question": "Where is my parcel?", "tier": "standard"})
    for result, score in ((low, 0), (good, 0.9)):
        record_feedback(
            session=session,
            actor=caller.actor,
            key_id=caller.key_id,
            team_id=caller.team_id,
            request_id=result.request_id,
            score=score,
        )
    tom = directory.by_email(TOM)
    # The low score queued the answer for review after delivery; the good one did not.
    [queued] = catches.review_queue(session, actor=directory.by_email(RAFAEL))
    assert (queued.request_id, queued.rule, queued.action) == (low.request_id, "feedback", "feedback")
    [event] = [e for e in actions(session, "gateway.feedback") if e.target_id == low.request_id]
    assert json.loads(event.after_json)["queued_for_review"] is True
    with pytest.raises(ValidationError, match="low feedback"):
        cases.add_case(session, actor=tom, source="feedback", ref=good.request_id)
    case = cases.add_case(session, actor=tom, source="feedback", ref=low.request_id)
    assert json.loads(case.assertions_json)[0]["type"] == "not-contains"
    with pytest.raises(ValidationError, match="one of"):
        cases.add_case(session, actor=tom, source="gossip", ref=low.request_id)


def test_retention_of_the_payload_classes_removes_the_case_and_the_catch_with_the_payload(
    session, directory, gateway, caller
):
    from datetime import timedelta

    from core import clock
    from core.retention import enforce
    from tests.retention_support import Clock, written

    create_prompt(session, directory, (MONEY_RULE,))
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    lead = directory.by_email(RAFAEL)
    cases.add_case(session, actor=lead, source="held", ref=caught.value.held_id)
    session.commit()
    for klass in ("request_payloads", "response_payloads"):
        written(rules.set_rule, actor=lead, class_key=klass, period="1d", action="delete")
    Clock(clock.now() + timedelta(days=3))
    enforce.enforce(actor=lead)
    assert rows(session, TestSetCase) == [] and rows(session, EscalationCatch) == []
    assert [t.name for t in rows(session, TestSet)] == ["from-production"]  # the set stays, empty
