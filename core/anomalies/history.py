"""An alert's series over the days around it, with its usual band hour by hour: what the
Alerts page charts, so the anomaly is seen against the baseline that judged it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies import baseline
from core.anomalies.detectors import DETECTORS, HOUR, WEEK, data_start, load_usage, matrices, needed_hours
from core.anomalies.rates import CALLS, RATES
from core.anomalies.schema_drift import CHECKS
from core.budgets import pending_rollups
from core.db import get_or_not_found
from core.models.anomalies import AnomalyAlert
from core.permissions import Actor, Permission, require

BEFORE = timedelta(days=3)
AFTER = timedelta(hours=6)
_SURGE_METRIC = {"spend_surge": "cost", "token_surge": "tokens"}


@dataclass(frozen=True)
class History:
    unit: str
    hours: list[datetime]
    values: list[float]
    low: list[float]  # the usual band; empty when the detector has none per hour
    high: list[float]
    marked: list[datetime]  # the alert's hours


def alert_history(session: Session, *, actor: Actor, alert_id: int) -> History:
    require(actor, Permission.ALERT_READ)
    pending_rollups.catch_up(session.connection())  # every call settled so far, folded first
    alert = get_or_not_found(session, AnomalyAlert, alert_id, "Anomaly alert")
    spec = DETECTORS[alert.detector]
    first = alert.first_hour - BEFORE
    hours = [first + i * HOUR for i in range(int((alert.last_hour + AFTER - first) / HOUR) + 1)]
    marked = [alert.first_hour + i * HOUR for i in range(int((alert.last_hour - alert.first_hour) / HOUR) + 1)]
    kind, _, ref = alert.series.partition(":")
    ref_id = int(ref.split(":")[0]) if ref.split(":")[0].isdigit() else 0
    if alert.detector in _SURGE_METRIC and kind in ("key", "team", "prompt"):
        return _surge(session, alert.detector, spec.unit, kind, ref_id, hours, marked)
    if alert.detector in RATES and kind in ("key", "team"):
        return _rate(session, alert, kind, ref_id, hours, marked)
    if alert.detector == "schema_drift":
        return _schema_failures(session, alert, ref.split(":")[0], hours, marked)
    values = _calls(session, kind, ref_id, hours) if kind in ("key", "team") else [0.0] * len(hours)
    return History("calls", hours, values, [], [], marked)


def _surge(
    session: Session, detector: str, unit: str, kind: str, ref: int, hours: list[datetime], marked: list[datetime]
) -> History:
    metric = _SURGE_METRIC[detector]
    loaded = needed_hours(hours)
    families = matrices(load_usage(session, loaded, only=(kind, ref)), loaded, data_start(session))
    family = next((f for f in families if f.kind == kind and ref in f.ids), None)
    if family is None:
        return History(unit, hours, [0.0] * len(hours), [], [], marked)
    row = family.ids.index(ref)
    values = np.nan_to_num(family.at(metric, hours)[row])
    weeks = np.stack([family.at(metric, [h - w * WEEK for h in hours])[row] for w in range(1, baseline.WEEKS + 1)], 1)
    recent = np.stack(
        [family.at(metric, [h - s * HOUR for h in hours])[row] for s in range(1, baseline.FALLBACK_HOURS + 1)], 1
    )
    low, high = baseline.seasonal(weeks, recent).usual()
    return History(unit, hours, values.tolist(), low.tolist(), high.tolist(), marked)


def _rate(
    session: Session, alert: AnomalyAlert, kind: str, ref: int, hours: list[datetime], marked: list[datetime]
) -> History:
    column = RATES[alert.detector][0]
    rows = session.execute(
        select(CALLS.hour, func.sum(CALLS.calls), func.sum(CALLS[column]))
        .where(CALLS.hour >= hours[0], CALLS.hour <= hours[-1], CALLS[f"{kind}_id"] == ref)
        .group_by(CALLS.hour)
    ).all()
    by_hour = {hour: (calls, count) for hour, calls, count in rows}
    values = [by_hour[h][1] / by_hour[h][0] if by_hour.get(h, (0, 0))[0] else 0.0 for h in hours]
    return History("rate", hours, values, [0.0] * len(hours), [alert.usual_high] * len(hours), marked)


def _schema_failures(
    session: Session, alert: AnomalyAlert, prompt: str, hours: list[datetime], marked: list[datetime]
) -> History:
    """The prompt's share of answers failing their schema, hour by hour, all versions together:
    the change shows as the step."""
    rows = session.execute(
        select(CHECKS.hour, func.sum(CHECKS.checked), func.sum(CHECKS.failed))
        .where(CHECKS.prompt_name == prompt, CHECKS.hour >= hours[0], CHECKS.hour <= hours[-1])
        .group_by(CHECKS.hour)
    ).all()
    by_hour = {hour: (int(checked), int(failed)) for hour, checked, failed in rows}  # PostgreSQL sums are Decimal
    values = [by_hour[h][1] / by_hour[h][0] if by_hour.get(h, (0, 0))[0] else 0.0 for h in hours]
    return History("rate", hours, values, [0.0] * len(hours), [alert.usual_high] * len(hours), marked)


def _calls(session: Session, kind: str, ref: int, hours: list[datetime]) -> list[float]:
    rows = session.execute(
        select(CALLS.hour, func.sum(CALLS.calls))
        .where(CALLS.hour >= hours[0], CALLS.hour <= hours[-1], CALLS[f"{kind}_id"] == ref)
        .group_by(CALLS.hour)
    ).all()
    by_hour = {hour: float(calls) for hour, calls in rows}
    return [by_hour.get(h, 0.0) for h in hours]
