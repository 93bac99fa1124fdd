"""Failure rates jumping per team and per key: upstream errors, 429 refusals, guardrail
blocks and held calls, each as a share of the hour's calls against the usual share: that of
the previous day and of the same hours of the past weeks (the hour either side too).

A rate fires when the hour has at least the minimum count of such calls, the share is at
least three times the usual one (and 5 points above it), and the excess is beyond chance:
more than Z binomial standard deviations above what the usual share predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies import baseline
from core.anomalies.detectors import DETECTORS, HOUR, WEEK, Finding, Sensitivity
from core.anomalies.wording import Names, amount, hour_to
from core.db import table_of
from core.models.rollups import CallRollup

CALLS = table_of(CallRollup).c

# detector -> call_rollup column, and how the sentence names the calls
RATES = {
    "error_rate": ("errors", "failed upstream"),
    "rate_limited": ("rejected_429", "were refused by rate limits"),
    "blocked_rate": ("blocked", "were blocked by guardrails"),
    "held_rate": ("held", "were held for review"),
}
Z = 4.0
RATIO = 3.0
MARGIN = 0.05
PRIOR_RATE = 0.01  # the usual share assumed for a series with too little history
MIN_HISTORY_CALLS = 50
HISTORY_HOURS = 24
_COUNTS = ["calls", *(column for column, _ in RATES.values())]


def _counts(session: Session, hours: Sequence[datetime], *, per_hour: bool) -> pd.DataFrame:
    c = CALLS
    keys = [c.hour, c.team_id, c.key_id] if per_hour else [c.team_id, c.key_id]
    rows = session.execute(
        select(*keys, *(func.sum(c[name]) for name in _COUNTS)).where(c.hour.in_(list(hours))).group_by(*keys)
    ).all()
    columns = (["hour"] if per_hour else []) + ["team_id", "key_id", *_COUNTS]
    return pd.DataFrame(rows, columns=columns)


def rate_jumps(session: Session, targets: Sequence[datetime], sensitivity: Sensitivity, names: Names) -> list[Finding]:
    """Every rate detector, for teams and keys, over the target hours."""
    if not targets:
        return []
    current = _counts(session, targets, per_hour=True)
    if current.empty:
        return []
    first = min(targets)
    usual_hours = {first - step * HOUR for step in range(1, HISTORY_HOURS + 1)}
    usual_hours |= {h - w * WEEK + s * HOUR for h in targets for w in range(1, baseline.WEEKS + 1) for s in (-1, 0, 1)}
    history = _counts(session, sorted(usual_hours - set(targets)), per_hour=False)
    findings: list[Finding] = []
    for kind, column in (("team", "team_id"), ("key", "key_id")):
        aggregate: dict[str, str] = dict.fromkeys(_COUNTS, "sum")
        if column != "team_id":
            aggregate["team_id"] = "max"
        now = current[current[column] != 0].groupby(["hour", column]).agg(aggregate)
        if now.empty:
            continue
        past = history[history[column] != 0].groupby(column)[_COUNTS].sum()
        for detector, (count_column, verb) in RATES.items():
            findings.extend(_fire(detector, kind, now, past, count_column, verb, sensitivity, names))
    return findings


def _fire(
    detector: str,
    kind: str,
    now: pd.DataFrame,
    past: pd.DataFrame,
    count_column: str,
    verb: str,
    sensitivity: Sensitivity,
    names: Names,
) -> list[Finding]:
    spec = DETECTORS[detector]
    refs = now.index.get_level_values(1).to_numpy()
    hours = now.index.get_level_values(0)
    teams = now["team_id"].to_numpy() if "team_id" in now.columns else refs
    calls = now["calls"].to_numpy(dtype=float)
    count = now[count_column].to_numpy(dtype=float)
    past_calls = past["calls"].reindex(refs).fillna(0).to_numpy(dtype=float)
    past_count = past[count_column].reindex(refs).fillna(0).to_numpy(dtype=float)
    usual = np.where(past_calls >= MIN_HISTORY_CALLS, past_count / np.maximum(past_calls, 1), PRIOR_RATE)
    usual = np.maximum(usual, 0.001)
    rate = count / np.maximum(calls, 1)
    factor = np.array([sensitivity.factor(detector, int(t)) for t in teams])
    sigma = np.sqrt(np.maximum(calls, 1) * usual * (1 - usual))
    fires = (
        (count >= spec.minimum * factor)
        & (rate >= np.maximum(RATIO * factor * usual, usual + MARGIN * factor))
        & (count - calls * usual > Z * factor * sigma)
    )
    band_high = usual + 2 * np.sqrt(usual * (1 - usual) / np.maximum(calls, 1))
    findings = []
    for i in np.flatnonzero(fires):
        hour = hours[i].to_pydatetime() if hasattr(hours[i], "to_pydatetime") else hours[i]
        ref, team = int(refs[i]), int(teams[i])
        sentence = (
            f"{names.series(kind, ref)}: {int(count[i]):,} of {int(calls[i]):,} calls {verb} in {hour_to(hour)} "
            f"({amount(rate[i], 'rate')}); its usual share is {amount(usual[i], 'rate')}."
        )
        findings.append(
            Finding(detector, f"{kind}:{ref}", team, hour, float(rate[i]), 0.0, float(band_high[i]), sentence)
        )
    return findings
