"""Where Observability's figures are read from, part by part of the window.

The window is read in up to three parts: its partial first hour is summed by the database
from the call log itself; the whole hours up to the first midnight (UTC) from the call log's
hourly roll-ups at Observability's grain; the whole days from there on from the daily ones
(`budgets/daily_rollups.py`: both per team, prompt and model only, which is all the page
groups by, with each row's answered calls' latency histogram packed into it). A per-hour
view reads hours all along.

Each reader returns rows of (period, grouped dimensions..., figures...), the period left
out for a "total" view; "no team" and "no prompt" are None whatever the source says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Table, case, cast, func, literal
from sqlmodel import Session, col, select

from core.budgets.daily_rollups import DAILY, HOURLY, day_of
from core.budgets.rollups import LATENCY_FLOOR_MS, LATENCY_GROWTH
from core.models.gateway import GatewayCall

if TYPE_CHECKING:
    from core.gateway.observability import MetricsQuery

COUNTS = ("calls", "errors", "rejected_429", "cache_hits", "blocked", "held", "cost_micro")


@dataclass(frozen=True)
class Source:
    """A roll-up table of counts and packed latency histograms covering [start, end)."""

    counts: Table
    start: datetime
    end: datetime | None  # None: up to now

    def time(self, table: Table):
        return table.c.day if "day" in table.c else table.c.hour

    def where(self, table: Table) -> list:
        time = self.time(table)
        return [time >= self.start] + ([time < self.end] if self.end is not None else [])


def sources(hourly: bool, first_hour: datetime) -> list[Source]:
    """Hours up to the first midnight, days after it; hours all along for a per-hour view."""
    first_day = day_of(first_hour) if day_of(first_hour) == first_hour else day_of(first_hour) + timedelta(days=1)
    if hourly:
        return [Source(HOURLY, first_hour, None)]
    hours = [Source(HOURLY, first_hour, first_day)] if first_hour < first_day else []
    return [*hours, Source(DAILY, first_day, None)]


def raw_counts(session: Session, query: MetricsQuery, hours: int, start, end) -> list:
    """The partial first hour of the window, from the call log: (keys..., counts...)."""
    if start >= end:
        return []
    keys = _keys(query, _CALL_LOG, period(session, GatewayCall.created_at, hours=hours))

    def count_if(condition):
        return func.sum(case((condition, 1), else_=0))

    statement = (
        select(
            *keys,
            func.count(),
            count_if(GatewayCall.http_status >= 500),
            count_if(GatewayCall.http_status == 429),
            count_if(col(GatewayCall.cache_hit)),
            count_if(GatewayCall.status == "blocked"),
            count_if(GatewayCall.status == "held"),
            func.sum(GatewayCall.cost_micro),
        )
        .where(*_raw_window(query, start, end))
        .group_by(*keys)
    )
    # Without a key to group by, an empty hour is still one row, of no calls.
    rows = session.exec(statement).all()  # type: ignore[call-overload]
    return _named([r for r in rows if r[len(keys)]], query)


def raw_latencies(session: Session, query: MetricsQuery, hours: int, start, end) -> list:
    """The partial first hour's answered calls: (keys..., latency bucket, calls)."""
    if start >= end:
        return []
    keys = _keys(query, _CALL_LOG, period(session, GatewayCall.created_at, hours=hours))
    bucket = _latency_bucket()
    statement = (
        select(*keys, bucket, func.count())
        .where(*_raw_window(query, start, end), GatewayCall.status == "ok")
        .group_by(*keys, bucket)
    )
    return _named(session.exec(statement).all(), query)  # type: ignore[call-overload]


def rollup_counts(session: Session, query: MetricsQuery, hours: int, source: Source) -> list:
    """Whole hours or days of the window from the roll-ups: (keys..., counts...)."""
    table, columns = source.counts, _columns(source.counts)
    keys = _keys(query, _none_named(columns), period(session, source.time(table), hours=hours))
    sums = [func.sum(table.c[n]) for n in COUNTS]
    statement = select(*keys, *sums).where(*source.where(table), *_filters(query, columns)).group_by(*keys)
    # Without a key to group by, an empty window is still one row, of NULLs.
    return [r for r in session.execute(statement).all() if r[len(keys)] is not None]


def rollup_latencies(session: Session, query: MetricsQuery, hours: int, source: Source) -> list:
    """Whole hours or days of the window's latency histograms, a row per period and group as
    stored: (keys..., packed histogram). No GROUP BY: packed histograms are merged in one
    vectorized pass (observability.py)."""
    table, columns = source.counts, _columns(source.counts)
    keys = _keys(query, _none_named(columns), period(session, source.time(table), hours=hours))
    statement = select(*keys, table.c.latency_histogram).where(
        *source.where(table), *_filters(query, columns), table.c.ok > 0
    )
    return session.execute(statement).all()  # type: ignore[return-value]


def models_and_prompts(session: Session, first_hour: datetime) -> set[tuple[str, str]]:
    """The (model, prompt) pairs counted from `first_hour` on (the filters' options)."""
    pairs: set[tuple[str, str]] = set()
    for source in sources(False, first_hour):
        table = source.counts
        found = select(table.c.model, table.c.prompt_name).where(*source.where(table)).distinct()
        pairs |= {(m, p) for m, p in session.execute(found)}
    return pairs


def period(session: Session, column: Any, *, hours: int):
    """The UTC day (`hours` 0), hour (1), or period of `hours` hours within a day (as its
    first hour) of a time column as text, "YYYY-MM-DD[ HH]", the same on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", column)
        if hours <= 1:
            return func.to_char(utc, "YYYY-MM-DD HH24" if hours else "YYYY-MM-DD")
        hour = cast(func.extract("hour", utc), Integer)
        return func.to_char(utc, "YYYY-MM-DD ", type_=String).concat(
            func.lpad(cast(hour - hour % hours, String), 2, "0")
        )
    # SQLite keeps UTC as text, "YYYY-MM-DD HH:MM:SS.ffffff".
    if hours <= 1:
        return func.substr(column, 1, 13 if hours else 10)
    hour = cast(func.substr(column, 12, 2), Integer)
    return func.substr(column, 1, 11, type_=String).concat(func.printf("%02d", hour - hour % hours))


def hours_per_point(session: Session, query: MetricsQuery, first_hour: datetime, choices: Sequence[int]) -> int:
    """The fewest of `choices` hours per point that keep a per-hour view's (period, group)
    points within query.max_points: every hour its own when the hourly roll-ups' points
    fit, else the fewest hours for which each (day, group) the daily roll-ups hold, times
    the periods of a day, fits (at most that many points, whatever the hours hold); the
    last choice when none does."""
    limit = query.max_points or 0

    def points(table: Table, start: datetime) -> int:
        columns = _columns(table)
        cells = (
            select(table.c[table.c.keys()[0]], *(columns[d] for d in query.by))
            .where(table.c[table.c.keys()[0]] >= start, *_filters(query, columns))
            .distinct()
            .subquery()
        )
        return int(session.execute(select(func.count()).select_from(cells)).scalar_one())

    hourly = points(HOURLY, first_hour)
    if hourly <= limit:
        return choices[0]
    daily = points(DAILY, day_of(first_hour))
    for hours in choices[1:-1]:
        if min(hourly, daily * (24 // hours)) <= limit:
            return hours
    return choices[-1]


_CALL_LOG = {"team": col(GatewayCall.team_id), "model": col(GatewayCall.model), "prompt": col(GatewayCall.prompt_name)}


def _columns(table: Table) -> dict:
    return {"team": table.c.team_id, "model": table.c.model, "prompt": table.c.prompt_name}


def _none_named(columns: dict) -> dict:
    """Roll-ups say 0 and '' for "none" (a key must not be NULL): NULL, as the call log says,
    by the database (Python would touch every row of a long view)."""
    return {**columns, "team": func.nullif(columns["team"], 0), "prompt": func.nullif(columns["prompt"], "")}


def _keys(query: MetricsQuery, columns: dict, period_of) -> list:
    keys = [columns[d].label(d) for d in query.by]
    if query.granularity != "total":
        keys.insert(0, period_of.label("period"))
    return keys


def _filters(query: MetricsQuery, columns: dict) -> list:
    where = []
    if query.team_ids:
        where.append(columns["team"].in_(query.team_ids))
    if query.models:
        where.append(columns["model"].in_(query.models))
    if query.prompts:
        where.append(columns["prompt"].in_(query.prompts))
    return where


def _raw_window(query: MetricsQuery, start, end) -> list:
    return [col(GatewayCall.created_at) >= start, col(GatewayCall.created_at) < end, *_filters(query, _CALL_LOG)]


def _latency_bucket():
    """The histogram bucket of a call's latency (rollups.latency_bucket, in SQL)."""
    return func.floor(
        func.ln(
            case(
                (GatewayCall.latency_ms > LATENCY_FLOOR_MS, GatewayCall.latency_ms),
                else_=literal(LATENCY_FLOOR_MS),
            )
            / LATENCY_FLOOR_MS
        )
        / math.log(LATENCY_GROWTH)
    )


def _named(rows: Any, query: MetricsQuery) -> list:
    """Roll-ups say 0 and '' for "none" (a key must not be NULL); the call log says NULL."""
    offset = query.granularity != "total"
    positions = [offset + i for i, d in enumerate(query.by) if d in ("team", "prompt")]
    if not positions:
        return list(rows)
    fixed = []
    for row in rows:
        values = list(row)
        for position in positions:
            values[position] = values[position] or None
        fixed.append(values)
    return fixed
