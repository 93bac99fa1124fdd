"""Helpers of the escalation tests: a Support prompt with rules, approved and labelled, and
application calls to it through the in-process gateway."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from core.catalog import labels, store, workflow
from core.catalog.escalation import EscalationRule
from core.catalog.spec import MessageSpec, ModelParams, PromptSpec, VariableSpec, VersionSpec
from core.gateway.call_state import Caller
from core.gateway.pipeline import GatewayRequest, PromptCall
from core.identity import key_auth, keys
from core.identity.people import team_by_name
from core.models.catalog import PromptVersion
from core.permissions import Actor

SYSTEM = Actor.system("test")
TOM, RAFAEL = "tom.becker@example.com", "rafael.gomez@example.com"
PROMPT = "refund-helper"
MONEY_RULE = EscalationRule("money-back", {"mentions": ["money"]}, "hold")
QUESTION = {"question": "Can I get my money back for order 1234?", "tier": "standard"}


def version(
    rules: tuple[EscalationRule, ...], note: str = "", system: str = "You answer refund questions."
) -> VersionSpec:
    return VersionSpec(
        messages=(
            MessageSpec("system", f"{system} The customer is on the {{{{ tier }}}} plan."),
            MessageSpec("user", "{{ question }}"),
        ),
        variables=(VariableSpec("question", "string"), VariableSpec("tier", "string")),
        model="gpt-4o-mini",
        params=ModelParams(temperature=0, max_tokens=200),
        change_note=note,
        escalation=rules,
    )


def approve_and_label(session, directory, version_id: int) -> None:
    workflow.submit(session=session, actor=directory.by_email(TOM), version_id=version_id)
    lead = directory.by_email(RAFAEL)
    workflow.approve(session=session, actor=lead, version_id=version_id, comment="Rules read right")
    labels.move_label(session=session, actor=lead, version_id=version_id)


def create_prompt(session, directory, rules: tuple[EscalationRule, ...], *, approve: bool = True) -> PromptVersion:
    created = store.create_prompt(
        session=session,
        actor=directory.by_email(TOM),
        prompt=PromptSpec(PROMPT, "Support", "Answer refund questions", "low", "internal"),
        version=version(rules),
    )
    if approve:
        approve_and_label(session, directory, created.id)
    return created


def key_caller(session, team: str = "Support") -> Caller:
    created = keys.create_key(session=session, actor=SYSTEM, team_id=team_by_name(session, team).id)
    return Caller.for_key(key_auth.authenticate(created.secret))


def call_prompt(gateway, caller: Caller, variables: dict[str, Any] | None = None, **body):
    return gateway.call(
        caller=caller,
        request=GatewayRequest(kind="chat", body=body, prompt=PromptCall(PROMPT, dict(variables or QUESTION))),
    )


def rows(session, model):
    session.rollback()
    return list(session.exec(select(model)).all())
