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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, Table, case, cast, func, literal
from sqlmodel import Session, col, select

from core.budgets.daily_rollups import DAILY, HOURLY, SIX_HOURLY, day_of, hour_of, six_hours_of
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


def sources(hours: int, first_hour: datetime) -> list[Source]:
    """Per day (`hours` 0): hours up to the first midnight, days after it. Per `hours` hours:
    hours all along, or, for points of 6 or 12 hours, hours up to the first six-hour
    boundary and six-hour rows after it."""
    if hours == 0:
        first_day = _next(first_hour, day_of, timedelta(days=1))
        hours_before = [Source(HOURLY, first_hour, first_day)] if first_hour < first_day else []
        return [*hours_before, Source(DAILY, first_day, None)]
    if hours % 6:
        return [Source(HOURLY, first_hour, None)]
    first_six = _next(first_hour, six_hours_of, timedelta(hours=6))
    hours_before = [Source(HOURLY, first_hour, first_six)] if first_hour < first_six else []
    return [*hours_before, Source(SIX_HOURLY, first_six, None)]


def _next(instant: datetime, start_of: Callable[[datetime], datetime], length: timedelta) -> datetime:
    """`instant` if a period starts there, else the start of the next period."""
    start = start_of(instant)
    return start if start == instant else start + length


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


def rollup_groups(session: Session, query: MetricsQuery, hours: int, source: Source) -> list:
    """Whole hours or days of the window from the roll-ups, summed per period and group by
    the database in one pass: (period, grouped dimensions..., counts..., the group's packed
    histograms concatenated, their byte lengths as "48,0,24"). However many roll-up rows a
    group merges (a 6-hour point by prompt holds every team's and model's hours), only one
    row per period and group reaches Python, and numpy splits the histograms
    (`latency_histogram.Histograms.add_concatenated`)."""
    table, columns = source.counts, _columns(source.counts)
    periods, period_text = _period_parts(session, source.time(table), hours)
    if query.granularity == "total":
        periods, period_text = [], None
    dimensions = [_none_named(columns)[d].label(d) for d in query.by]
    keys = [*periods, *dimensions]
    sums = [func.sum(table.c[n]) for n in COUNTS]
    histogram = table.c.latency_histogram
    if session.get_bind().dialect.name == "postgresql":
        joined = [func.string_agg(histogram, literal(b"")), func.string_agg(cast(func.length(histogram), String), ",")]
    else:  # SQLite's group_concat() is text: the bytes go as hex
        joined = [func.group_concat(func.hex(histogram), ""), func.group_concat(func.length(histogram))]
    statement = select(*keys, *sums, *joined).where(*source.where(table), *_filters(query, columns))
    if keys:
        statement = statement.group_by(*keys)
    found = []
    for row in session.execute(statement):
        values = list(row)
        if values[len(keys)] is None:  # without a key to group by, an empty window is one row of NULLs
            continue
        packed = values[-2]
        values[-2] = bytes.fromhex(packed) if isinstance(packed, str) else packed
        if period_text is not None:
            values[: len(periods)] = [period_text(*values[: len(periods)])]
        found.append(values)
    return found


def _period_parts(session: Session, column: Any, hours: int) -> tuple[list, Callable[..., str]]:
    """What to group a roll-up's time by for `period` (day, hour or `hours`-hour period), and
    how to name the group in Python: cheaper for the database than building the name on
    every row it reads, and only a group per period reaches Python."""
    if hours <= 1:
        return [period(session, column, hours=hours)], str
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone("UTC", column)
        day = func.to_char(utc, "YYYY-MM-DD ")
        part = cast(func.extract("hour", utc), Integer) // hours
    else:
        day = func.substr(column, 1, 11)
        part = cast(func.substr(column, 12, 2), Integer) // hours
    return [day, part], lambda day_text, index: f"{day_text}{int(index) * hours:02d}"


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


def hours_per_point(session: Session, query: MetricsQuery, start: datetime, choices: Sequence[int], rows: int) -> int:
    """The fewest of `choices` hours per point for a per-hour view from `start`, such that the
    view's (period, group) points stay within query.max_points and the roll-up rows it reads
    within `rows`; the last choice (a day, from the daily roll-ups) when none does.

    Points of 6 or 12 hours read the six-hour roll-ups, the others the hourly ones. Points
    are counted where a table holds a row per point (distinct times and groups from the one
    holding `start`, so the window's partial first period counts whole) and bounded from the
    daily roll-ups' (day, group) points times the periods of a day where hours are merged; a
    table's points are counted only when its rows fit."""
    limit = query.max_points or 0
    daily = _points(session, query, DAILY, day_of(start))
    held: dict[str, int] = {}
    cells: dict[str, int] = {}
    for hours in choices[:-1]:
        table, resolution, start_of = (SIX_HOURLY, 6, six_hours_of) if hours % 6 == 0 else (HOURLY, 1, hour_of)
        if table.name not in held:
            held[table.name] = _rows(session, query, table, start_of(start))
        if held[table.name] > rows:
            continue
        bound = daily * (24 // hours)
        if bound <= limit:
            return hours
        if table.name not in cells:
            cells[table.name] = _points(session, query, table, start_of(start))
        if (cells[table.name] if hours == resolution else min(cells[table.name], bound)) <= limit:
            return hours
    return choices[-1]


def _rows(session: Session, query: MetricsQuery, table: Table, start: datetime) -> int:
    """How many roll-up rows a view of `table` from `start` reads."""
    columns = _columns(table)
    counted = select(func.count()).select_from(table).where(table.c.hour >= start, *_filters(query, columns))
    return int(session.execute(counted).scalar_one())


def _points(session: Session, query: MetricsQuery, table: Table, start: datetime) -> int:
    """The distinct (time, group) cells of `table` from `start`: a view's points at its resolution."""
    columns = _columns(table)
    time = table.c[table.c.keys()[0]]
    cells = select(time, *(columns[d] for d in query.by)).where(time >= start, *_filters(query, columns)).distinct()
    return int(session.execute(select(func.count()).select_from(cells.subquery())).scalar_one())


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
