"""The review-after queue: answers a prompt version's escalation rule delivered and queued.

A catch is a call a version's rule held, blocked or queued for review after delivery
(``escalation_catch``, written by the gateway with the call). Reviewers (governance leads)
mark a queued answer correct or wrong, saying what it should have said; each verdict is
audited. Catches are counted per version and day for the prompt's page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.db import saved_id
from core.errors import InvalidTransition, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.models.escalation import EscalationCatch
from core.models.gateway import StoredPayload
from core.permissions import Actor, Permission, require

PENDING, CORRECT, WRONG = "pending", "correct", "wrong"


@dataclass(frozen=True)
class CatchView:
    id: int
    request_id: str
    prompt_name: str
    prompt_version: str
    rule: str
    action: str
    created_at: datetime
    review_status: str
    expected: str
    answer: str | None  # the stored answer, as the team's payload policy kept it (None: not kept)


def review_queue(session: Session, *, actor: Actor, pending: bool = True, limit: int = 50) -> list[CatchView]:
    """Answers delivered and queued for review after (pending ones, or those reviewed), newest first."""
    require(actor, Permission.REQUEST_REVIEW)
    status = col(EscalationCatch.review_status)
    query = select(EscalationCatch).where(status == PENDING if pending else status.in_((CORRECT, WRONG)))
    rows = session.exec(query.order_by(col(EscalationCatch.id).desc()).limit(limit)).all()
    return [_view(session, row) for row in rows]


def mark(session: Session, *, actor: Actor, catch_id: int, correct: bool, expected: str = "") -> CatchView:
    """A reviewer's verdict on a delivered answer; a wrong one says what it should have said."""
    require(actor, Permission.REQUEST_REVIEW)
    expected = (expected or "").strip()
    if not correct and not expected:
        raise ValidationError("Say what the answer should have said: it becomes the test case's expectation")
    refuse_secrets(expected, field="what it should have said")
    row = catch_by_id(session, catch_id)
    if row.review_status != PENDING:
        raise InvalidTransition(f"This answer was already reviewed ({row.review_status or 'not queued'})")
    with committing(session):
        row.review_status = CORRECT if correct else WRONG
        row.expected, row.reviewed_by, row.reviewed_at = expected[:4000], actor.ref, clock.now()
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="escalation.review",
            target_type="escalation_catch",
            target_id=saved_id(row),
            team_id=row.team_id,
            before={"review_status": PENDING},
            after={"review_status": row.review_status, "request_id": row.request_id, "rule": row.rule},
        )
    return _view(session, row)


def catches_per_version(session: Session, *, actor: Actor, prompt_name: str) -> list[dict[str, Any]]:
    """Per version and day: how many answers each action caught (held, blocked, reviewed after)."""
    require(actor, Permission.CATALOG_READ)
    table = EscalationCatch.__table__.c  # type: ignore[attr-defined]
    day = func.date(table.created_at)
    rows = session.connection().execute(
        select(table.prompt_version, day, table.action, func.count())
        .where(table.prompt_name == prompt_name)
        .group_by(table.prompt_version, day, table.action)
        .order_by(day, table.prompt_version)
    )
    return [{"version": r[0], "day": str(r[1]), "action": r[2], "catches": r[3]} for r in rows]


def catch_by_id(session: Session, catch_id: int) -> EscalationCatch:
    row = session.get(EscalationCatch, catch_id)
    if row is None:
        raise NotFound(f"No caught answer {catch_id}")
    return row


def answer_text(response_json: str | None) -> str:
    """The first choice's text of a stored chat answer ("" when there is none)."""
    if not response_json:
        return ""
    try:
        response = json.loads(response_json)
    except ValueError:
        return ""
    choices = response.get("choices") if isinstance(response, dict) else None
    if choices:
        return str((choices[0].get("message") or {}).get("content") or "")
    return ""


def _view(session: Session, row: EscalationCatch) -> CatchView:
    stored = session.get(StoredPayload, row.request_id)
    answer = answer_text(stored.response_json) if stored is not None and stored.response_json else None
    return CatchView(
        id=saved_id(row),
        request_id=row.request_id,
        prompt_name=row.prompt_name,
        prompt_version=row.prompt_version,
        rule=row.rule,
        action=row.action,
        created_at=row.created_at,
        review_status=row.review_status,
        expected=row.expected,
        answer=answer,
    )
