"""The call log per UTC hour, team, prompt and model (what Observability's per-hour views read):
equal to the call log after a crash inside a fold's write of it and through the upgrade that fills
it; after concurrent settles and a rebuild `tests/test_rollups.py` checks it with the others
(assert_rollups_match)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.exc import OperationalError

from core import db, migrate
from core.budgets import latency_histogram, rollups
from core.gateway.observability import MetricsQuery, gateway_metrics
from core.permissions import Role
from tests.test_rollups import (  # noqa: F401 - traffic is a fixture
    CALL,
    HOURLY,
    LATENCY,
    assert_rollups_match,
    call_log_says,
    daily_counts,
    fold_once,
    packed_histograms,
    per_hour,
    traffic,
    varied_call_rows,
    waiting_calls,
)


def test_a_crash_inside_the_hourly_grain_write_leaves_nothing_half_applied(session, traffic, monkeypatch):  # noqa: F811
    """A fold dies after the hourly grain's counts are upserted and before its histogram is
    merged: the whole fold rolls back, so its calls still wait and no roll-up counts them, and
    the next fold counts each of them once."""
    traffic(6, threads=1)
    fold_once(session)
    traffic(6, threads=1)  # into the same hours' rows: their histograms are merged
    waiting = waiting_calls(session)
    assert waiting > 0
    real_merged = latency_histogram.merged
    crashes = []

    def crash_once(packed, counts):
        if not crashes:
            crashes.append(1)
            raise RuntimeError("the process died here")
        return real_merged(packed, counts)

    monkeypatch.setattr(latency_histogram, "merged", crash_once)
    # On SQLite the histogram is merged inside the upsert, by a function SQLite calls back.
    with pytest.raises((RuntimeError, OperationalError)):
        fold_once(session)
    assert crashes
    assert waiting_calls(session) == waiting
    assert_rollups_match(session)


def test_observability_per_hour_shows_the_call_log_after_concurrent_settles(session, traffic, directory):  # noqa: F811
    traffic(24)
    calls = per_hour(call_log_says(session))
    result = gateway_metrics(
        session,
        actor=directory.with_role(Role.AUDITOR),
        query=MetricsQuery(days=2, by=("team", "model"), granularity="hour"),
    )
    shown = {
        (b.period, b.team_id, b.model): (b.calls, b.ok, b.errors, b.rejected_429, b.cost_micro) for b in result.buckets
    }
    expected: dict = {}
    for (hour, team, _prompt, model), sums in calls.items():
        into = expected.setdefault((f"{hour:%Y-%m-%d %H}", team or None, model), [0, 0, 0, 0, 0])
        for i, position in enumerate((0, 1, 2, 3, 7)):
            into[i] += sums[position]
    assert shown == {k: tuple(v) for k, v in expected.items()} and result.calls == sum(v[0] for v in calls.values())
    assert result.p50_ms is not None


def test_the_upgrade_fills_the_hourly_grain_from_the_hourly_rollups_and_round_trips(db_url):
    """An installation at 0027 gets the table filled hour for hour (a month apart too, so the
    fill's steps meet), the downgrade drops it, and the upgrade fills it again."""
    config = migrate.alembic_config(db_url)
    engine = db.get_engine(db_url)
    base = datetime(2026, 9, 30, 23, tzinfo=UTC)
    rows = varied_call_rows(
        base, [-61, -1, 0, 1, 2, 59, 60, 61, 24 * 60, 45 * 24 * 60, 45 * 24 * 60 + 5], cost=lambda index: 7 + index
    )
    groups, latencies = rollups.call_groups(rows)
    expected_counts = per_hour({k: [v[i] for i in (0, 1, 2, 3, 4, 5, 6, 9)] for k, v in groups.items()})
    expected_histograms: dict = {}
    for (hour, team, prompt, _version, model, bucket), (calls,) in latencies.items():
        key = (hour, team, prompt, model, bucket)
        expected_histograms[key] = expected_histograms.get(key, 0) + calls
    command.downgrade(config, "0027")
    try:
        assert "call_hourly_rollup" not in inspect(engine).get_table_names()
        with engine.begin() as connection:
            rollups.add_groups(connection, CALL, groups)
            rollups.add_groups(connection, LATENCY, latencies)
        command.upgrade(config, "head")
        with engine.connect() as connection:
            assert daily_counts(connection.execute(select(HOURLY))) == expected_counts
            assert packed_histograms(connection.execute(select(HOURLY))) == expected_histograms
        assert len({key[0] for key in expected_counts}) == 6
        command.downgrade(config, "0027")
        assert "call_hourly_rollup" not in inspect(engine).get_table_names()
    finally:
        command.upgrade(config, "head")
    with engine.connect() as connection:
        assert daily_counts(connection.execute(select(HOURLY))) == expected_counts


@pytest.mark.parametrize("hours", [0, 1])
def test_an_empty_or_single_hour_upgrade(db_url, hours):
    """No hourly roll-ups at all fills nothing; one hour fills one row."""
    config = migrate.alembic_config(db_url)
    engine = db.get_engine(db_url)
    rows = [
        {
            "created_at": datetime(2026, 11, 1, 8, 15, tzinfo=UTC),
            "team_id": 0,
            "key_id": 0,
            "actor": "",
            "prompt_name": "",
            "prompt_version": "",
            "model": "gpt-4o",
            "status": "held",
            "http_status": 202,
            "cache_hit": False,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_micro": 0,
            "latency_ms": 3.0,
        }
    ][:hours]
    command.downgrade(config, "0027")
    try:
        groups, latencies = rollups.call_groups(rows)
        with engine.begin() as connection:
            rollups.add_groups(connection, CALL, groups)
            rollups.add_groups(connection, LATENCY, latencies)
        command.upgrade(config, "head")
    finally:
        command.upgrade(config, "head")
    with engine.connect() as connection:
        found = connection.execute(select(HOURLY)).all()
    assert [(r.calls, r.held, r.ok, r.latency_histogram) for r in found] == [(1, 1, 0, b"")][:hours]
