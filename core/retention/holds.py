"""Legal holds: records matching a hold are kept, whatever their retention says.

A hold names a case and an owner and any of: a team, a person, a prompt, a time range;
a record is held when it matches every condition given. Released holds stay on record
(who released them, when) and their records become eligible on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.db import get_or_not_found, saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.models.catalog import Prompt
from core.models.identity import Person, Team
from core.models.retention import LegalHold
from core.models.types import UtcDateTime
from core.permissions import Actor, Permission, require
from core.retention.kinds import RecordKind


def add_hold(
    *,
    session: Session,
    actor: Actor,
    case_name: str,
    owner_person_id: int,
    team_id: int | None = None,
    person_id: int | None = None,
    prompt_id: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> LegalHold:
    require(actor, Permission.RETENTION_MANAGE)
    case_name = (case_name or "").strip()
    if not case_name:
        raise ValidationError("A legal hold needs a case name")
    refuse_secrets(case_name, field="the case name")
    if len(case_name) > 120:
        raise ValidationError("A case name has at most 120 characters")
    if team_id is None and person_id is None and prompt_id is None and starts_at is None and ends_at is None:
        raise ValidationError("A legal hold needs a scope: a team, a person, a prompt or a time range")
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValidationError("The hold's time range ends before it starts")
    if session.get(Person, owner_person_id) is None:
        raise NotFound(f"No person with id {owner_person_id} to own the hold")
    for model, value, what in ((Team, team_id, "team"), (Person, person_id, "person"), (Prompt, prompt_id, "prompt")):
        if value is not None:
            get_or_not_found(session, model, value, what)
    hold = LegalHold(
        case_name=case_name,
        owner_person_id=owner_person_id,
        team_id=team_id,
        person_id=person_id,
        prompt_id=prompt_id,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor.ref,
    )
    with committing(session):
        session.add(hold)
        session.flush()
        record(
            session,
            actor=actor,
            action="retention.hold.add",
            target_type="legal_hold",
            target_id=saved_id(hold),
            team_id=team_id,
            after=_scope(hold),
        )
    return hold


def release_hold(*, session: Session, actor: Actor, hold_id: int) -> LegalHold:
    require(actor, Permission.RETENTION_MANAGE)
    hold = get_or_not_found(session, LegalHold, hold_id, "legal hold")
    if hold.released_at is not None:
        raise Conflict(f"Legal hold {hold_id} ({hold.case_name}) was already released")
    with committing(session):
        hold.released_at, hold.released_by = clock.now(), actor.ref
        session.add(hold)
        record(
            session,
            actor=actor,
            action="retention.hold.release",
            target_type="legal_hold",
            target_id=saved_id(hold),
            team_id=hold.team_id,
            before={"active": True},
            after={"active": False},
        )
    return hold


def active_holds(session: Session) -> list[LegalHold]:
    return list(session.exec(select(LegalHold).where(col(LegalHold.released_at).is_(None)).order_by(col(LegalHold.id))))


def all_holds(session: Session, *, actor: Actor) -> list[LegalHold]:
    require(actor, Permission.RETENTION_READ)
    return list(session.exec(select(LegalHold).order_by(col(LegalHold.id).desc())))


def holds_on_person(session: Session, person_id: int) -> list[LegalHold]:
    return [h for h in active_holds(session) if h.person_id == person_id]


def _scope(hold: LegalHold) -> dict[str, Any]:
    return {
        "case_name": hold.case_name,
        "owner_person_id": hold.owner_person_id,
        "team_id": hold.team_id,
        "person_id": hold.person_id,
        "prompt_id": hold.prompt_id,
        "starts_at": hold.starts_at,
        "ends_at": hold.ends_at,
    }


@dataclass(frozen=True)
class HeldFilter:
    """SQL that is true for a record NOT under any active hold, with its parameters."""

    sql: str
    params: dict[str, Any]


def not_held(kind: RecordKind, holds: list[LegalHold]) -> HeldFilter:
    """A condition excluding held records. A dimension the kind cannot tell is assumed to match:
    when in doubt, a record is kept."""
    clauses, params = [], {}
    for n, hold in enumerate(holds):
        held = held_by(kind, hold, n)
        clauses.append(f"NOT ({held.sql})")
        params.update(held.params)
    return HeldFilter(" AND ".join(clauses) or "TRUE", params)


def held_by(kind: RecordKind, hold: LegalHold, n: int = 0) -> HeldFilter:
    """A condition true for the records of `kind` that `hold` covers (every dimension it names)."""
    params: dict[str, Any] = {}
    parts = []
    if hold.team_id is not None and kind.team_sql:
        parts.append(f"{kind.team_sql} = :h{n}_team")
        params[f"h{n}_team"] = hold.team_id
    if hold.person_id is not None and kind.person_sql:
        parts.append(kind.person_sql.format(id=f"h{n}_pid", ref=f"h{n}_pref", sid=f"h{n}_psid"))
        params.update(
            {f"h{n}_pid": hold.person_id, f"h{n}_pref": f"person:{hold.person_id}", f"h{n}_psid": str(hold.person_id)}
        )
    if hold.prompt_id is not None and kind.prompt_sql:
        parts.append(kind.prompt_sql.format(id=f"h{n}_qid", sid=f"h{n}_qsid"))
        params.update({f"h{n}_qid": hold.prompt_id, f"h{n}_qsid": str(hold.prompt_id)})
    if hold.starts_at is not None:
        parts.append(f"{kind.time_column} >= :h{n}_from")
        params[f"h{n}_from"] = hold.starts_at
    if hold.ends_at is not None:
        parts.append(f"{kind.time_column} < :h{n}_to")
        params[f"h{n}_to"] = hold.ends_at
    # COALESCE: a NULL team (a system call) does not match a team hold, rather than making NOT(...) NULL.
    return HeldFilter("(" + (" AND ".join(f"COALESCE(({p}), FALSE)" for p in parts) or "TRUE") + ")", params)


def typed(statement: str, params: dict[str, Any]) -> TextClause:
    """SQL text whose datetime parameters go through UtcDateTime (SQLite stores naive UTC text)."""
    clause = text(statement)
    stamps = [bindparam(k, type_=UtcDateTime()) for k, v in params.items() if isinstance(v, datetime)]
    return clause.bindparams(*stamps) if stamps else clause
