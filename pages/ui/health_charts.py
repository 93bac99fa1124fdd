"""Observability's four charts, built from the metrics' buckets in one pass of plain Python.

A 90-day view holds thousands of (period, group) points: regrouping them through pandas
(a frame, a melt, a groupby per chart) cost more than reading them from the database
(bench/pages.py). Here each chart's traces are lists filled point by point, in the order
the buckets come (by period), and handed to `charts.figure` as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from core.gateway.observability import Bucket
from pages.ui import charts

# Each a share of the period's calls: its errors, 429s and cache hits, in that order.
_RATES = ("error rate", "429 rate", "cache hit rate")
_GUARDED = ("blocked", "held")


def health_figures(
    buckets: Sequence[Bucket], *, label: Callable[[Bucket], str], time_of: Callable[[str], str], period_name: str
) -> list[go.Figure]:
    """Calls per period by group (stacked bars), latency p50/p95 by group (lines), the error,
    429 and cache-hit rates (lines) and the blocked and held requests (bars), each x a period
    as ISO text (plotly turns datetimes into text one by one: seconds for 90 days per hour)."""
    calls: dict[str, tuple[list, list]] = {}
    latency: dict[tuple[str, str], tuple[list, list]] = {}
    per_period: dict[str, list[int]] = {}
    for bucket in buckets:
        x, name = time_of(bucket.period), label(bucket)
        _point(calls, name, x, bucket.calls)
        if bucket.p50_ms is not None:
            _point(latency, (name, "p50"), x, bucket.p50_ms)
            _point(latency, (name, "p95"), x, bucket.p95_ms)
        sums = per_period.setdefault(x, [0] * 6)
        for i, value in enumerate(
            (bucket.calls, bucket.errors, bucket.rejected_429, bucket.cache_hits, bucket.blocked, bucket.held)
        ):
            sums[i] += value
    periods = sorted(per_period)
    totals = [per_period[p] for p in periods]
    rates = {name: (periods, [t[i + 1] / t[0] for t in totals]) for i, name in enumerate(_RATES)}
    guarded = {name: (periods, [t[4 + i] for t in totals]) for i, name in enumerate(_GUARDED)}
    largest_rate = max((max(ys) for _x, ys in rates.values() if ys), default=0.0)
    return [
        _dated(
            charts.count_axis(
                charts.bar_figure(calls, title=f"Calls per {period_name}"),
                max((t[0] for t in totals), default=0),
            )
        ),
        _dated(charts.line_figure(latency, title="Latency p50 and p95 (ms)")),
        _dated(charts.percent_axis(charts.line_figure(rates, title="Error, 429 and cache-hit rates"), largest_rate)),
        _dated(
            charts.count_axis(
                charts.bar_figure(guarded, title="Blocked and held requests"),
                max((t[4] + t[5] for t in totals), default=0),
            )
        ),
    ]


def _point(series: dict, name, x: str, y) -> None:
    xs, ys = series.get(name) or series.setdefault(name, ([], []))
    xs.append(x)
    ys.append(y)


def _dated(figure: go.Figure) -> go.Figure:
    return figure.update_xaxes(type="date")
