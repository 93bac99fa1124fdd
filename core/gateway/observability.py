"""Gateway health from the call log: latency percentiles, error, 429 and cache-hit rates,
blocked and held requests, per team, model or prompt, per day or hour.

The window is read in parts, from the call log and the hourly and daily roll-ups
(`observability_sources.py` says which covers what). Nothing per call reaches Python
(bench/pages.py measures it over a million calls): counts are summed by the database, and
the latency histograms of every part are merged and read per group in one vectorized pass
(`budgets/latency_histogram.py`). The histogram's buckets grow by 5 % each, and a
percentile is reported as its bucket's geometric middle: within 2.5 % of the exact value
(answered calls only, since a refusal's latency says nothing about the model path).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from datetime import timedelta

from sqlmodel import Session

from core import clock
from core.budgets import pending_rollups
from core.budgets.latency_histogram import Histograms, Read
from core.budgets.ledger_sums import ceil_hour
from core.budgets.rollups import bucket_middle_ms, hour_of
from core.errors import ValidationError
from core.gateway import observability_sources as parts
from core.permissions import Actor, Permission, require

DIMENSIONS = ("team", "model", "prompt")
GRANULARITIES = ("day", "hour", "total")
MAX_DAYS = 366
# How many hours a per-hour view's point may merge: divisors of a day, so a period never
# straddles midnight and reads "YYYY-MM-DD HH" like an hour (the first hour it holds).
HOURS_PER_POINT = (1, 2, 3, 4, 6, 8, 12, 24)
# What the page asks a per-hour view to fit in: more (hour, group) points than a chart shows
# legibly, and each point costs the page time to build and send (bench/pages.py).
CHART_POINTS = 2500
# How many roll-up rows a per-hour view may read: a row costs a few microseconds to read and
# merge however few points it ends in (about 40 ms for 10,000 on SQLite, bench/pages.py), so
# past this its hours are merged from the six-hour or daily roll-ups, as monitoring tools
# widen their step with the window. At a million calls a year, 45 days per hour read six-hour
# rows (points of 6 hours) and 90 days daily ones.
ROW_BUDGET = 10_000
_PERCENTS = (50, 95)


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
    # Per hour, at most this many (period, group) points: hours are then merged into periods
    # of HOURS_PER_POINT hours, the fewest that fit (None: every hour its own point).
    max_points: int | None = None

    def check(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_DAYS}, not {self.days}")
        if self.max_points is not None and self.max_points < 1:
            raise ValidationError(f"max_points must be at least 1, not {self.max_points}")
        unknown = [d for d in self.by if d not in DIMENSIONS]
        if unknown:
            raise ValidationError(f"Cannot group by {', '.join(unknown)}: choose from {', '.join(DIMENSIONS)}")
        if self.granularity not in GRANULARITIES:
            raise ValidationError(f"Unknown granularity {self.granularity!r}: choose from {', '.join(GRANULARITIES)}")


@dataclass(slots=True)  # not frozen: a frozen one costs thousands of setattr calls per view
class Bucket:
    """One period and group. team_id / model / prompt are None where not grouped by them
    (prompt is also None for plain chat and embeddings calls)."""

    period: str  # "YYYY-MM-DD", "YYYY-MM-DD HH" (the first UTC hour of the period), or "total"
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


BUCKET_FIELDS = tuple(f.name for f in fields(Bucket))


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
    hours_per_point: int = 1  # per hour: how many hours each of `buckets` holds (max_points)


def gateway_metrics(session: Session, *, actor: Actor, query: MetricsQuery = MetricsQuery()) -> Metrics:
    """The window's counts per period and group, summed by the database from each part of
    the window; the latency histograms of all parts merged per period and group here."""
    require(actor, Permission.OBSERVABILITY_READ)
    query.check()
    pending_rollups.catch_up(session.connection())
    start = clock.now() - timedelta(days=query.days)
    first_hour = ceil_hour(start)
    hours = 0  # per day
    if query.granularity == "hour":
        hours = 1
        if query.max_points:
            hours = parts.hours_per_point(session, query, start, HOURS_PER_POINT, ROW_BUDGET)
    # A day per point reads as a per-day view, its periods then named by their first hour.
    read = 0 if hours == 24 else hours
    width = len(query.by) + (query.granularity != "total")
    per_period: dict[tuple, list[int]] = {}
    histograms = Histograms()

    sources = parts.sources(read, first_hour)
    for row in parts.raw_counts(session, query, read, start, first_hour):
        _add(per_period, tuple(row[:width]), row[width:])
    histograms.add_rows(parts.raw_latencies(session, query, read, start, first_hour), width)
    for source in sources:
        for row in parts.rollup_groups(session, query, read, source):
            group = tuple(row[:width])
            _add(per_period, group, row[width:-2])
            histograms.add_concatenated(group, row[-2], row[-1])

    dimensions = width - len(query.by)  # where the grouped dimensions start in a group
    per_group: dict[tuple, list[int]] = {}
    for group, counts in per_period.items():
        _add(per_group, group[dimensions:], counts)
    overall = [sum(column) for column in zip(*per_group.values(), strict=True)] or [0] * len(parts.COUNTS)
    period_latency = histograms.read(_PERCENTS)
    group_latency = period_latency if not dimensions else histograms.read(_PERCENTS, lambda g: g[dimensions:])
    overall_latency = histograms.read(_PERCENTS, lambda _g: ()).get(())

    def period_of(group: tuple) -> str:
        if not dimensions:
            return "total"
        return f"{group[0]} 00" if hours == 24 else group[0]

    named = [(d, query.by.index(d)) for d in ("team", "model", "prompt") if d in query.by]
    buckets = sorted(
        (
            _bucket(period_of(group), group[dimensions:], named, counts, period_latency.get(group))
            for group, counts in per_period.items()
        ),
        key=_order,
    )
    totals = sorted(
        (_bucket("total", group, named, counts, group_latency.get(group)) for group, counts in per_group.items()),
        key=_order,
    )
    return Metrics(
        buckets=buckets,
        totals=totals,
        p50_ms=_middle(overall_latency, 0),
        p95_ms=_middle(overall_latency, 1),
        hours_per_point=max(hours, 1),
        **dict(zip(parts.COUNTS, overall, strict=True)),
    )


def filter_options(session: Session, *, actor: Actor, days: int) -> tuple[list[str], list[str]]:
    """The models and catalog prompts called in the window, to offer as filters."""
    require(actor, Permission.OBSERVABILITY_READ)
    query = MetricsQuery(days=days)
    query.check()
    pending_rollups.catch_up(session.connection())
    pairs = parts.models_and_prompts(session, hour_of(clock.now() - timedelta(days=days)))
    return sorted({m for m, _ in pairs if m}), sorted({p for _, p in pairs if p})


def _add(into: dict[tuple, list[int]], group: tuple, counts) -> None:
    held = into.get(group)
    if held is None:
        into[group] = [int(v or 0) for v in counts]
    else:
        into[group] = [a + int(b or 0) for a, b in zip(held, counts, strict=True)]


def _bucket(period: str, group: tuple, named: list[tuple[str, int]], counts: list[int], latency: Read | None) -> Bucket:
    values = {dimension: group[at] for dimension, at in named}
    return Bucket(
        period=period,
        team_id=values.get("team"),
        model=values.get("model"),
        prompt=values.get("prompt"),
        ok=latency.answered if latency else 0,
        p50_ms=_middle(latency, 0),
        p95_ms=_middle(latency, 1),
        # The sources' counts are named as the fields are (observability_sources.COUNTS).
        **dict(zip(parts.COUNTS, counts, strict=True)),
    )


def _middle(latency: Read | None, which: int) -> float | None:
    return None if latency is None else _middle_of(latency.buckets[which])


@functools.lru_cache(maxsize=4096)
def _middle_of(bucket: int) -> float:
    return round(bucket_middle_ms(bucket), 2)


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
