"""Held requests: calls held by moderation and answers flagged by the output scan wait
here for a governance lead, who releases or denies each one with a comment.

The caller gets HTTP 202 with the held id and polls ``GET /v1/held/{id}``: ``pending``,
then ``denied`` (with the lead's comment) or ``released`` (with the answer).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import clock
from core.attention import AttentionItem
from core.audit.record import committing, record
from core.errors import InvalidTransition, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.models.gateway import HeldRequest
from core.paging import PAGE_SIZE, Page, keyset_page
from core.permissions import Actor, Permission, require

PENDING, RELEASED, DENIED = "pending", "released", "denied"


@dataclass(frozen=True)
class HeldView:
    public_id: str
    request_id: str
    team_id: int
    kind: str
    rule: str
    findings: list[dict[str, Any]]
    status: str
    created_at: datetime
    decided_at: datetime | None
    comment: str
    response: dict[str, Any] | None


def new_hold(
    *,
    team_id: int,
    request_id: str,
    kind: str,
    rule: str,
    findings: list[dict[str, Any]],
    response: dict[str, Any] | None = None,
) -> HeldRequest:
    """A pending hold, for the gateway to add to its settle transaction."""
    return HeldRequest(
        public_id=f"held_{uuid.uuid4().hex[:20]}",
        request_id=request_id,
        team_id=team_id,
        kind=kind,
        rule=rule,
        findings_json=json.dumps(findings),
        response_json=json.dumps(response) if response is not None else None,
    )


def held_page(
    session: Session, *, actor: Actor, decided: bool, before: int | None = None, limit: int = PAGE_SIZE
) -> Page[HeldView]:
    """A page of the held requests waiting for a decision (or, with `decided`, of those
    released or denied), newest first; pass the page's `older` as `before` for the next."""
    require(actor, Permission.REQUEST_REVIEW)
    status = col(HeldRequest.status)
    query = select(HeldRequest).where(status != PENDING if decided else status == PENDING)
    return keyset_page(session, query, col(HeldRequest.id), before=before, limit=limit, convert=_view)


def decide(*, session: Session, actor: Actor, public_id: str, release: bool, comment: str) -> HeldView:
    """Release or deny a held request; the comment is required and is what the caller reads."""
    require(actor, Permission.REQUEST_REVIEW)
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError("Say why: a comment is required to release or deny a held request")
    refuse_secrets(comment, field="the comment")
    held = _held(session, public_id)
    if held.status != PENDING:
        raise InvalidTransition(f"This request was already {held.status}")
    with committing(session):
        held.status = RELEASED if release else DENIED
        held.decided_by, held.decided_at, held.comment = actor.ref, clock.now(), comment[:2000]
        session.add(held)
        session.flush()
        record(
            session,
            actor=actor,
            action=f"held_request.{'release' if release else 'deny'}",
            target_type="held_request",
            target_id=held.public_id,
            team_id=held.team_id,
            before={"status": PENDING},
            after={"status": held.status, "request_id": held.request_id},
        )
    return _view(held)


def held_for_team(session: Session, *, team_id: int, public_id: str) -> HeldView:
    """What the calling team sees when it polls (another team's id is simply not found)."""
    held = _held(session, public_id)
    if held.team_id != team_id:
        raise NotFound(f"No held request {public_id!r}")
    return _view(held)


def attach_response(session: Session, *, public_id: str, response: dict[str, Any]) -> None:
    """Store the answer produced for a released input hold (the gateway calls this)."""
    held = _held(session, public_id)
    held.response_json = json.dumps(response)
    session.add(held)
    session.commit()


def pending_attention(session: Session, actor: Actor) -> list[AttentionItem]:
    if not actor.can(Permission.REQUEST_REVIEW):
        return []
    count = session.exec(select(func.count()).select_from(HeldRequest).where(HeldRequest.status == PENDING)).one()
    if not count:
        return []
    return [
        AttentionItem(
            title=f"{count} held request{'s' if count > 1 else ''} waiting for a decision",
            detail="Moderation holds and flagged answers",
            severity="warning",
            page="pages/held_requests.py",
        )
    ]


def _held(session: Session, public_id: str) -> HeldRequest:
    held = session.exec(select(HeldRequest).where(HeldRequest.public_id == public_id)).first()
    if held is None:
        raise NotFound(f"No held request {public_id!r}")
    return held


def _view(held: HeldRequest) -> HeldView:
    return HeldView(
        public_id=held.public_id,
        request_id=held.request_id,
        team_id=held.team_id,
        kind=held.kind,
        rule=held.rule,
        findings=json.loads(held.findings_json or "[]"),
        status=held.status,
        created_at=held.created_at,
        decided_at=held.decided_at,
        comment=held.comment,
        response=json.loads(held.response_json) if held.response_json else None,
    )
