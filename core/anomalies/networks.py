"""A key used from a network it never was: a network prefix (core.gateway.key_networks) first
seen in the hour, for a key with an established history.

Established means two things, both needed: the key made calls on at least `ESTABLISHED_DAYS`
distinct days before the hour (a new key's first networks are all new), and its network
history began at least `NETWORK_HISTORY` before the hour (the table starts empty when
Quorum is upgraded: every key's first networks then are new to it only because nothing
was recorded). Each (key, network) is new once, so it opens one alert at most.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core.anomalies.detectors import DETECTORS, HOUR, USAGE, Finding, Sensitivity
from core.anomalies.wording import Names, hour_to
from core.db import table_of
from core.models.anomalies import KeyNetwork

NETWORKS = table_of(KeyNetwork).c
ESTABLISHED_DAYS = 7
NETWORK_HISTORY = timedelta(days=7)
DAYS_LOOKBACK = timedelta(days=365)  # days of calls counted at most this far back


def new_networks(
    session: Session, targets: Sequence[datetime], sensitivity: Sensitivity, names: Names
) -> list[Finding]:
    if not targets:
        return []
    first, end = min(targets), max(targets) + HOUR
    n = NETWORKS
    fresh = session.execute(
        select(n.key_id, n.team_id, n.network, n.first_seen, n.calls).where(
            n.first_seen >= first, n.first_seen < end, n.key_id.is_not(None)
        )
    ).all()
    if not fresh:
        return []
    keys = sorted({int(row.key_id) for row in fresh})
    history = _history_start(session, keys)
    spec = DETECTORS["new_network"]
    wanted = set(targets)
    candidates = []
    # The cheap conditions first: the days of calls are read only for what passes them.
    for key, team, network, seen, calls in fresh:
        hour = seen.replace(minute=0, second=0, microsecond=0)
        since = history.get(int(key))
        if hour not in wanted or since is None or since > hour - NETWORK_HISTORY:
            continue
        if calls < spec.minimum * sensitivity.factor("new_network", team):
            continue
        candidates.append((int(key), int(team), network, hour, int(calls)))
    if not candidates:
        return []
    days = _days_of_calls(session, sorted({c[0] for c in candidates}), sorted({c[1] for c in candidates}), end)
    findings = []
    for key, team, network, hour, calls in candidates:
        # Days before the hour's own: a day counts as history once it is over.
        known_days = sum(1 for day in days.get(key, ()) if day < hour.date())
        if known_days < ESTABLISHED_DAYS:
            continue
        sentence = (
            f"{names.key(key)} was used from {network} in {hour_to(hour)} ({calls:,} calls so far), "
            f"a network it had not used in its {known_days:,} days of calls."
        )
        findings.append(
            Finding("new_network", f"key:{key}:network:{network}", team, hour, float(calls), 0.0, 0.0, sentence)
        )
    return findings


def _history_start(session: Session, keys: list[int]) -> dict[int, datetime]:
    """key -> the first time any network of it was recorded."""
    n = NETWORKS
    found: dict[int, datetime] = {}
    for offset in range(0, len(keys), 400):
        for key, seen in session.execute(
            select(n.key_id, n.first_seen).where(n.key_id.in_(keys[offset : offset + 400]))
        ).all():
            found[int(key)] = min(seen, found.get(int(key), seen))
    return found


def _days_of_calls(session: Session, keys: list[int], teams: list[int], end: datetime) -> dict[int, set[date]]:
    """key -> the UTC days it made calls on, over `DAYS_LOOKBACK` before `end`.

    Filtered by the keys' teams too, so the (team, hour) index narrows the scan to them."""
    r = USAGE
    days: dict[int, set[date]] = defaultdict(set)
    for offset in range(0, len(keys), 400):
        rows = session.execute(
            select(r.key_id, r.hour)
            .where(
                r.team_id.in_(teams),
                r.hour >= end - DAYS_LOOKBACK,
                r.hour < end,
                r.key_id.in_(keys[offset : offset + 400]),
                r.calls > 0,
            )
            .distinct()
        ).all()
        for key, hour in rows:
            days[int(key)].add(hour.date())
    return days
