"""Keys doing what they never did: calling a model new to them, or calling at an hour of
the week at which they were never used.

Both need an established key (used for at least `ESTABLISHED` before the hour), or every
new key would fire on its first days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies import baseline
from core.anomalies.detectors import DETECTORS, HOUR, USAGE, WEEK, Finding, Sensitivity, SeriesMatrix
from core.anomalies.wording import Names, hour_to, same_hour_of_week

LOOKBACK = timedelta(days=28)
ESTABLISHED = timedelta(days=21)


def _first_use(
    session: Session, key_ids: list[int], team_ids: list[int], start: datetime, end: datetime
) -> dict[tuple[int, str], datetime]:
    """(key, model) -> the first hour in [start, end] it was used, for a few candidate keys.

    Filtered by their teams too, so the (team, hour) index narrows the scan to those teams."""
    r = USAGE
    result: dict[tuple[int, str], datetime] = {}
    for offset in range(0, len(key_ids), 400):
        chunk = key_ids[offset : offset + 400]
        rows = session.execute(
            select(r.key_id, r.model, func.min(r.hour))
            .where(
                r.team_id.in_(sorted(set(team_ids))),
                r.hour >= start,
                r.hour <= end,
                r.key_id.in_(chunk),
                r.calls > 0,
            )
            .group_by(r.key_id, r.model)
        ).all()
        result.update({(int(key), model): first for key, model, first in rows})
    return result


def _pairs(session: Session, hours: Sequence[datetime]) -> set[tuple[int, str]]:
    """The (key, model) pairs used in `hours`."""
    r = USAGE
    found: set[tuple[int, str]] = set()
    for offset in range(0, len(hours), 400):
        rows = session.execute(
            select(r.key_id, r.model)
            .where(r.hour.in_(list(hours[offset : offset + 400])), r.key_id != 0, r.calls > 0)
            .distinct()
        ).all()
        found.update((int(key), model) for key, model in rows)
    return found


def key_use(
    session: Session,
    keys: SeriesMatrix | None,
    targets: Sequence[datetime],
    sensitivity: Sensitivity,
    names: Names,
    start: datetime | None,
) -> list[Finding]:
    """New models per key and keys at new hours of the week, over the target hours.

    Only candidates are looked up over the whole `LOOKBACK`: keys at an hour of the week they
    were not used around, and (key, model) pairs not seen at the same hours of past weeks."""
    if keys is None or not targets or start is None:
        return []
    calls_now = keys.at("calls", list(targets))
    odd = _odd_candidates(keys, calls_now, targets, sensitivity)
    past = sorted({h - w * WEEK + s * HOUR for h in targets for w in range(1, baseline.WEEKS + 1) for s in (-1, 0, 1)})
    unseen = _pairs(session, targets) - _pairs(session, past)
    candidates = sorted({keys.ids[i] for i, _j, _weeks in odd} | {key for key, _model in unseen})
    if not candidates:
        return []
    team_of = dict(zip(keys.ids, keys.teams, strict=True))
    teams = [team_of.get(key, names.keys.get(key, ("", 0))[1]) for key in candidates]
    first, last = min(targets), max(targets)
    first_use = _first_use(session, candidates, teams, first - LOOKBACK, last + HOUR)
    key_first: dict[int, datetime] = {}
    for (key, _model), hour in first_use.items():
        key_first[key] = min(hour, key_first.get(key, hour))
    findings = _new_models(session, first_use, key_first, targets, sensitivity, names, start)
    findings.extend(_odd_hours(keys, calls_now, odd, key_first, targets, names, start))
    return findings


def _established(key_first: dict[int, datetime], key: int, hour: datetime, start: datetime) -> bool:
    known_since = key_first.get(key)
    # A key first seen before the loaded window began is older than the window: established.
    return known_since is not None and known_since <= hour - ESTABLISHED and hour - ESTABLISHED >= start


def _new_models(
    session: Session,
    first_use: dict[tuple[int, str], datetime],
    key_first: dict[int, datetime],
    targets: Sequence[datetime],
    sensitivity: Sensitivity,
    names: Names,
    start: datetime,
) -> list[Finding]:
    spec = DETECTORS["new_model"]
    wanted = set(targets)
    fresh = [(key, model, hour) for (key, model), hour in first_use.items() if hour in wanted]
    findings = []
    r = USAGE
    for key, model, hour in fresh:
        if not _established(key_first, key, hour, start):
            continue
        team = names.keys.get(key, ("", 0))[1]
        calls = (
            session.execute(select(func.sum(r.calls)).where(r.hour == hour, r.key_id == key, r.model == model)).scalar()
            or 0
        )
        if calls < spec.minimum * sensitivity.factor("new_model", team):
            continue
        known = sorted({m for (k, m), first in first_use.items() if k == key and first < hour})
        usual = ", ".join(f"`{m}`" for m in known) or "no model"
        sentence = (
            f"{names.key(key)} called `{model}` {calls:,} times in {hour_to(hour)}, a model it had not used "
            f"in the previous {LOOKBACK.days} days (it used {usual})."
        )
        findings.append(Finding("new_model", f"key:{key}:model:{model}", team, hour, float(calls), 0.0, 0.0, sentence))
    return findings


def _odd_candidates(
    keys: SeriesMatrix, calls_now: baseline.Matrix, targets: Sequence[datetime], sensitivity: Sensitivity
) -> list[tuple[int, int, int]]:
    """(key row, target column, weeks known) where a key made the minimum of calls at an hour
    of the week it was never used around in at least `MIN_WEEKS` weeks."""
    spec = DETECTORS["odd_hour"]
    factor = sensitivity.factors_for("odd_hour", keys.teams)
    found: list[tuple[int, int, int]] = []
    for j, hour in enumerate(targets):
        weeks = keys.at("calls", [hour - w * WEEK for w in range(1, baseline.WEEKS + 1)])
        # Neighbouring hours too: traffic that starts an hour early is not a stranger at the door.
        around = keys.at("calls", [hour - w * WEEK + s * HOUR for w in range(1, baseline.WEEKS + 1) for s in (-1, 1)])
        known_weeks = np.sum(~np.isnan(weeks), axis=1)
        never = (np.nansum(weeks, axis=1) == 0) & (np.nansum(around, axis=1) == 0)
        fires = (known_weeks >= baseline.MIN_WEEKS) & never & (np.nan_to_num(calls_now[:, j]) >= spec.minimum * factor)
        found.extend((int(i), j, int(known_weeks[i])) for i in np.flatnonzero(fires))
    return found


def _odd_hours(
    keys: SeriesMatrix,
    calls_now: baseline.Matrix,
    candidates: list[tuple[int, int, int]],
    key_first: dict[int, datetime],
    targets: Sequence[datetime],
    names: Names,
    start: datetime,
) -> list[Finding]:
    findings = []
    for i, j, known_weeks in candidates:
        key, hour = keys.ids[i], targets[j]
        if not _established(key_first, key, hour, start):
            continue
        calls = int(calls_now[i, j])
        sentence = (
            f"{names.key(key)} made {calls:,} calls in {hour_to(hour)}; in the previous "
            f"{known_weeks} weeks it was never used around {same_hour_of_week(hour)}."
        )
        findings.append(Finding("odd_hour", f"key:{key}:hour", keys.teams[i], hour, float(calls), 0.0, 0.0, sentence))
    return findings
