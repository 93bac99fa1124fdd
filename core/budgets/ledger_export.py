"""The spend ledger as a file for charge-back: one row per call of a month (or any range),
with the team, person and prompt by name, the tokens by kind and the exact cost.

Streams like every export (core.exports): the database builds each line, so a month of a
busy company downloads in constant memory. `cost_usd` is the integer micro-dollars written
out exactly (6 decimals), never a float.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, cast, func
from sqlmodel import Session

from core import clock
from core.budgets import periods
from core.exports import Export, table_export, utc_text
from core.models.budgets import UsageRecord
from core.models.catalog import Prompt
from core.models.identity import Person, Team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require

_L = UsageRecord.__table__.c
_TEAM, _PERSON, _PROMPT = Team.__table__.alias("t"), Person.__table__.alias("p"), Prompt.__table__.alias("pr")
_KEY = ApiKey.__table__.alias("k")


def _dollars(dialect: str):
    whole = cast(_L.cost_micro // 1_000_000, String)
    if dialect == "sqlite":
        fraction = func.substr("000000" + cast(_L.cost_micro % 1_000_000, String), -6)
    else:
        fraction = func.lpad(cast(_L.cost_micro % 1_000_000, String), 6, "0")
    return whole + "." + fraction


def prepare(
    *,
    session: Session,
    actor: Actor,
    month: periods.Period | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    team_id: int | None = None,
    fmt: str = "csv",
) -> Export:
    """Every ledger row of `month` (or of [start, end)), oldest first, optionally one team's."""
    require(actor, Permission.SPEND_READ)
    if month is not None:
        start, end = month.start, month.end
    dialect = session.get_bind().dialect.name
    columns = {
        "occurred_at": utc_text(_L.occurred_at, dialect),
        "request_id": _L.request_id,
        "team": _TEAM.c.name,
        "person": _PERSON.c.display_name,
        "key_id": _L.key_id,
        "key": _KEY.c.label,  # the team key's name: a reader tells keys apart by it
        "prompt": _PROMPT.c.name,
        "prompt_version_id": _L.prompt_version_id,
        "model": _L.model,
        "status": _L.status,
        "cache_hit": _L.cache_hit,
        "input_tokens": _L.input_tokens,
        "cached_input_tokens": _L.cached_input_tokens,
        "output_tokens": _L.output_tokens,
        "reasoning_tokens": _L.reasoning_tokens,
        "latency_ms": _L.latency_ms,
        "cost_micro": _L.cost_micro,
        "cost_usd": _dollars(dialect),
    }
    source = (
        UsageRecord.__table__.outerjoin(_TEAM, _TEAM.c.id == _L.team_id)
        .outerjoin(_PERSON, _PERSON.c.id == _L.person_id)
        .outerjoin(_PROMPT, _PROMPT.c.id == _L.prompt_id)
        .outerjoin(_KEY, _KEY.c.id == _L.key_id)
    )
    where = []
    if start is not None:
        where.append(_L.occurred_at >= start)
    if end is not None:
        where.append(_L.occurred_at < end)
    if team_id is not None:
        where.append(_L.team_id == team_id)
    label = month.key if month is not None else f"{clock.now():%Y%m%dT%H%M%SZ}"
    team_part = f"-team{team_id}" if team_id is not None else ""
    return table_export(
        session,
        columns=columns,
        source=source,
        where=where,
        order_by=(_L.occurred_at, _L.id),
        fmt=fmt,
        file_name=f"spend-{label}{team_part}.{fmt}",
        check=lambda: require(actor, Permission.SPEND_READ),
    )
