"""Browsing the audit log: filters, keyset pages by seq, names for actor ids, readable diffs.

The page, `quorum audit export` and the page's download all use `AuditFilter` and the
same WHERE clause, so they always agree on which events match.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, select, union_all
from sqlmodel import Session

from core.errors import ValidationError
from core.models.audit import AuditEvent
from core.models.identity import Person
from core.permissions import Actor, Permission, require

PAGE_SIZE = 50
_T = AuditEvent.__table__.c
_PERSON_REF = re.compile(r"^person:(\d+)$")


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show. Every field is optional; all given ones must match.

    `action`: space- or comma-separated terms; `budget.` (ending in a dot or `*`) is a
    prefix, `team.create` an exact action, and a leading `-` excludes (`-team.`).
    `since` is inclusive, `until` exclusive, both UTC. `text` searches before/after JSON.
    """

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    team_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.since and self.until and self.since >= self.until:
            raise ValidationError("The time range is empty: 'from' must be before 'until'")
        action_terms(self.action)  # validate early, with a clear message


@dataclass(frozen=True)
class EventRow:
    seq: int
    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    team_id: int | None
    before: Any
    after: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Page:
    events: list[EventRow]
    older: int | None  # pass as `before_seq` for the next (older) page; None on the last page


def parse_time(value: str | None, *, field: str = "time") -> datetime | None:
    """'2026-03-01', '2026-03-01 14:30' or ISO 8601; read as UTC unless it names an offset."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{field}: {value!r} is not a date or time such as 2026-03-01 or 2026-03-01T14:30 (UTC)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def action_terms(spec: str | None) -> tuple[list[str], list[str]]:
    """(included, excluded) action terms of a filter such as 'budget., -team.'."""
    include, exclude = [], []
    for term in re.split(r"[\s,]+", (spec or "").strip()):
        if not term:
            continue
        negated = term.startswith("-")
        term = term.lstrip("-").lower()
        if not re.fullmatch(r"[a-z0-9_.*]+", term) or term in {".", "*"}:
            raise ValidationError(f"Action filter {term!r}: use dotted actions such as 'budget.' or '-team.'")
        (exclude if negated else include).append(term)
    return include, exclude


def resolve_actor(session: Session, value: str | None) -> str | None:
    """An actor filter as an actor id: 'person:12' as is, or a person's e-mail or exact name."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if ":" in value:
        return value
    person = session.execute(
        select(Person.__table__.c.id).where(
            or_(Person.__table__.c.email == value.lower(), Person.__table__.c.display_name == value)
        )
    ).first()
    if person is None:
        raise ValidationError(
            f"No person {value!r}; give an actor id such as person:12 or system:cli, or a person's e-mail or name"
        )
    return f"person:{person[0]}"


def _action_condition(term: str, dialect: str):
    if term.endswith((".", "*")):
        prefix = term.rstrip("*")
        if dialect == "sqlite":
            # A range uses the (action, seq) index; SQLite's LIKE cannot (case-insensitive).
            return and_(_T.action >= prefix, _T.action < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return _T.action.startswith(prefix, autoescape=True)
    return _T.action == term


def conditions(session: Session, filters: AuditFilter, *, included_actions: bool = True) -> list:
    """The WHERE clause for `filters` (shared by the page, the CLI and the exports).

    Without `included_actions` the included action terms are left out, for a caller that
    names the matching actions itself and walks their (action, seq) index: then the team
    is compared as `team_id + 0`, which SQLite cannot answer from the team's index (it would
    rather read and sort all of a team's events).
    """
    dialect = session.get_bind().dialect.name
    where = []
    actor = resolve_actor(session, filters.actor)
    if actor:
        where.append(_T.actor == actor)
    include, exclude = action_terms(filters.action)
    if include and included_actions:
        where.append(or_(*(_action_condition(t, dialect) for t in include)))
    for term in exclude:
        where.append(not_(_action_condition(term, dialect)))
    if filters.target_type and filters.target_type.strip():
        where.append(_T.target_type == filters.target_type.strip())
    if filters.target_id is not None and str(filters.target_id).strip():
        where.append(_T.target_id == str(filters.target_id).strip())
    if filters.team_id is not None:
        where.append((_T.team_id if included_actions else _T.team_id + 0) == filters.team_id)
    if filters.since:
        where.append(_T.occurred_at >= filters.since)
    if filters.until:
        where.append(_T.occurred_at < filters.until)
    if filters.since and filters.until and not actor and not (filters.target_id or "").strip():
        # With an actor or a target, their (…, seq) index already finds the few matching events.
        where.append(_seq_range(session, where[-2:]))
    if filters.text and filters.text.strip():
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", filters.text.strip()) + "%"
        where.append(or_(_T.before_json.ilike(pattern, escape="\\"), _T.after_json.ilike(pattern, escape="\\")))
    return where


def _seq_range(session: Session, time_range: list):
    """The seq range holding every event of a time window, from the (occurred_at, seq) index alone.

    Events are appended in time order, nearly: a writer reads the clock before it waits for
    the chain head, so neighbours can be out of order by a few microseconds. So the bounds are
    the exact min and max seq in the window (not a binary search), and the time conditions stay
    too: the results are the same, but "newest first, 50 at a time" walks the seq index
    from the window's end instead of sorting every event in the window. Its cost grows with
    the window (about 0.2 µs per event in it on SQLite).
    """
    low, high = session.execute(select(func.min(_T.seq), func.max(_T.seq)).where(*time_range)).one()
    return false() if low is None else _T.seq.between(low, high)


# Beyond this many distinct matching actions, one ordinary query beats a union of index walks.
MAX_UNION_ACTIONS = 32


def _matching_actions(session: Session, filters: AuditFilter) -> list[str] | None:
    """The distinct actions the included action terms match, found by index seeks; None to not split.

    Only on SQLite: PostgreSQL compares text by the database's collation, where a range
    of strings is not the same as a prefix.
    """
    include, _exclude = action_terms(filters.action)
    if not include or session.get_bind().dialect.name != "sqlite":
        return None
    if resolve_actor(session, filters.actor) or (filters.target_id or "").strip():
        return None  # an actor's or a target's own (…, seq) index finds their few events faster
    found: set[str] = set()
    for term in include:
        if not term.endswith((".", "*")):
            found.add(term)
            continue
        prefix = term.rstrip("*")
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        after = None
        while len(found) <= MAX_UNION_ACTIONS:  # a loose index scan: one seek per distinct action
            lower = _T.action > after if after is not None else _T.action >= prefix
            after = session.execute(select(func.min(_T.action)).where(lower, _T.action < end)).scalar()
            if after is None:
                break
            found.add(after)
    return sorted(found) if len(found) <= MAX_UNION_ACTIONS else None


_SELECTED = (
    _T.seq,
    _T.event_id,
    _T.occurred_at,
    _T.actor,
    _T.action,
    _T.target_type,
    _T.target_id,
    _T.team_id,
    _T.before_json,
    _T.after_json,
    _T.prev_hash,
    _T.hash,
)


def search(
    session: Session, *, actor: Actor, filters: AuditFilter, before_seq: int | None = None, limit: int = PAGE_SIZE
) -> Page:
    """One page of matching events, newest first; `before_seq` continues after a page's `older`."""
    require(actor, Permission.AUDIT_READ)
    if not 1 <= limit <= 1000:
        raise ValidationError("A page holds 1 to 1000 events")
    actions = _matching_actions(session, filters)
    # With the matching actions named, the terms' own condition would only tempt the planner
    # into a range scan of the (action, seq) index instead of one ordered walk per action.
    where = conditions(session, filters, included_actions=actions is None)
    if before_seq is not None:
        where.append(_T.seq < before_seq)
    if actions:
        # "action in (a, b, c) newest first" sorts every match; the newest few of each action,
        # read backwards along the (action, seq) index, merged, give the same page.
        newest = [
            select(*_SELECTED).where(*where, _T.action == action).order_by(_T.seq.desc()).limit(limit + 1).subquery()
            for action in actions
        ]
        merged = union_all(*(select(*sub.c) for sub in newest)).subquery()
        query = select(*merged.c).order_by(merged.c.seq.desc()).limit(limit + 1)
    else:
        if actions is not None:
            where.append(false())  # no action matches the terms
        query = select(*_SELECTED).where(*where).order_by(_T.seq.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    events = [_row(r) for r in rows[:limit]]
    return Page(events, events[-1].seq if len(rows) > limit else None)


def iter_filtered(session: Session, *, actor: Actor, filters: AuditFilter, batch: int = 5000) -> Iterator[EventRow]:
    """Every matching event, oldest first, read in keyset batches (exports)."""
    require(actor, Permission.AUDIT_READ)
    where = conditions(session, filters)
    after = None
    while True:
        query = select(*_SELECTED).where(*where)
        if after is not None:
            query = query.where(_T.seq > after)
        rows = session.execute(query.order_by(_T.seq).limit(batch)).all()
        for row in rows:
            yield _row(row)
        if len(rows) < batch:
            return
        after = rows[-1][0]


def _row(r) -> EventRow:
    return EventRow(
        seq=int(r[0]),
        event_id=r[1],
        occurred_at=r[2],
        actor=r[3],
        action=r[4],
        target_type=r[5],
        target_id=r[6],
        team_id=r[7],
        before=_loads(r[8]),
        after=_loads(r[9]),
        prev_hash=r[10],
        hash=r[11],
    )


def _loads(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value  # a tampered row still shows; verify names it


def actor_names(session: Session, refs: Iterable[str]) -> dict[str, str]:
    """Display names for the `person:N` refs that are still in the directory."""
    ids = {int(m.group(1)) for ref in refs if (m := _PERSON_REF.match(ref))}
    if not ids:
        return {}
    rows = session.execute(
        select(Person.__table__.c.id, Person.__table__.c.display_name).where(Person.__table__.c.id.in_(ids))
    ).all()
    return {f"person:{pid}": name for pid, name in rows}


@dataclass(frozen=True)
class Change:
    path: str
    before: Any
    after: Any
    kind: str  # added | removed | changed | unchanged


_ABSENT = object()


def diff(before: Any, after: Any) -> list[Change]:
    """Field-by-field changes between two payloads, nested keys as dotted paths."""
    changes: list[Change] = []
    _diff("", before if before is not None else _ABSENT, after if after is not None else _ABSENT, changes)
    return changes


def _diff(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff(f"{path}.{key}" if path else str(key), old.get(key, _ABSENT), new.get(key, _ABSENT), out)
        return
    if old is _ABSENT and isinstance(new, dict):
        for key in sorted(new):
            _diff(f"{path}.{key}" if path else str(key), _ABSENT, new[key], out)
        return
    if new is _ABSENT and isinstance(old, dict):
        for key in sorted(old):
            _diff(f"{path}.{key}" if path else str(key), old[key], _ABSENT, out)
        return
    if old is _ABSENT and new is _ABSENT:
        return
    kind = "added" if old is _ABSENT else "removed" if new is _ABSENT else "unchanged" if old == new else "changed"
    out.append(Change(path or "(value)", None if old is _ABSENT else old, None if new is _ABSENT else new, kind))
