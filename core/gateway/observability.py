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

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from core import clock
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


@dataclass(frozen=True)
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
    start = clock.now() - timedelta(days=query.days)
    first_hour = ceil_hour(start)
    hours = 0  # per day
    if query.granularity == "hour":
        hours = parts.hours_per_point(session, query, first_hour, HOURS_PER_POINT) if query.max_points else 1
    # A day per point reads as a per-day view, its periods then named by their first hour.
    read = 0 if hours == 24 else hours
    width = len(query.by) + (query.granularity != "total")
    per_period: dict[tuple, _Counts] = {}
    histograms = Histograms()

    sources = parts.sources(read > 0, first_hour)
    counted = [
        *parts.raw_counts(session, query, read, start, first_hour),
        *(row for source in sources for row in parts.rollup_counts(session, query, read, source)),
    ]
    for row in counted:
        group = tuple(row[:width])
        tally = per_period.get(group) or per_period.setdefault(group, _Counts())
        tally.add([int(v or 0) for v in row[width:]])
    histograms.add_rows(parts.raw_latencies(session, query, read, start, first_hour), width)
    for source in sources:
        histograms.add_packed_rows(parts.rollup_latencies(session, query, read, source), width)

    dimensions = width - len(query.by)  # where the grouped dimensions start in a group
    per_group: dict[tuple, _Counts] = {}
    for group, tally in per_period.items():
        per_group.setdefault(group[dimensions:], _Counts()).merge(tally)
    overall = _Counts()
    for tally in per_group.values():
        overall.merge(tally)
    period_latency = histograms.read(_PERCENTS)
    group_latency = period_latency if not dimensions else histograms.read(_PERCENTS, lambda g: g[dimensions:])
    overall_latency = histograms.read(_PERCENTS, lambda _g: ()).get(())

    def period_of(group: tuple) -> str:
        if not dimensions:
            return "total"
        return f"{group[0]} 00" if hours == 24 else group[0]

    buckets = sorted(
        (
            tally.bucket(period_of(group), dict(zip(query.by, group[dimensions:])), period_latency.get(group))
            for group, tally in per_period.items()
        ),
        key=_order,
    )
    totals = sorted(
        (
            tally.bucket("total", dict(zip(query.by, group)), group_latency.get(group))
            for group, tally in per_group.items()
        ),
        key=_order,
    )
    return Metrics(
        buckets=buckets,
        totals=totals,
        calls=overall.calls,
        p50_ms=_middle(overall_latency, 0),
        p95_ms=_middle(overall_latency, 1),
        errors=overall.errors,
        rejected_429=overall.rejected_429,
        cache_hits=overall.cache_hits,
        blocked=overall.blocked,
        held=overall.held,
        cost_micro=overall.cost_micro,
        hours_per_point=max(hours, 1),
    )


def filter_options(session: Session, *, actor: Actor, days: int) -> tuple[list[str], list[str]]:
    """The models and catalog prompts called in the window, to offer as filters."""
    require(actor, Permission.OBSERVABILITY_READ)
    query = MetricsQuery(days=days)
    query.check()
    pairs = parts.models_and_prompts(session, hour_of(clock.now() - timedelta(days=days)))
    return sorted({m for m, _ in pairs if m}), sorted({p for _, p in pairs if p})


class _Counts:
    """The counts of one group (its latency is read from the merged histograms)."""

    def __init__(self) -> None:
        self.calls = self.errors = self.rejected_429 = self.cache_hits = self.blocked = self.held = 0
        self.cost_micro = 0

    def add(self, counts: list[int]) -> None:
        calls, errors, rejected_429, cache_hits, blocked, held, cost_micro = counts
        self.calls += calls
        self.errors += errors
        self.rejected_429 += rejected_429
        self.cache_hits += cache_hits
        self.blocked += blocked
        self.held += held
        self.cost_micro += cost_micro

    def merge(self, other: _Counts) -> None:
        self.add(
            [
                other.calls,
                other.errors,
                other.rejected_429,
                other.cache_hits,
                other.blocked,
                other.held,
                other.cost_micro,
            ]
        )

    def bucket(self, period: str, named: dict, latency: Read | None) -> Bucket:
        return Bucket(
            period=period,
            team_id=named.get("team"),
            model=named.get("model"),
            prompt=named.get("prompt"),
            calls=self.calls,
            ok=latency.answered if latency else 0,
            p50_ms=_middle(latency, 0),
            p95_ms=_middle(latency, 1),
            errors=self.errors,
            rejected_429=self.rejected_429,
            cache_hits=self.cache_hits,
            blocked=self.blocked,
            held=self.held,
            cost_micro=self.cost_micro,
        )


def _middle(latency: Read | None, which: int) -> float | None:
    return None if latency is None else round(bucket_middle_ms(latency.buckets[which]), 2)


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
