"""The call log per six UTC hours, team, prompt and model (what a per-hour view over weeks
reads for points of 6 or 12 hours): filled by the upgrade from the hourly grain, and rebuilt
for the hours a retention run rewrites without touching the other six hours. After concurrent
settles, a crash and a full rebuild `tests/test_rollups.py` checks it with the others
(assert_rollups_match)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import event, inspect, select, update

from core import db, migrate
from core.budgets import daily_rollups, rollups
from core.gateway import rate_limit_report
from core.permissions import Role
from tests.test_rollups import (
    CALL,
    HOURLY,
    LATENCY,
    SIX_HOURLY,
    daily_counts,
    packed_histograms,
    per_six_hours,
    varied_call_rows,
)

BASE = datetime(2026, 9, 30, 1, tzinfo=UTC)
# Calls across several six-hour periods, midnights, and a month apart (the upgrade's steps).
MINUTES = [-61, 0, 59, 60, 299, 300, 361, 719, 720, 24 * 60, 45 * 24 * 60, 45 * 24 * 60 + 5]


def six_hour_histograms(latencies: dict) -> dict:
    expected: dict = {}
    for (hour, team, prompt, _version, model, bucket), (calls,) in latencies.items():
        key = (hour.replace(hour=hour.hour - hour.hour % 6), team, prompt, model, bucket)
        expected[key] = expected.get(key, 0) + calls
    return expected


def expected_six_hours(rows):
    groups, latencies = rollups.call_groups(rows)
    hourly = {(h, t, k, a, p, v, m): sums for (h, t, k, a, p, v, m), sums in groups.items()}
    return groups, latencies, per_six_hours({k: [v[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)] for k, v in hourly.items()})


def test_the_upgrade_fills_the_six_hour_grain_from_the_hourly_one_and_round_trips(db_url):
    """An installation at 0030 gets each six hours summed from its hours (histograms merged),
    the downgrade drops the table and the rate-limited calls' index, the upgrade fills it again."""
    config = migrate.alembic_config(db_url)
    engine = db.get_engine(db_url)
    rows = varied_call_rows(BASE, MINUTES, cost=lambda index: 11 + index)
    groups, latencies, expected_counts = expected_six_hours(rows)
    command.downgrade(config, "0030")
    try:
        assert "call_six_hour_rollup" not in inspect(engine).get_table_names()
        with engine.begin() as connection:
            rollups.add_groups(connection, CALL, groups)
            rollups.add_groups(connection, LATENCY, latencies)
            hour = daily_rollups.HOUR
            daily_rollups.add(connection, *daily_rollups.fold(groups, latencies, hour), grain=hour)
        command.upgrade(config, "head")
        with engine.connect() as connection:
            assert daily_counts(connection.execute(select(SIX_HOURLY))) == expected_counts
            assert packed_histograms(connection.execute(select(SIX_HOURLY))) == six_hour_histograms(latencies)
        assert len({key[0] for key in expected_counts}) >= 6
        assert "ix_gateway_call_rate_limited" in {i["name"] for i in inspect(engine).get_indexes("gateway_call")}
        command.downgrade(config, "0030")
        assert "call_six_hour_rollup" not in inspect(engine).get_table_names()
        assert "ix_gateway_call_rate_limited" not in {i["name"] for i in inspect(engine).get_indexes("gateway_call")}
    finally:
        command.upgrade(config, "head")
    with engine.connect() as connection:
        assert daily_counts(connection.execute(select(SIX_HOURLY))) == expected_counts


def test_rebuilding_some_hours_rewrites_their_six_hours_and_leaves_the_others(db_url):
    """A retention run rebuilds the hours it changed: their six hours are summed again from
    every hour they hold (not only the rebuilt one), and six hours it did not touch keep what
    they held, even a wrong count."""
    engine = db.get_engine(db_url)
    rows = varied_call_rows(BASE, MINUTES)
    groups, latencies, expected_counts = expected_six_hours(rows)
    with engine.begin() as connection:
        rollups.add_groups(connection, CALL, groups)
        rollups.add_groups(connection, LATENCY, latencies)
        daily_rollups.rebuild(connection)
    rebuilt_hour = BASE + timedelta(minutes=300)  # 06:00, in the six hours from 06
    untouched = BASE.replace(hour=0)  # the six hours from 00
    with engine.begin() as connection:
        connection.execute(update(SIX_HOURLY).values(calls=SIX_HOURLY.c.calls + 100, latency_histogram=b""))
        daily_rollups.rebuild(connection, hours=[rebuilt_hour])
    with engine.connect() as connection:
        found = daily_counts(connection.execute(select(SIX_HOURLY)))
        packed = packed_histograms(connection.execute(select(SIX_HOURLY)))
        hourly = daily_counts(connection.execute(select(HOURLY)))
    six = rebuilt_hour.replace(hour=6)
    assert {k: v for k, v in found.items() if k[0] == six} == {k: v for k, v in expected_counts.items() if k[0] == six}
    assert {k: v for k, v in packed.items() if k[0] == six} == {
        k: v for k, v in six_hour_histograms(latencies).items() if k[0] == six
    }
    assert sum(v[0] for k, v in hourly.items() if six <= k[0] < six + timedelta(hours=6)) > 1  # more than the one hour
    wrong = {k: v for k, v in found.items() if k[0] == untouched}
    assert wrong and all(v[0] == expected_counts[k][0] + 100 for k, v in wrong.items())


def test_observability_counts_rate_limited_calls_through_their_own_index(session, directory):
    """The rate-limit section's count of the last day's refusals reads only rate-limited calls,
    not the whole call log (SQLite says which index its plan uses; PostgreSQL's planner
    decides by its statistics)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    seen: list[tuple[str, object]] = []

    def capture(_connection, _cursor, statement, parameters, _context, _many):
        if "rate_limited" in statement and "gateway_call" in statement:
            seen.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        rate_limit_report.rate_limit_overview(session, actor=directory.with_role(Role.ADMIN))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert seen
    for statement, parameters in seen:
        plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        assert any("ix_gateway_call_rate_limited" in str(row) for row in plan), plan


@pytest.mark.parametrize("groups_per_batch", [1, 3, 8, 9, 40, 70])
def test_each_grain_adds_a_batch_to_the_rows_it_already_holds_whatever_its_number_of_groups(db_url, groups_per_batch):
    """A settle's batch folds into a few groups per grain, whose stored histograms (on
    PostgreSQL) the upsert of up to 64 returns; a rebuild's many are read in chunks. Either
    way a second batch over the same groups (and some new ones) adds its counts and buckets
    to what the first left."""
    engine = db.get_engine(db_url)
    first_hour = datetime(2026, 10, 1, 3, tzinfo=UTC)
    expected_counts: dict = {}
    expected_buckets: dict = {}
    for batch in range(2):
        groups, histograms = {}, {}
        for g in range(groups_per_batch + batch):  # the second batch holds one group more
            key = (first_hour + timedelta(hours=g), 1 + g % 3, f"prompt-{g % 5}", "gpt-4o-mini")
            groups[key] = [g + batch + 1, g + 1, batch, 0, 0, 0, 1, 10 * g + batch]
            histograms[key] = {30 + g % 4: batch + 1, 40 + batch: 2}
            counts = expected_counts.setdefault(key, [0] * len(daily_rollups.DAILY_SUMS))
            expected_counts[key] = [a + b for a, b in zip(counts, groups[key], strict=True)]
            for bucket, n in histograms[key].items():
                expected_buckets[(*key, bucket)] = expected_buckets.get((*key, bucket), 0) + n
        with engine.begin() as connection:
            daily_rollups.add(connection, groups, histograms, grain=daily_rollups.HOUR)
    with engine.connect() as connection:
        assert daily_counts(connection.execute(select(HOURLY))) == expected_counts
        assert packed_histograms(connection.execute(select(HOURLY))) == expected_buckets
