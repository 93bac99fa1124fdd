"""The surge detector's promises over many generated series (no database: the detector's
numpy core on matrices): a 5x surge worth the minimum always fires, a surge below the
minimum never does, and ordinary noise does not either."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.anomalies import baseline
from core.anomalies.detectors import DETECTORS, HOUR, WEEK, Sensitivity, SeriesMatrix, surges
from core.anomalies.wording import Names

TARGET = datetime(2026, 11, 24, 2, tzinfo=UTC)
HOURS = sorted(
    {TARGET}
    | {TARGET - w * WEEK + s * HOUR for w in range(1, baseline.WEEKS + 1) for s in (-1, 0, 1)}
    | {TARGET - s * HOUR for s in range(1, baseline.FALLBACK_HOURS + 1)}
)


def _family(history: np.ndarray, now: float) -> SeriesMatrix:
    values = history.copy()
    values[0, HOURS.index(TARGET)] = now
    return SeriesMatrix(
        "key", [1], [1], {h: j for j, h in enumerate(HOURS)}, {"cost": values, "tokens": values * 0, "calls": values}
    )


series = st.tuples(
    st.floats(min_value=0.05, max_value=50.0),  # the usual dollars per hour
    st.floats(min_value=0.0, max_value=0.3),  # noise, relative
    st.integers(min_value=0, max_value=2**31),
)


def _history(usual: float, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (usual * 1_000_000 * np.clip(rng.normal(1, noise, (1, len(HOURS))), 0.5, 1.5)).astype(float)


@settings(max_examples=150, deadline=None)
@given(series, st.floats(min_value=5.0, max_value=100.0))
def test_a_5x_surge_worth_the_minimum_fires(spec, factor):
    usual, noise, seed = spec
    history = _history(usual, noise, seed)
    now = max(usual * factor, usual + 2.5) * 1_000_000
    found = surges([_family(history, now)], [TARGET], Sensitivity(), Names())
    assert [f.detector for f in found if f.detector == "spend_surge"] == ["spend_surge"]


@settings(max_examples=150, deadline=None)
@given(series, st.floats(min_value=0.0, max_value=0.99))
@example((1.0, 0.25, 219), 0.9375)  # the same hours' median is below the whole history's
def test_a_surge_below_the_minimum_never_fires(spec, share):
    usual, noise, seed = spec
    history = _history(usual, noise, seed)
    # "Above the usual" is above the same hour of the previous weeks, the detector's own median.
    same_hours = [HOURS.index(TARGET - w * WEEK) for w in range(1, baseline.WEEKS + 1)]
    median = float(np.median(history[0, same_hours]))
    now = median + share * DETECTORS["spend_surge"].minimum
    assert surges([_family(history, now)], [TARGET], Sensitivity(), Names()) == []


@settings(max_examples=150, deadline=None)
@given(series)
def test_ordinary_noise_never_fires(spec):
    usual, noise, seed = spec
    history = _history(usual, noise, seed)
    now = float(np.max(history))  # the busiest hour it ever had
    assert surges([_family(history, now)], [TARGET], Sensitivity(), Names()) == []
