"""The audit trail API: every state change in core records one event with it.

`record()` adds the event to the caller's session, so it is committed, or rolled back,
together with the change it describes. It chains the event onto the log's head
(core.audit.chain), so nobody can change, delete, insert or reorder events unnoticed.
`committing()` is the one way services end a change: commit both, or neither.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlmodel import Session

from core import clock
from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.errors import ValidationError
from core.guardrails.fields import text_fields, with_texts
from core.guardrails.secrets import find_secrets, mask_secrets
from core.models.audit import AuditEvent
from core.permissions import Actor
from core.prebuilt import Prebuilt
from core.together import run_together

if TYPE_CHECKING:
    from core.audit.query import EventRow

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
    fields = prepare_event(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        team_id=team_id,
        before=before,
        after=after,
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
    _log_after_commit(session, seq, fields)
    return event


_INSERT_EVENTS = Prebuilt(insert(AuditEvent.__table__))  # every gateway batch chains its events with it


def record_rows(session: Session, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chain prepared events (`prepare_event`) onto the head, in order, in the session's transaction.

    One update of the head row for all of them (the hot row every writer takes turns on)
    and one INSERT; returns the events' column values. Fails inside the caller's change
    if the write fails, and a rollback gives every seq back (no gap).
    """
    if not events:
        return []
    connection = session.connection()  # the session's transaction; its Connection skips the ORM layer
    first, prev_hash = audit_chain.advance_head(connection, len(events))
    rows = []
    for seq, fields in enumerate(events, start=first):
        digest = audit_chain.event_hash(prev_hash=prev_hash, **fields)
        rows.append({"seq": seq, "prev_hash": prev_hash, "hash": digest, **fields})
        prev_hash = digest
    # The events and the head's new hash in one statement on PostgreSQL: the head is locked by
    # this transaction's advance above, and every batch waits for it until the commit.
    run_together(connection, [(_INSERT_EVENTS, rows), audit_chain.head_hash_update(prev_hash)])
    audit_checkpoints.note_events(session, first, first + len(rows) - 1)
    for row in rows:
        if row["action"] != "gateway.call":  # a call has its own line (core.ops.logs)
            _log_after_commit(session, row["seq"], row)
    return rows


# One log line per governance action, once it is committed (core.ops.logs formats it): what was
# done, by whom, to what; never the before/after payloads.
_action_log = logging.getLogger("quorum.audit")
_TO_LOG = "quorum_audit_lines"


def _log_after_commit(session: Session, seq: int, fields: dict[str, Any]) -> None:
    if _action_log.isEnabledFor(logging.INFO):
        session.info.setdefault(_TO_LOG, []).append(
            {
                "seq": seq,
                "action": fields["action"],
                "actor": fields["actor"],
                "target_type": fields["target_type"],
                "target_id": fields["target_id"],
                "team_id": fields["team_id"],
            }
        )


@sa_event.listens_for(Session, "after_commit")
def _log_committed(session: Session) -> None:
    for line in session.info.pop(_TO_LOG, ()):
        _action_log.info(line["action"], extra={"quorum": {"event": "audit", **line}})


@sa_event.listens_for(Session, "after_rollback")
def _forget_lines(session: Session) -> None:
    session.info.pop(_TO_LOG, None)


def prepare_event(
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | int,
    team_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> dict[str, Any]:
    """An event's column values before it is chained: checked, serialized, secrets masked.

    No database work, so a hot path builds it before taking the write lock and hands it
    to `record_rows` inside the transaction."""
    if not _ACTION.match(action):
        raise ValidationError(f"audit action {action!r} must be dotted lower-case, e.g. 'team.create'")
    if not target_type:
        raise ValidationError("audit event needs a target type")
    if any("\x00" in str(value) for value in (actor.ref, target_type, target_id)):
        # PostgreSQL refuses NUL in text, and on SQLite a stored NUL is what tampering looks like.
        raise ValidationError("audit event fields cannot contain NUL characters")
    return dict(
        event_id=str(uuid.uuid4()),
        occurred_at=clock.now(),
        actor=actor.ref,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        team_id=team_id,
        before_json=_without_secrets(canonical_json(before)),
        after_json=_without_secrets(canonical_json(after)),
    )


def _without_secrets(payload: str | None) -> str | None:
    """The payload with any credential in it masked: the audit log is kept for years and exported.

    Services keep secrets out of what they record (saves of text holding one are refused);
    this is the backstop for a value that slipped through. One scan of the serialized text
    (microseconds); only when it finds something is the value walked and re-serialized, so
    that masking never cuts across the JSON's quoting.
    """
    if payload is None or not find_secrets(payload):
        return payload
    value = json.loads(payload)
    found = [text_field for text_field in text_fields(value) if find_secrets(text_field.text)]
    value = with_texts(value, {f.path: mask_secrets(f.text) for f in found if not f.is_key})
    # Keys last and deepest first, so that renaming one never moves a path still to be masked.
    for key_field in sorted((f for f in found if f.is_key), key=lambda f: len(f.path), reverse=True):
        value = _with_key_masked(value, key_field.path)
    return canonical_json(value)


def _with_key_masked(value: Any, path: tuple) -> Any:
    if len(path) == 1:
        return {(mask_secrets(key) if key == path[0] else key): item for key, item in value.items()}
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _with_key_masked(value[path[0]], path[1:])
    return copy


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """Commit the change and its audit event together; roll both back on any error."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def recent_events(
    session: Session, *, actor: Actor, limit: int = 50, action_prefix: str | None = None
) -> list[EventRow]:
    """The newest events first, optionally those whose action starts with `action_prefix`."""
    from core.audit.query import AuditFilter, search  # imported here: it builds on this module

    action = None
    if action_prefix:
        action = action_prefix if action_prefix.endswith(".") else f"{action_prefix}*"
    return search(session, actor=actor, filters=AuditFilter(action=action), limit=limit).events
