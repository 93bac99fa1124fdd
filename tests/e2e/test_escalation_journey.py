"""A production call trips a prompt's escalation rule and is held; a governance lead denies
it on the Held requests page and adds it to the test set; the prompt's page shows the case."""

from __future__ import annotations

import json

import httpx
from sqlmodel import select

from core import db
from core.catalog import labels, store, workflow
from core.catalog.escalation import EscalationRule
from core.catalog.spec import MessageSpec, ModelParams, PromptSpec, VariableSpec, VersionSpec
from core.identity import people as identity
from core.models.experiments import TestSetCase
from tests.e2e.conftest import assert_no_errors, choose, open_page, settle, sign_in
from tests.e2e.test_application_journey import create_key

PROMPT = "refund-journey"


def add_prompt_with_a_hold_rule(server) -> None:
    with db.session(db.make_engine(server.database_url)) as session:
        tom = identity.actor_for_email(session, "tom.becker@example.com")
        rafael = identity.actor_for_email(session, "rafael.gomez@example.com")
        created = store.create_prompt(
            session=session,
            actor=tom,
            prompt=PromptSpec(PROMPT, "Support", "Answer refund questions", "low", "internal"),
            version=VersionSpec(
                messages=(MessageSpec("system", "You answer refund questions."), MessageSpec("user", "{{ question }}")),
                variables=(VariableSpec("question", "string"),),
                model="gpt-4o-mini",
                params=ModelParams(max_tokens=200),
                escalation=(EscalationRule("money-back", {"mentions": ["money"]}, "hold"),),
            ),
        )
        workflow.submit(session=session, actor=tom, version_id=created.id)
        workflow.approve(session=session, actor=rafael, version_id=created.id, comment="Holds money talk")
        labels.move_label(session=session, actor=rafael, version_id=created.id)


def test_a_held_answer_is_denied_and_becomes_a_test_case(page, server):
    add_prompt_with_a_hold_rule(server)
    answer = httpx.post(
        f"{server.base}/v1/prompts/{PROMPT}/completions",
        headers={"Authorization": f"Bearer {create_key(server)}"},
        json={"variables": {"question": "Can I get my money back for order 1234?"}},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    held_id = answer.json()["id"]

    sign_in(page, "Rafael Gómez")
    open_page(page, "Held requests")
    page.get_by_text(held_id).first.wait_for()
    page.locator(f".st-key-comment_{held_id} input").fill("Never promise money back")
    page.locator(f".st-key-deny_{held_id} button").click()
    settle(page)
    page.get_by_text("Denied").first.wait_for()
    choose(page, "Make a test case from a decided answer", held_id)
    page.locator(".st-key-decided_case button").click()
    settle(page)
    page.get_by_text("Added to the prompt's test set").wait_for()
    assert_no_errors(page, "Held requests")

    with db.session(db.make_engine(server.database_url)) as session:
        [case] = session.exec(select(TestSetCase).where(TestSetCase.source_json.contains(held_id))).all()
    assert json.loads(case.assertions_json) == [{"type": "not-contains", "value": "money"}]

    open_page(page, "Catalog")
    choose(page, "Show prompt", PROMPT)
    page.get_by_role("tab", name="Catches").click()
    settle(page)
    page.get_by_text("has not been run on the 1 case(s) made from production").wait_for()
    assert_no_errors(page, "Catalog")
