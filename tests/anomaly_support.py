"""Crafted hourly roll-up series for the anomaly tests: written straight into the tables."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from core import clock, db
from core.db import table_of
from core.models.identity import Team
from core.models.keys import ApiKey
from core.models.rollups import CallRollup, UsageRollup

HOUR = timedelta(hours=1)
# A Tuesday: the hour 02:00-03:00 UTC is "the hour to 03:00".
TARGET = datetime(2026, 11, 24, 2, tzinfo=UTC)
NOW = TARGET + timedelta(hours=1, minutes=5)


def team_id(session, name: str) -> int:
    return session.execute(select(table_of(Team).c.id).where(table_of(Team).c.name == name)).scalar_one()


def add_key(session, team: int, label: str) -> int:
    key = ApiKey(team_id=team, label=label, prefix=f"qk_{label}"[:24], key_hash=label.ljust(64, "0"), created_by="test")
    session.add(key)
    session.commit()
    return key.id


def usage(session, rows: list[dict]) -> None:
    """Usage roll-up rows: each {hour, team_id, key_id, cost_micro, ...}; defaults fill the rest."""
    base = dict(
        person_id=0,
        prompt_id=0,
        model="gpt-4o-mini",
        calls=10,
        input_tokens=1000,
        cached_input_tokens=0,
        output_tokens=500,
        reasoning_tokens=0,
        cost_micro=0,
        cache_hits=0,
    )
    with db.write_session() as s:
        s.execute(insert(table_of(UsageRollup)), [{**base, **row} for row in rows])
        s.commit()


def calls(session, rows: list[dict]) -> None:
    base = dict(
        team_id=0,
        key_id=0,
        actor="",
        prompt_name="",
        prompt_version="",
        model="gpt-4o-mini",
        calls=0,
        ok=0,
        errors=0,
        rejected_429=0,
        blocked=0,
        held=0,
        cache_hits=0,
        input_tokens=0,
        output_tokens=0,
        cost_micro=0,
        ok_latency_ms=0.0,
    )
    with db.write_session() as s:
        s.execute(insert(table_of(CallRollup)), [{**base, **row} for row in rows])
        s.commit()


def steady(
    team: int, key: int, *, weeks: int = 6, cost: int = 500_000, until: datetime = TARGET, **extra
) -> list[dict]:
    """Every hour of `weeks` weeks before `until`, at about `cost` micro-dollars (a small daily wobble)."""
    start = until - timedelta(weeks=weeks)
    rows, hour = [], start
    while hour < until:
        wobble = 1.0 + 0.1 * ((hour.hour % 5) - 2) / 2
        rows.append({"hour": hour, "team_id": team, "key_id": key, "cost_micro": int(cost * wobble), **extra})
        hour += HOUR
    return rows


def at_now():
    clock.set_clock(lambda: NOW)


def concurrently(count: int, work) -> None:
    """`work(index)` in `count` threads released together; any error fails the test."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def one(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as error:  # noqa: BLE001 - looked at below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
