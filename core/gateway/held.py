"""Held requests: calls held by moderation and answers flagged by the output scan wait
here for a governance lead, who releases or denies each one with a comment.

The caller gets HTTP 202 with the held id and polls ``GET /v1/held/{id}``: ``pending``,
then ``denied`` (with the lead's comment) or ``released`` (with the answer).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import clock
from core.attention import AttentionItem
from core.audit.query import actor_names
from core.audit.record import committing, record
from core.errors import InvalidTransition, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.models.gateway import GatewayCall, HeldRequest, StoredPayload
from core.models.identity import Team
from core.models.keys import ApiKey
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
    # What a lead judges by, resolved for the page (empty where nothing is known).
    team: str = ""
    caller: str = ""  # the calling key's name, or the person who called
    request_text: str = ""  # as stored under the team's payload policy (redacted)
    decided_by: str = ""  # a name, for decided ones


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
    page = keyset_page(session, query, col(HeldRequest.id), before=before, limit=limit, convert=_view)
    return replace(page, items=_with_details(session, page.items, {h.decided_by for h in page.items}))


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


def _with_details(session: Session, items: list[HeldView], deciders: set[str]) -> list[HeldView]:
    """The page's holds with names instead of ids and the request's stored text, in four
    reads for the whole page."""
    if not items:
        return items
    request_ids = [h.request_id for h in items]
    calls = {
        c.request_id: c for c in session.exec(select(GatewayCall).where(col(GatewayCall.request_id).in_(request_ids)))
    }
    payloads = dict(
        session.exec(
            select(StoredPayload.request_id, StoredPayload.request_json).where(
                col(StoredPayload.request_id).in_(request_ids)
            )
        ).all()
    )
    key_ids = {c.key_id for c in calls.values() if c.key_id}
    keys = {k.id: k for k in session.exec(select(ApiKey).where(col(ApiKey.id).in_(key_ids)))} if key_ids else {}
    teams = dict(session.exec(select(Team.id, Team.name)).all())
    people = actor_names(session, {c.actor for c in calls.values()} | deciders)
    result = []
    for held in items:
        call = calls.get(held.request_id)
        key = keys.get(call.key_id) if call and call.key_id else None
        if key is not None:
            caller = key.label or f"API key {key.prefix}…"
        else:
            caller = people.get(call.actor, "") if call else ""
        decided_ref = held.decided_by
        result.append(
            replace(
                held,
                team=teams.get(held.team_id, ""),
                caller=caller,
                request_text=request_text(payloads.get(held.request_id)),
                decided_by=people.get(decided_ref, decided_ref) if decided_ref else "",
            )
        )
    return result


def request_text(request_json: str | None) -> str:
    """The words a caller sent, one message per line (`user: ...`), from a stored request
    body of any endpoint (chat messages, a Responses input, embedding inputs)."""
    if not request_json:
        return ""
    try:
        body = json.loads(request_json)
    except ValueError:
        return request_json
    if isinstance(body, dict) and isinstance(body.get("request"), dict):
        body = body["request"]  # stored with its findings: {"request": ..., "findings": ...}
    if not isinstance(body, dict):
        return str(body)
    lines: list[str] = []
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            lines.append(f"{message.get('role', 'user')}: {_content_text(message.get('content'))}")
    if "input" in body:
        source = body["input"]
        if isinstance(source, list):
            for item in source:
                if isinstance(item, dict):
                    lines.append(f"{item.get('role', 'user')}: {_content_text(item.get('content'))}")
                else:
                    lines.append(_content_text(item))
        else:
            lines.append(_content_text(source))
    return "\n".join(lines)


def _content_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_content_text(part.get("text") if isinstance(part, dict) else part) for part in content)
    return str(content)


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
        decided_by=held.decided_by or "",
    )
