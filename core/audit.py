"""The audit trail API: every state change in core records one event with it.

`record()` adds the event to the caller's session, so it is committed, or rolled back,
together with the change it describes. It chains the event onto the log's head
(core.audit_chain), so nobody can change, delete, insert or reorder events unnoticed. `committing()` is the one way services end a
change: commit both, or neither.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core import audit_chain, audit_checkpoints, clock
from core.errors import ValidationError
from core.models.audit import AuditEvent
from core.permissions import Actor, Permission, require

# Dotted, lower-case: "team.create", "prompt.version.approve".
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def canonical_json(value: Any) -> str | None:
    """The one serialization of before/after payloads: sorted keys, no spaces, UTC ISO times."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot put {type(value).__name__} in an audit event")


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | int,
    team_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Add an audit event to `session`'s transaction (flushed, not committed)."""
    if not _ACTION.match(action):
        raise ValidationError(f"audit action {action!r} must be dotted lower-case, e.g. 'team.create'")
    if not target_type:
        raise ValidationError("audit event needs a target type")
    fields = dict(
        event_id=str(uuid.uuid4()),
        occurred_at=clock.now(),
        actor=actor.ref,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        team_id=team_id,
        before_json=canonical_json(before),
        after_json=canonical_json(after),
    )
    # Locks the chain head until the caller's transaction ends: writers take turns here.
    seq, prev_hash = audit_chain.advance_head(session)
    digest = audit_chain.event_hash(prev_hash=prev_hash, **fields)
    event = AuditEvent(seq=seq, prev_hash=prev_hash, hash=digest, **fields)
    session.add(event)
    # Flush now so a failing audit write fails here, inside the caller's change.
    session.flush()
    audit_chain.set_head_hash(session, digest)
    audit_checkpoints.note_event(session, seq)
    return event


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """Commit the change and its audit event together; roll both back on any error."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


@dataclass(frozen=True)
class EventView:
    """An audit event as readers see it."""

    id: int
    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    team_id: int | None
    before: Any
    after: Any
    seq: int = 0


def recent_events(
    session: Session, *, actor: Actor, limit: int = 50, action_prefix: str | None = None
) -> list[EventView]:
    """The newest events first (the full browser with filters comes with the audit page)."""
    require(actor, Permission.AUDIT_READ)
    query = select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)
    if action_prefix:
        query = query.where(col(AuditEvent.action).startswith(action_prefix))
    return [_view(e) for e in session.exec(query)]


def _view(event: AuditEvent) -> EventView:
    return EventView(
        id=event.id or 0,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        actor=event.actor,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        team_id=event.team_id,
        before=json.loads(event.before_json) if event.before_json else None,
        after=json.loads(event.after_json) if event.after_json else None,
        seq=event.seq,
    )
