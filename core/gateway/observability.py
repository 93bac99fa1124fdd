"""Gateway health from the call log: latency percentiles, error, 429 and cache-hit rates,
blocked and held requests, per team, model or prompt, per day or hour.

The window is read in up to three parts: its partial first hour is summed by the database
from the call log itself; the whole hours up to the first midnight (UTC) from the call log's
hourly roll-ups (`budgets/rollups.py`: counts, and the answered calls' latency histogram);
the whole days from there on from the daily roll-ups (`budgets/daily_rollups.py`: team,
prompt and model only, which is all this page groups by). A per-hour view reads hours all
along.
Nothing per call reaches Python (bench/pages.py measures it over a million calls). The
histogram's buckets grow by 5 % each, and a percentile is reported as its bucket's
geometric middle: within 2.5 % of the exact value (answered calls only, since a refusal's
latency says nothing about the model path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Table, case, func, literal
from sqlmodel import Session, col, select

from core import clock
from core.budgets.daily_rollups import DAILY, DAILY_LATENCY, day_of
from core.budgets.ledger_sums import ceil_hour
from core.budgets.rollups import CALL, LATENCY, LATENCY_FLOOR_MS, LATENCY_GROWTH, bucket_middle_ms, hour_of
from core.errors import ValidationError
from core.models.gateway import GatewayCall
from core.permissions import Actor, Permission, require

DIMENSIONS = ("team", "model", "prompt")
GRANULARITIES = ("day", "hour", "total")
MAX_DAYS = 366
_BUCKET_GROWTH = LATENCY_GROWTH
_BUCKET_FLOOR_MS = LATENCY_FLOOR_MS  # latencies below count in the first bucket


@dataclass(frozen=True)
class MetricsQuery:
    """Which calls, cut how: `by` is any of DIMENSIONS, `granularity` one of GRANULARITIES
    ("total": one bucket per group over the whole window); empty filters mean all."""

    days: int = 14
    by: tuple[str, ...] = ("team", "model")
    granularity: str = "day"
    team_ids: tuple[int, ...] = ()
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()

    def check(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_DAYS}, not {self.days}")
        unknown = [d for d in self.by if d not in DIMENSIONS]
        if unknown:
            raise ValidationError(f"Cannot group by {', '.join(unknown)}: choose from {', '.join(DIMENSIONS)}")
        if self.granularity not in GRANULARITIES:
            raise ValidationError(f"Unknown granularity {self.granularity!r}: choose from {', '.join(GRANULARITIES)}")


@dataclass(frozen=True)
class Bucket:
    """One period and group. team_id / model / prompt are None where not grouped by them
    (prompt is also None for plain chat and embeddings calls)."""

    period: str  # "YYYY-MM-DD", "YYYY-MM-DD HH" (UTC hours), or "total"
    team_id: int | None
    model: str | None
    prompt: str | None
    calls: int
    ok: int
    p50_ms: float | None  # None: no OK call to measure
    p95_ms: float | None
    errors: int  # upstream failures (5xx)
    rejected_429: int  # budget exhausted
    cache_hits: int
    blocked: int
    held: int
    cost_micro: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls

    @property
    def rate_429(self) -> float:
        return self.rejected_429 / self.calls

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.calls


@dataclass(frozen=True)
class Metrics:
    buckets: list[Bucket]  # per period and group
    totals: list[Bucket]  # per group over the whole window (period "total")
    calls: int
    p50_ms: float | None
    p95_ms: float | None
    errors: int
    rejected_429: int
    cache_hits: int
    blocked: int
    held: int
    cost_micro: int


def gateway_metrics(session: Session, *, actor: Actor, query: MetricsQuery = MetricsQuery()) -> Metrics:
    """One scan of the window's calls, grouped by period, the chosen dimensions and latency
    bucket (-1 for calls that were not answered); the roll-ups are added up here."""
    require(actor, Permission.OBSERVABILITY_READ)
    query.check()
    hourly = query.granularity == "hour"
    width = len(query.by) + (query.granularity != "total")
    per_period: dict[tuple, _Tally] = {}

    def tally_of(group: tuple) -> _Tally:
        return per_period.get(group) or per_period.setdefault(group, _Tally())

    start = clock.now() - timedelta(days=query.days)
    first_hour = ceil_hour(start)
    for row in _raw_rows(session, query, hourly, start, first_hour):
        tally_of(tuple(row[:width])).add(int(row[width]), [int(v or 0) for v in row[width + 1 :]])
    sources = _sources(hourly, first_hour)
    for source in sources:
        for row in _rollup_rows(session, query, hourly, source):
            tally_of(tuple(row[:width])).add(-1, [int(v or 0) for v in row[width:]])
    per_group: dict[tuple, _Tally] = {}
    if query.granularity == "total":
        for source in sources:
            for row in _latency_rows(session, query, hourly, source):
                tally_of(tuple(row[:width])).add_latency(int(row[width]), int(row[width + 1]))
    else:
        # A histogram per period and group would be about one row per answered call: the
        # database reads each one's percentiles off it and sends those alone.
        for row in _percentile_rows(session, query, hourly, start, sources):
            tally_of(tuple(row[:width])).fixed = (int(row[width]), int(row[width + 1]), int(row[width + 2]))
        for source in sources:
            for row in _latency_rows(session, replace(query, granularity="total"), hourly, source):
                group = tuple(row[: len(query.by)])
                tally = per_group.get(group) or per_group.setdefault(group, _Tally())
                tally.add_latency(int(row[len(query.by)]), int(row[len(query.by) + 1]))
    # Roll-ups merge the tallies rather than the rows: there are far fewer of them.
    overall = _Tally()
    for group, tally in per_period.items():
        per_group.setdefault(group[width - len(query.by) :], _Tally()).merge(tally)
    for tally in per_group.values():
        overall.merge(tally)
    period_of = (lambda group: group[0]) if query.granularity != "total" else (lambda _group: "total")
    buckets = sorted(
        (
            tally.bucket(period_of(group), dict(zip(query.by, group[width - len(query.by) :])))
            for group, tally in per_period.items()
        ),
        key=_order,
    )
    totals = sorted(
        (tally.bucket("total", dict(zip(query.by, group))) for group, tally in per_group.items()), key=_order
    )
    return Metrics(
        buckets=buckets,
        totals=totals,
        calls=overall.calls,
        p50_ms=percentile(overall.latencies, 0.5),
        p95_ms=percentile(overall.latencies, 0.95),
        errors=overall.errors,
        rejected_429=overall.rejected_429,
        cache_hits=overall.cache_hits,
        blocked=overall.blocked,
        held=overall.held,
        cost_micro=overall.cost_micro,
    )


def _keys(query: MetricsQuery, columns: dict, hourly: bool, period_of) -> list:
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


def _raw_rows(session: Session, query: MetricsQuery, hourly: bool, start, end) -> list:
    """The partial first hour of the window, from the call log: (keys..., latency bucket, counts...)."""
    if start >= end:
        return []
    keys = _keys(query, _COLUMNS, hourly, _period(session, GatewayCall.created_at, hourly=hourly))

    def count_if(condition):
        return func.sum(case((condition, 1), else_=0))

    latency_bucket = case((GatewayCall.status == "ok", _latency_bucket()), else_=-1)
    where = [col(GatewayCall.created_at) >= start, col(GatewayCall.created_at) < end, *_filters(query, _COLUMNS)]
    return list(
        session.exec(
            select(
                *keys,
                latency_bucket.label("bucket"),
                func.count(),
                count_if(GatewayCall.http_status >= 500),
                count_if(GatewayCall.http_status == 429),
                count_if(col(GatewayCall.cache_hit)),
                count_if(GatewayCall.status == "blocked"),
                count_if(GatewayCall.status == "held"),
                func.sum(GatewayCall.cost_micro),
            )
            .where(*where)
            .group_by(*keys, latency_bucket)
        ).all()
    )


@dataclass(frozen=True)
class _Source:
    """Roll-up tables (counts, latency histogram) covering [start, end) of the window."""

    counts: Table
    latency: Table
    start: datetime
    end: datetime | None  # None: up to now

    def where(self, table: Table) -> list:
        time = table.c.day if "day" in table.c else table.c.hour
        return [time >= self.start] + ([time < self.end] if self.end is not None else [])

    def period(self, session: Session, table: Table, hourly: bool):
        return _period(session, table.c.day if "day" in table.c else table.c.hour, hourly=hourly)


def _sources(hourly: bool, first_hour: datetime) -> list[_Source]:
    """Hours up to the first midnight, days after it; hours all along for a per-hour view."""
    first_day = day_of(first_hour) if day_of(first_hour) == first_hour else day_of(first_hour) + timedelta(days=1)
    if hourly:
        return [_Source(CALL, LATENCY, first_hour, None)]
    hours = [_Source(CALL, LATENCY, first_hour, first_day)] if first_hour < first_day else []
    return [*hours, _Source(DAILY, DAILY_LATENCY, first_day, None)]


def _columns(table: Table) -> dict:
    return {"team": table.c.team_id, "model": table.c.model, "prompt": table.c.prompt_name}


def _rollup_rows(session: Session, query: MetricsQuery, hourly: bool, source: _Source) -> list:
    """Whole hours or days of the window from the roll-ups: (keys..., counts...)."""
    table, columns = source.counts, _columns(source.counts)
    keys = _keys(query, columns, hourly, source.period(session, table, hourly))
    sums = [func.sum(table.c[n]) for n in ("calls", "errors", "rejected_429", "cache_hits", "blocked", "held")]
    where = [*source.where(table), *_filters(query, columns)]
    statement = select(*keys, *sums, func.sum(table.c.cost_micro)).where(*where).group_by(*keys)
    # Without a key to group by, an empty window is still one row, of NULLs.
    return _named([r for r in session.execute(statement).all() if r[len(keys)] is not None], query)


def _latency_rows(session: Session, query: MetricsQuery, hourly: bool, source: _Source) -> list:
    """Whole hours or days of the window's latency histogram: (keys..., bucket, answered calls)."""
    table, columns = source.latency, _columns(source.latency)
    keys = _keys(query, columns, hourly, source.period(session, table, hourly))
    where = [*source.where(table), *_filters(query, columns)]
    statement = select(*keys, table.c.bucket, func.sum(table.c.calls)).where(*where).group_by(*keys, table.c.bucket)
    return _named(session.execute(statement).all(), query)


def _percentile_rows(session: Session, query: MetricsQuery, hourly: bool, start, sources: list[_Source]) -> list:
    """Per period and group: the buckets of p50 and p95 and the answered calls, computed by
    the database from the roll-ups' histograms and the partial first hour's answered calls."""
    edge_columns = {
        "team": func.coalesce(GatewayCall.team_id, 0),
        "model": col(GatewayCall.model),
        "prompt": func.coalesce(GatewayCall.prompt_name, ""),
    }
    rolled = [
        select(
            *_keys(query, _columns(s.latency), hourly, s.period(session, s.latency, hourly)),
            s.latency.c.bucket.label("bucket"),
            s.latency.c.calls.label("n"),
        ).where(*s.where(s.latency), *_filters(query, _columns(s.latency)))
        for s in sources
    ]
    edge = select(
        *_keys(query, edge_columns, hourly, _period(session, GatewayCall.created_at, hourly=hourly)),
        _latency_bucket().label("bucket"),
        literal(1).label("n"),
    ).where(
        col(GatewayCall.created_at) >= start,
        col(GatewayCall.created_at) < sources[0].start,
        GatewayCall.status == "ok",
        *_filters(query, _COLUMNS),
    )
    both = rolled[0].union_all(*rolled[1:], edge).subquery()
    names = ["period", *query.by]
    grouped = (
        select(*(both.c[n] for n in names), both.c.bucket, func.sum(both.c.n).label("n"))
        .group_by(*(both.c[n] for n in names), both.c.bucket)
        .subquery()
    )
    partition = [grouped.c[n] for n in names]
    running = select(
        *partition,
        grouped.c.bucket,
        func.sum(grouped.c.n).over(partition_by=partition, order_by=grouped.c.bucket).label("cum"),
        func.sum(grouped.c.n).over(partition_by=partition).label("total"),
    ).subquery()
    # Nearest rank: the first bucket whose running count reaches ceil(share x total).
    statement = select(
        *(running.c[n] for n in names),
        func.min(case((running.c.cum * 2 >= running.c.total, running.c.bucket))),
        func.min(case((running.c.cum * 100 >= running.c.total * 95, running.c.bucket))),
        func.max(running.c.total),
    ).group_by(*(running.c[n] for n in names))
    return _named(session.execute(statement).all(), query)


def _latency_bucket():
    return func.floor(
        func.ln(
            case(
                (GatewayCall.latency_ms > _BUCKET_FLOOR_MS, GatewayCall.latency_ms),
                else_=literal(_BUCKET_FLOOR_MS),
            )
            / _BUCKET_FLOOR_MS
        )
        / math.log(_BUCKET_GROWTH)
    )


def _named(rows: list, query: MetricsQuery) -> list:
    """Roll-ups say 0 and '' for "none" (a key must not be NULL); the call log says NULL."""
    offset = query.granularity != "total"
    positions = [offset + i for i, d in enumerate(query.by) if d in ("team", "prompt")]
    if not positions:
        return rows
    fixed = []
    for row in rows:
        values = list(row)
        for position in positions:
            values[position] = values[position] or None
        fixed.append(values)
    return fixed


def filter_options(session: Session, *, actor: Actor, days: int) -> tuple[list[str], list[str]]:
    """The models and catalog prompts called in the window, to offer as filters."""
    require(actor, Permission.OBSERVABILITY_READ)
    query = MetricsQuery(days=days)
    query.check()
    pairs: set[tuple[str, str]] = set()
    for source in _sources(False, hour_of(clock.now() - timedelta(days=days))):
        table = source.counts
        found = select(table.c.model, table.c.prompt_name).where(*source.where(table)).distinct()
        pairs |= {(m, p) for m, p in session.execute(found)}
    return sorted({m for m, _ in pairs if m}), sorted({p for _, p in pairs if p})


class _Tally:
    """Counts of one group, and its answered calls' latency histogram."""

    def __init__(self) -> None:
        self.calls = self.errors = self.rejected_429 = self.cache_hits = self.blocked = self.held = 0
        self.cost_micro = 0
        self.latencies: dict[int, int] = {}
        # (p50 bucket, p95 bucket, answered calls) when the database read them off the histogram
        self.fixed: tuple[int, int, int] | None = None

    def add(self, bucket: int, counts: list[int]) -> None:
        calls, errors, rejected_429, cache_hits, blocked, held, cost_micro = counts
        self.calls += calls
        self.errors += errors
        self.rejected_429 += rejected_429
        self.cache_hits += cache_hits
        self.blocked += blocked
        self.held += held
        self.cost_micro += cost_micro
        if bucket >= 0:
            self.latencies[bucket] = self.latencies.get(bucket, 0) + calls

    def add_latency(self, bucket: int, calls: int) -> None:
        self.latencies[bucket] = self.latencies.get(bucket, 0) + calls

    def merge(self, other: _Tally) -> None:
        self.add(
            -1,
            [
                other.calls,
                other.errors,
                other.rejected_429,
                other.cache_hits,
                other.blocked,
                other.held,
                other.cost_micro,
            ],
        )
        for index, n in other.latencies.items():
            self.latencies[index] = self.latencies.get(index, 0) + n

    def bucket(self, period: str, named: dict) -> Bucket:
        return Bucket(
            period=period,
            team_id=named.get("team"),
            model=named.get("model"),
            prompt=named.get("prompt"),
            calls=self.calls,
            ok=self.fixed[2] if self.fixed else sum(self.latencies.values()),
            p50_ms=round(bucket_middle_ms(self.fixed[0]), 2) if self.fixed else percentile(self.latencies, 0.5),
            p95_ms=round(bucket_middle_ms(self.fixed[1]), 2) if self.fixed else percentile(self.latencies, 0.95),
            errors=self.errors,
            rejected_429=self.rejected_429,
            cache_hits=self.cache_hits,
            blocked=self.blocked,
            held=self.held,
            cost_micro=self.cost_micro,
        )


def _order(bucket: Bucket):
    return bucket.period, bucket.team_id or 0, bucket.model or "", bucket.prompt or ""


def percentile(histogram: dict[int, int], share: float) -> float | None:
    """Nearest-rank percentile of a latency histogram, as its bucket's geometric middle."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(share * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(bucket_middle_ms(index), 2)
    raise AssertionError("unreachable: the rank is at most the total")


_COLUMNS = {"team": col(GatewayCall.team_id), "model": col(GatewayCall.model), "prompt": col(GatewayCall.prompt_name)}


def _period(session: Session, column, *, hourly: bool):
    """The UTC day (or hour) of a time column as text, the same on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD")
    # SQLite keeps UTC as text, "YYYY-MM-DD HH:MM:SS.ffffff".
    return func.substr(column, 1, 13 if hourly else 10)
