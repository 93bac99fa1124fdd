"""A key or a person calling a model their team rarely uses: the team's own mix of models
over the last `LOOKBACK` is the yardstick, not only the key's history (a key new to a model
the whole team uses daily is no news; a second key of the team trying `o1` is).

A key or person using the model around the same hour of past weeks is in a habit of its
own and is not told about. Needs an established team (at least `MIN_TEAM_CALLS` calls in the lookback) so a new
team's first days fire nothing. One alert per (key or person, model): the series names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from core.anomalies import baseline
from core.anomalies.detectors import DETECTORS, HOUR, USAGE, WEEK, Finding, Sensitivity
from core.anomalies.wording import Names, hour_to
from core.db import table_of
from core.models.identity import Person

PERSON = table_of(Person).c
LOOKBACK = timedelta(days=28)
RARE_SHARE = 0.01  # under 1 % of the team's calls, divided by the sensitivity factor
MIN_TEAM_CALLS = 500


def rare_models(
    session: Session,
    targets: Sequence[datetime],
    sensitivity: Sensitivity,
    names: Names,
    already: set[tuple[str, datetime]] | None = None,
) -> list[Finding]:
    """Keys and people calling, in the target hours, a model under `RARE_SHARE` of their
    team's calls in the `LOOKBACK` before them. `already`: (series, hour) said by another
    detector (a key's first use of a model), not said twice."""
    if not targets:
        return []
    spec = DETECTORS["rare_model"]
    r = USAGE
    used = session.execute(
        select(r.hour, r.team_id, r.key_id, r.person_id, r.model, func.sum(r.calls))
        .where(r.hour.in_(list(targets)), r.calls > 0, r.team_id != 0)
        .group_by(r.hour, r.team_id, r.key_id, r.person_id, r.model)
    ).all()
    candidates = [
        row
        for row in used
        if (row[2] or row[3]) and row[5] >= spec.minimum * sensitivity.factor("rare_model", int(row[1]))
    ]
    if candidates:
        habits = _habits(session, targets)
        candidates = [
            row for row in candidates if not _in_habit(habits.get((int(row[2]), int(row[3]), row[4])), row[0])
        ]
    if not candidates:
        return []
    first = min(targets)
    teams = sorted({int(row[1]) for row in candidates})
    mix: dict[int, dict[str, int]] = {}
    for team, model, count in session.execute(
        select(r.team_id, r.model, func.sum(r.calls))
        .where(r.team_id.in_(teams), r.hour >= first - LOOKBACK, r.hour < first)
        .group_by(r.team_id, r.model)
    ):
        mix.setdefault(int(team), {})[model] = int(count)
    people = _people(session, sorted({int(row[3]) for row in candidates if not row[2]}))
    findings = []
    for hour, team, key, person, model, count in candidates:
        models = mix.get(int(team), {})
        total = sum(models.values())
        share = models.get(model, 0) / total if total else 0.0
        if total < MIN_TEAM_CALLS or share >= RARE_SHARE / sensitivity.factor("rare_model", int(team)):
            continue
        series = f"key:{key}:rare:{model}" if key else f"person:{person}:rare:{model}"
        if (f"key:{key}:model:{model}", hour) in (already or set()):
            continue
        who = (
            names.key(int(key)) if key else f"{people.get(int(person), f'Person #{person}')} ({names.team(int(team))})"
        )
        sentence = (
            f"{who} called `{model}` {int(count):,} times in {hour_to(hour)}; team {names.team(int(team))} "
            f"made {share:.1%} of its calls in the previous {LOOKBACK.days} days with it "
            f"({models.get(model, 0):,} of {total:,})."
        )
        findings.append(Finding("rare_model", series, int(team), hour, float(count), 0.0, share, sentence))
    return findings


def _around(hour: datetime) -> set[datetime]:
    return {hour - w * WEEK + s * HOUR for w in range(1, baseline.WEEKS + 1) for s in (-1, 0, 1)}


def _habits(session: Session, targets: Sequence[datetime]) -> dict[tuple[int, int, str], set[datetime]]:
    """(key, person, model) -> the hours around the same hours of past weeks it was used in:
    a habit of its own, whatever the team does (skipping those spares the 28-day read on
    almost every run)."""
    r = USAGE
    past = sorted(set().union(*(_around(hour) for hour in targets)))
    found: dict[tuple[int, int, str], set[datetime]] = {}
    for offset in range(0, len(past), 400):
        rows = session.execute(
            select(r.key_id, r.person_id, r.model, r.hour)
            .where(r.hour.in_(past[offset : offset + 400]), r.calls > 0, r.team_id != 0)
            .distinct()
        )
        for key, person, model, hour in rows:
            found.setdefault((int(key), int(person), model), set()).add(hour)
    return found


def _in_habit(used: set[datetime] | None, hour: datetime) -> bool:
    return bool(used) and not _around(hour).isdisjoint(used or set())


def _people(session: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(PERSON.id, PERSON.display_name).where(PERSON.id.in_(ids)))
    return {int(person): name for person, name in rows}
