"""The detectors: surges of spend and tokens, jumps of failure rates, keys doing what they never did.

Each reads the hourly roll-ups in bulk for the hours being detected and returns
`Finding`s: what fired, for which series, and a sentence that says it. Thresholds are
multiplied by the sensitivity factor of the detector for the series' team (1 by default);
every detector has a minimum absolute amount so that tiny series never fire.
Answer drift per prompt lives in `drift.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies import baseline
from core.anomalies.wording import Names, amount, band, hour_to, same_hour_of_week
from core.db import table_of
from core.models.rollups import UsageRollup

USAGE = table_of(UsageRollup).c
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Finding:
    detector: str
    series: str  # "key:12", "team:3", "prompt:7", "key:12:model:gpt-4o"...
    team_id: int
    hour: datetime
    observed: float
    usual_low: float
    usual_high: float
    sentence: str


@dataclass(frozen=True)
class Detector:
    label: str
    unit: str  # usd | tokens | rate | calls | score
    minimum: float  # the least amount (above the usual) that may fire, in the unit
    concerns: str  # the role whose Home shows it: finance | governance_lead | admin


# Minimums are per hour: $2.00 of spend, 200,000 tokens, 10 failed calls, 3 calls of a new model
# (or from a new network); the drift detectors' are answers since the change.
DETECTORS: dict[str, Detector] = {
    "spend_surge": Detector("Spend surge", "usd", 2_000_000, "finance"),
    "token_surge": Detector("Token surge", "tokens", 200_000, "finance"),
    "error_rate": Detector("Upstream errors", "rate", 10, "governance_lead"),
    "rate_limited": Detector("Calls refused by rate limits", "rate", 10, "governance_lead"),
    "blocked_rate": Detector("Calls blocked by guardrails", "rate", 10, "governance_lead"),
    "held_rate": Detector("Calls held for review", "rate", 10, "governance_lead"),
    "new_model": Detector("Model new to the key", "calls", 3, "admin"),
    "odd_hour": Detector("Key used at a new hour", "calls", 10, "admin"),
    "rare_model": Detector("Model the team rarely uses", "calls", 5, "admin"),
    "answer_drift": Detector("Answer length drift", "tokens", 20, "governance_lead"),
    "cost_drift": Detector("Cost per call drift", "usd", 20, "governance_lead"),
    "feedback_drift": Detector("Feedback score drift", "score", 20, "governance_lead"),
    "new_network": Detector("Key used from a new network", "calls", 3, "admin"),
    "schema_drift": Detector("JSON-schema failure drift", "rate", 20, "governance_lead"),
}


class Sensitivity:
    """Factor per (detector, team); team 0 is every team's default; 1 when nothing is set."""

    def __init__(self, factors: dict[tuple[str, int], float] | None = None) -> None:
        self.factors = factors or {}

    def factor(self, detector: str, team_id: int) -> float:
        return self.factors.get((detector, team_id), self.factors.get((detector, 0), 1.0))

    def factors_for(self, detector: str, team_ids: Iterable[int]) -> npt_array:
        return np.array([self.factor(detector, t) for t in team_ids], dtype=np.float64)


npt_array = baseline.Matrix


# ---- spend and token surges per key, team and prompt ------------------------------------

_FAMILIES = ("key", "team", "prompt")
_SURGES = {"spend_surge": ("cost", "spent"), "token_surge": ("tokens", "used")}


def needed_hours(targets: Sequence[datetime], *, recent: bool = True) -> list[datetime]:
    """The hours a check of `targets` reads: each, its same hours of past weeks (and the hour
    either side), and with `recent` the previous `FALLBACK_HOURS` (needed only while the data
    holds fewer than `MIN_WEEKS` weeks)."""
    hours: set[datetime] = set()
    for hour in targets:
        hours.add(hour)
        for week in range(1, baseline.WEEKS + 1):
            hours.update(hour - week * WEEK + step * HOUR for step in (-1, 0, 1))
        if recent:
            hours.update(hour - step * HOUR for step in range(1, baseline.FALLBACK_HOURS + 1))
    return sorted(hours)


def young(start: datetime | None, targets: Sequence[datetime]) -> bool:
    """Whether some target has fewer than `MIN_WEEKS` weeks of data behind it."""
    return start is None or start > min(targets) - baseline.MIN_WEEKS * WEEK


def load_usage(session: Session, hours: Sequence[datetime], *, only: tuple[str, int] | None = None) -> pd.DataFrame:
    """Cost, tokens and calls per hour, team, key and prompt for the given hours (of one series: `only`)."""
    r = USAGE
    narrow = [] if only is None else [r[f"{only[0]}_id"] == only[1]]
    frames = []
    for start in range(0, len(hours), 400):  # an IN list of bounded length
        chunk = list(hours[start : start + 400])
        rows = session.execute(
            select(
                r.hour,
                r.team_id,
                r.key_id,
                r.prompt_id,
                func.sum(r.cost_micro),
                func.sum(r.input_tokens + r.output_tokens),
                func.sum(r.calls),
            )
            .where(r.hour.in_(chunk), *narrow)
            .group_by(r.hour, r.team_id, r.key_id, r.prompt_id)
        ).all()
        frames.append(pd.DataFrame(rows, columns=["hour", "team_id", "key_id", "prompt_id", "cost", "tokens", "calls"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def data_start(session: Session) -> datetime | None:
    """The first hour the roll-ups hold: earlier hours are unknown, not zero."""
    first: datetime | None = session.execute(select(func.min(USAGE.hour))).scalar()
    return first


@dataclass(frozen=True)
class SeriesMatrix:
    """One family's series (rows) over the loaded hours (columns); NaN before the data began."""

    kind: str
    ids: list[int]
    teams: list[int]
    columns: dict[datetime, int]
    values: dict[str, baseline.Matrix]  # metric -> matrix

    def at(self, metric: str, hours: Sequence[datetime]) -> baseline.Matrix:
        matrix = self.values[metric]
        out = np.full((len(self.ids), len(hours)), np.nan)
        for j, hour in enumerate(hours):
            column = self.columns.get(hour)
            if column is not None:
                out[:, j] = matrix[:, column]
        return out


def matrices(usage: pd.DataFrame, hours: Sequence[datetime], start: datetime | None) -> list[SeriesMatrix]:
    """The key, team and prompt series of `usage` as matrices over `hours`."""
    result = []
    columns = {hour: j for j, hour in enumerate(hours)}
    before_start = np.array([start is None or hour < start for hour in hours])
    for kind in _FAMILIES:
        column = f"{kind}_id"
        rows = usage[usage[column] != 0] if not usage.empty else usage
        if rows.empty:
            continue
        grouped = rows.groupby([column, "hour"])[["cost", "tokens", "calls"]].sum()
        teams = rows.groupby(column)["team_id"].max()
        ids = [int(i) for i in teams.index]
        values = {}
        for metric in ("cost", "tokens", "calls"):
            wide = grouped[metric].unstack("hour").reindex(index=ids, columns=list(hours)).astype(float)
            matrix = wide.fillna(0.0).to_numpy(copy=True)
            matrix[:, before_start] = np.nan
            values[metric] = matrix
        result.append(SeriesMatrix(kind, ids, [int(t) for t in teams.to_numpy()], columns, values))
    return result


def surges(
    families: list[SeriesMatrix], targets: Sequence[datetime], sensitivity: Sensitivity, names: Names
) -> list[Finding]:
    """Spend and token surges: above the series' own same-hour-of-week band and by at least the minimum."""
    findings = []
    for family in families:
        for hour in targets:
            weeks = [hour - w * WEEK for w in range(1, baseline.WEEKS + 1)]
            recent = [hour - s * HOUR for s in range(1, baseline.FALLBACK_HOURS + 1)]
            for detector, (metric, verb) in _SURGES.items():
                spec = DETECTORS[detector]
                current = family.at(metric, [hour])[:, 0]
                around = family.at(metric, [h + s * HOUR for h in weeks for s in (-1, 1)])
                base = baseline.seasonal(family.at(metric, weeks), family.at(metric, recent), around)
                # Active around this hour of the week (the hours either side): a series that is
                # usually zero here still has a baseline, zero.
                known = base.known | (np.nansum(around, axis=1) > 0)
                factor = sensitivity.factors_for(detector, family.teams)
                fires = (
                    known
                    & (current > base.high(baseline.Z * factor))
                    & (current - base.median >= spec.minimum * factor)
                )
                low, high = base.usual()
                for i in np.flatnonzero(fires):
                    ref, team = family.ids[i], family.teams[i]
                    sentence = (
                        f"{names.series(family.kind, ref)} {verb} {amount(current[i], spec.unit)} in {hour_to(hour)}; "
                        f"its usual for {same_hour_of_week(hour)} is {band(low[i], high[i], spec.unit)}."
                    )
                    findings.append(
                        Finding(
                            detector,
                            f"{family.kind}:{ref}",
                            team,
                            hour,
                            float(current[i]),
                            float(low[i]),
                            float(high[i]),
                            sentence,
                        )
                    )
    return findings
