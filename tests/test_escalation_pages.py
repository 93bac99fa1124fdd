"""The pages of the loop, per role: answer review (leads), the held answer's "add to test
set", the prompt's catches in the catalog, and a version's results in the review queue."""

from __future__ import annotations

import json

import pytest

from core.catalog.escalation import EscalationRule
from core.gateway import policies
from core.gateway.errors import HeldForReview
from core.models.escalation import EscalationCatch
from core.models.experiments import TestSetCase
from core.permissions import Role
from tests.escalation_support import MONEY_RULE, RAFAEL, TOM, call_prompt, create_prompt, key_caller, rows
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

REVIEW_AFTER = EscalationRule("refund-talk", {"mentions": ["money"]}, "review_after")


@pytest.fixture
def caller(session, directory, gateway):
    policies.forget()
    return key_caller(session)


def table_with(at, column: str):
    """The page's table with this column (AppTest finds tables by position, not by key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def page(session, email: str, path: str):
    at = signed_in(session, email)
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def test_a_lead_marks_a_delivered_answer_wrong_and_adds_it_to_the_test_set(session, directory, gateway, caller):
    create_prompt(session, directory, (REVIEW_AFTER,))
    call_prompt(gateway, caller)
    [catch] = rows(session, EscalationCatch)
    at = page(session, RAFAEL, "pages/answer_review.py")
    assert "money" in at.text_area(key=f"answer_{catch.id}").value
    at.button(key=f"wrong_{catch.id}").click().run()
    assert any("should have said" in e for e in errors_of(at))  # nothing said yet: refused, named
    at.text_area(key=f"expected_{catch.id}").input("Refunds take five working days").run()
    at.button(key=f"wrong_{catch.id}").click().run()
    assert not errors_of(at) and "Marked wrong" in [s.value for s in at.success]
    assert rows(session, EscalationCatch)[0].review_status == "wrong"
    assert list(table_with(at, "verdict")["verdict"]) == ["wrong"]
    at.button(key="reviewed_case").click().run()
    [case] = rows(session, TestSetCase)
    assert json.loads(case.assertions_json) == [{"type": "icontains", "value": "Refunds take five working days"}]


@pytest.mark.parametrize("role", [Role.PROMPT_ENGINEER, Role.FINANCE, Role.AUDITOR, Role.ADMIN])
def test_only_reviewers_reach_answer_review(session, directory, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    with pytest.raises(ValueError):
        at.switch_page("pages/answer_review.py")


def test_a_held_answer_becomes_a_case_from_the_held_requests_page(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY_RULE,))
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    held_id = caught.value.held_id
    at = page(session, RAFAEL, "pages/held_requests.py")
    at.button(key=f"case_{held_id}").click().run()
    assert not errors_of(at)
    [case] = rows(session, TestSetCase)
    assert json.loads(case.source_json)["ref"] == held_id
    at.button(key=f"case_{held_id}").click().run()
    assert any("already" in e for e in errors_of(at))


def test_the_catalog_shows_catches_cases_and_the_review_queue_a_versions_results(session, directory, gateway, caller):
    create_prompt(session, directory, (MONEY_RULE,))
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    from core.experiments import production_cases as cases

    cases.add_case(session, actor=directory.by_email(RAFAEL), source="held", ref=caught.value.held_id)
    at = page(session, TOM, "pages/catalog.py")
    counted = table_with(at, "catches")
    assert list(counted["version"]) == ["v1"] and list(counted["action"]) == ["hold"]
    cases = table_with(at, "checks")
    assert list(cases["from"]) == ["held"] and "not-contains money" in cases["checks"][0]
    assert any("has not been run" in c.value for c in at.caption)
    # A new version in review: the queue says how it does on the production-born case.
    from core.catalog import store, workflow
    from tests.escalation_support import version

    first = rows(session, EscalationCatch)[0]
    assert first.prompt_version == "v1"
    prompt_id = store.prompt_by_name(session, "refund-helper").id
    second = store.create_version(
        session=session, actor=directory.by_email(TOM), prompt_id=prompt_id, version=version((), note="No rules")
    )
    workflow.submit(session=session, actor=directory.by_email(TOM), version_id=second.id)
    at = page(session, RAFAEL, "pages/review_queue.py")
    assert any("v2 has not been run on the 1 case(s) made from production" in c.value for c in at.caption)
