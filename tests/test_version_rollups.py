"""The call log per UTC day, prompt and version (what Live A/B reads for a split's whole days):
filled by the upgrade from the hourly call roll-ups, rebuilt for the days a retention run
touches, never written for calls without a prompt, and read by Live A/B so that a split of
many days shows what the call log says. After concurrent settles, a crash and a full rebuild
`tests/test_rollups.py` checks it with the others (assert_rollups_match)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import delete, event, insert, inspect, select, update

from core import clock, db, migrate
from core.budgets import rollups
from core.gateway.observability import percentile
from tests.test_rollups import (  # noqa: F401 - prompts is a fixture
    CALL,
    CALLS,
    LATENCY,
    VERSIONS,
    assert_versions_match,
    per_version_days,
    prompts,
    split_call_rows,
    start_split,
    varied_call_rows,
    version_rollups_say,
)

BASE = datetime(2026, 9, 30, 22, tzinfo=UTC)
# Calls on both sides of midnights, and a month apart (the upgrade's steps).
MINUTES = [-61, 0, 59, 60, 119, 120, 121, 24 * 60 + 3, 45 * 24 * 60, 45 * 24 * 60 + 5, 45 * 24 * 60 + 200]


def test_the_upgrade_fills_the_version_days_from_the_hourly_rollups_and_round_trips(db_url):
    """An installation at 0031 gets each (day, prompt, version) summed from its hours, the
    downgrade drops the table, the upgrade fills it again; calls without a prompt get no row."""
    config = migrate.alembic_config(db_url)
    engine = db.get_engine(db_url)
    rows = varied_call_rows(BASE, MINUTES, cost=lambda index: 11 + index)
    groups, latencies = rollups.call_groups(rows)
    expected, expected_buckets = per_version_days(rows)
    command.downgrade(config, "0031")
    try:
        assert "call_version_daily_rollup" not in inspect(engine).get_table_names()
        with engine.begin() as connection:
            rollups.add_groups(connection, CALL, groups)
            rollups.add_groups(connection, LATENCY, latencies)
        command.upgrade(config, "head")
        with _session(engine) as session:
            found, found_buckets = version_rollups_say(session)
        assert {k: v[:3] for k, v in found.items()} == {k: v[:3] for k, v in expected.items()}
        assert {k: v[3] for k, v in found.items()} == pytest.approx({k: v[3] for k, v in expected.items()})
        assert found_buckets == expected_buckets
        assert len({key[0] for key in expected}) >= 3 and all(key[1] for key in found)
        command.downgrade(config, "0031")
        assert "call_version_daily_rollup" not in inspect(engine).get_table_names()
    finally:
        command.upgrade(config, "head")
    with _session(engine) as session:
        assert {k: v[:3] for k, v in version_rollups_say(session)[0].items()} == {k: v[:3] for k, v in expected.items()}


def _session(engine):
    from sqlmodel import Session

    return Session(engine)


def test_a_retention_rebuild_of_some_hours_resums_their_days_and_leaves_the_others(session):
    """Call-log rows of one hour are deleted (as a retention run does) and that hour rebuilt:
    its day is summed again from all its hours, and a day not touched keeps what it held,
    even a wrong count."""
    rows = [{**r, "request_id": f"req_{uuid.uuid4().hex[:24]}", "key_id": 0} for r in varied_call_rows(BASE, MINUTES)]
    with db.write_session() as s:
        s.execute(insert(CALLS), [{**r, "endpoint": "prompt", "key_id": None} for r in rows])
        rollups.rebuild(s.connection())
        s.commit()
    assert_versions_match(session)
    gone_hour = BASE + timedelta(minutes=120)  # 00:00 on 1 October, a day with calls at 00:59 and 23:xx too
    untouched = BASE.replace(hour=0)
    with db.write_session() as s:
        connection = s.connection()
        connection.execute(update(VERSIONS).where(VERSIONS.c.day == untouched).values(calls=VERSIONS.c.calls + 100))
        connection.execute(update(VERSIONS).values(latency_histogram=b""))
        ids = [r["request_id"] for r in rows if rollups.hour_of(r["created_at"]) == gone_hour]
        hours = rollups.hours_of(connection, "gateway_call", "request_id", ids)
        connection.execute(delete(CALLS).where(CALLS.c.request_id.in_(ids)))
        rollups.rebuild_hours(connection, "gateway_call", hours)
        s.commit()
    kept = [r for r in rows if r["request_id"] not in ids]
    expected, expected_buckets = per_version_days(kept)
    found, found_buckets = version_rollups_say(session)
    day = gone_hour.replace(hour=0)
    assert ids and sum(v[0] for k, v in expected.items() if k[0] == day) >= 1  # another hour of that day counts
    assert {k: v[:3] for k, v in found.items() if k[0] == day} == {k: v[:3] for k, v in expected.items() if k[0] == day}
    assert {k: v for k, v in found_buckets.items() if k[0] == day} == {
        k: v for k, v in expected_buckets.items() if k[0] == day
    }
    wrong = {k: v for k, v in found.items() if k[0] == untouched}
    assert wrong and all(v[0] == expected[k][0] + 100 for k, v in wrong.items())


def test_calls_without_a_prompt_write_nothing_to_the_version_days(session):
    """The settle of calls that name no prompt runs no statement on the table at all."""
    rows = [{**r, "prompt_name": ""} for r in varied_call_rows(BASE, MINUTES)]
    seen: list[str] = []

    def capture(_connection, _cursor, statement, *_rest):
        if "call_version_daily_rollup" in statement:
            seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with db.write_session() as s:
            rollups.add_call_rows(s.connection(), rows)
            s.commit()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert seen == []
    session.rollback()
    assert session.execute(select(VERSIONS)).first() is None
    assert session.execute(select(CALL)).first() is not None  # the hourly roll-ups did count them


@pytest.mark.parametrize(
    "began",
    [
        datetime(2026, 11, 3, 10, 40, tzinfo=UTC),  # a partial first hour, then a partial first day
        datetime(2026, 11, 3, 23, 30, tzinfo=UTC),  # the first whole hour is a midnight: no hours between
        datetime(2026, 11, 3, 0, 0, tzinfo=UTC),  # at midnight: days only
    ],
)
def test_live_ab_of_a_split_many_days_old_equals_the_call_log(session, prompts, began):  # noqa: F811
    """Calls before the split, in its first partial hour, its first partial day and twenty whole
    days: Live A/B shows the call log's counts, cost and error rate, the mean latency, and the
    p95 the call log's latency buckets give. With the hourly roll-ups of the whole days
    deleted the figures stay the same: the days are read from the per-version table."""
    from core.experiments import live_ab
    from core.models.gateway import GatewayCall as Call

    prompt, v2, v3 = start_split(session, prompts, began, percent_b=40)
    clock.set_clock(lambda: began + timedelta(days=21))
    rng = random.Random(began.hour)
    minutes = [-50, -5, 0, 1, 7, 19, 25, 31, 59, 61, 200, 800, *range(30, 60 * 24 * 20, 113)]
    rows = split_call_rows(
        prompt, (v2, v3), began, minutes, rng, actors=("key:1", "key:2"), models=("gpt-4o-mini", "gpt-4o")
    )
    with db.write_session() as s:
        s.execute(insert(Call.__table__), rows)
        rollups.add_call_rows(s.connection(), rows)
        s.commit()
    session.rollback()
    assert_versions_match(session)

    def expected(version) -> tuple:
        names = live_ab.version_keys(version)
        mine = [r for r in rows if r["created_at"] >= began and r["prompt_version"] in names]
        buckets: dict[int, int] = {}
        for r in mine:
            if r["status"] == "ok":
                bucket = rollups.latency_bucket(r["latency_ms"])
                buckets[bucket] = buckets.get(bucket, 0) + 1
        answered = [r["latency_ms"] for r in mine if r["status"] == "ok"]
        return (
            len(mine),
            sum(r["cost_micro"] for r in mine),
            sum(r["status"] != "ok" for r in mine) / len(mine),
            pytest.approx(sum(answered) / len(answered)),
            percentile(buckets, 0.95),
        )

    def shown() -> dict:
        session.rollback()
        stats = live_ab.compare_live(session, actor=prompts.admin, prompt_id=prompt.id)
        return {
            s.version_id: (s.calls, s.cost_micro, pytest.approx(s.error_rate), s.mean_latency_ms, s.p95_latency_ms)
            for s in stats
        }

    first = shown()
    for version in (v2, v3):
        assert first[version.id] == expected(version) and first[version.id][0] > 20
    day = began.replace(hour=0, minute=0)
    midnight = began if began == day else day + timedelta(days=1)
    with db.write_session() as s:
        s.execute(delete(CALL).where(CALL.c.hour >= midnight))
        s.execute(delete(LATENCY).where(LATENCY.c.hour >= midnight))
        s.commit()
    assert shown() == first
