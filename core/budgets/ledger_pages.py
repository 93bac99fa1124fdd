"""The ledger rows behind a Spend breakdown's row, a page at a time.

Pages are cut by a keyset cursor (the last row's `occurred_at` and `id`), newest first: each
page is an index walk from where the last one stopped, however deep the reader goes, and a
call settled meanwhile does not shift the pages already seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from core import formatting
from core.budgets import periods
from core.budgets.reports import Breakdown, key_names
from core.budgets.rollups import LEDGER
from core.models.catalog import Prompt
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require

PAGE_SIZE = 50
_COLUMNS = (
    "id",
    "occurred_at",
    "team_id",
    "person_id",
    "key_id",
    "prompt_id",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_micro",
    "request_id",
)


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after this row, in newest-first order."""

    occurred_at: datetime
    id: int


@dataclass(frozen=True)
class CallsPage:
    frame: pd.DataFrame
    next: Cursor | None  # None: this is the last page


def calls_page(
    session: Session,
    *,
    actor: Actor,
    breakdown: Breakdown,
    group: str,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> CallsPage:
    """The ledger rows counted in `group` (a row name of `breakdown`), newest first."""
    require(actor, Permission.SPEND_READ)
    keys = breakdown.groups.get(group)
    if not keys:
        return CallsPage(pd.DataFrame(columns=_SHOWN), None)
    where = [LEDGER.c.occurred_at >= breakdown.period.start, LEDGER.c.occurred_at < breakdown.period.end]
    if breakdown.team_id is not None:
        where.append(LEDGER.c.team_id == breakdown.team_id)
    where.append(_group_filter(breakdown.by, keys))
    if after is not None:
        where.append(
            or_(
                LEDGER.c.occurred_at < after.occurred_at,
                and_(LEDGER.c.occurred_at == after.occurred_at, LEDGER.c.id < after.id),
            )
        )
    query = (
        select(*(LEDGER.c[c] for c in _COLUMNS))
        .where(*where)
        .order_by(LEDGER.c.occurred_at.desc(), LEDGER.c.id.desc())
        .limit(limit + 1)
    )
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(rows[-1].occurred_at, rows[-1].id) if more else None
    return CallsPage(_frame(session, rows), cursor)


def _group_filter(by: str, keys: list[tuple]):
    if by == "model":
        return LEDGER.c.model.in_([k[0] for k in keys])
    if by == "team":
        return LEDGER.c.team_id.in_([k[0] for k in keys])
    if by == "prompt":
        return func.coalesce(LEDGER.c.prompt_id, 0).in_([k[0] for k in keys])
    if by == "person":
        return or_(
            *(
                and_(func.coalesce(LEDGER.c.person_id, 0) == person, func.coalesce(LEDGER.c.key_id, 0) == key)
                for person, key in keys
            )
        )
    day = periods.local_date(min(k[0] for k in keys))  # a local day, from its first instant
    return and_(
        LEDGER.c.occurred_at >= periods.day_end(day - timedelta(days=1)), LEDGER.c.occurred_at < periods.day_end(day)
    )


_SHOWN = [
    "Time",
    "Team",
    "Who",
    "Model",
    "Prompt",
    "Input tokens",
    "Cached input tokens",
    "Output tokens",
    "Cost",
    "Request",
]


def _frame(session: Session, rows) -> pd.DataFrame:
    teams = dict(session.execute(select(Team.id, Team.name)).all())
    people_ids = {r.person_id for r in rows if r.person_id}
    prompt_ids = {r.prompt_id for r in rows if r.prompt_id}
    people = (
        dict(session.execute(select(Person.id, Person.display_name).where(Person.id.in_(people_ids))).all())
        if people_ids
        else {}
    )
    keys = key_names(session, {r.key_id for r in rows if r.key_id and not r.person_id})
    zone = periods.zone().key
    prompts = (
        dict(session.execute(select(Prompt.id, Prompt.name).where(Prompt.id.in_(prompt_ids))).all())
        if prompt_ids
        else {}
    )
    return pd.DataFrame(
        [
            [
                formatting.when(r.occurred_at, zone, seconds=True),
                teams.get(r.team_id, f"team #{r.team_id}"),
                people.get(r.person_id, f"person #{r.person_id}")
                if r.person_id
                else (keys.get(r.key_id, f"team key #{r.key_id}") if r.key_id else formatting.MISSING),
                r.model,
                prompts.get(r.prompt_id, f"prompt #{r.prompt_id}") if r.prompt_id else formatting.MISSING,
                r.input_tokens,
                r.cached_input_tokens,
                r.output_tokens,
                formatting.money(r.cost_micro),
                formatting.text_or_missing(r.request_id),
            ]
            for r in rows
        ],
        columns=_SHOWN,
    )
