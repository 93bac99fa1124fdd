"""Settled calls wait for the roll-ups and are folded into them, many at once: by a thread of
each settling process, and by every reader first. A page still shows every call settled
before it read; folds racing each other, settles, a rebuild or a retention run count each
call exactly once; a fold that dies leaves its calls waiting."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from core import clock, db, sqlite_engine
from core.budgets import daily_rollups, pending_rollups, periods, rollups, version_rollups
from core.budgets.ledger_sums import read_ledger_sums
from core.gateway import rollup_folder
from core.identity.people import team_by_name
from core.models.rollups import RollupPending
from tests.test_rollups import (  # noqa: F401 - `traffic` is a fixture
    CALLS,
    LEDGER,
    _assert_rollups_match,
    assert_rollups_match,
    fold_once,
    traffic,
    varied_call_rows,
    waiting_calls,
)

PENDING = RollupPending.__table__
ROLLUP_TABLES = [
    rollups.USAGE,
    rollups.CALL,
    rollups.LATENCY,
    daily_rollups.HOURLY,
    daily_rollups.SIX_HOURLY,
    daily_rollups.DAILY,
    version_rollups.VERSION_DAILY,
]


@pytest.fixture
def settle(traffic):  # noqa: F811 - the imported fixture
    """Calls through the real gateway, settled concurrently (tests/test_rollups.py's traffic)."""
    return traffic


def month_spend(connection) -> int:
    month = periods.period_at("month", clock.now())
    return read_ledger_sums(connection, start=month.start, end=month.end).get((), {}).get("cost_micro", 0)


def ledger_cost(session) -> int:
    session.rollback()
    return sum(session.execute(select(LEDGER.c.cost_micro)).scalars())


@pytest.mark.background_fold
def test_a_settled_call_waits_for_its_fold_and_the_background_folds_it(session, settle):
    settle(6, threads=2)
    # Within about FOLD_EVERY_S the settling process's own thread has folded every call.
    deadline = time.monotonic() + 10 * rollup_folder.FOLD_EVERY_S
    while waiting_calls(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting_calls(session) == 0
    _assert_rollups_match(session, folded_only=False)


def test_a_reader_shows_every_call_settled_before_it_even_before_any_fold(session, settle):
    settle(9, threads=3)
    assert waiting_calls(session) > 0
    expected = ledger_cost(session)
    assert expected > 0
    # A session that has read already (SQLite keeps the snapshot of its first read) ...
    session.rollback()
    session.execute(select(CALLS.c.id).limit(1)).all()
    assert month_spend(session.connection()) == expected
    assert waiting_calls(session) == 0


def test_a_reader_inside_a_write_transaction_commits_nothing_of_it(session, settle):
    """SQLite: a transaction that holds the write lock folds in itself (another would wait for
    it), so its rollback undoes the fold too and the calls wait again. PostgreSQL folds in a
    transaction of its own, which cannot see the uncommitted row. Either way the reader
    commits nothing the writer wrote."""
    settle(6, threads=2)
    waiting = waiting_calls(session)
    with db.write_session() as writer:
        writer.execute(insert(PENDING), [{"request_id": "not-a-call-1"}])
        assert month_spend(writer.connection()) == ledger_cost(session)
        writer.rollback()
    sqlite = session.get_bind().dialect.name == "sqlite"
    assert waiting_calls(session) == (waiting if sqlite else 0)
    assert session.execute(select(PENDING).where(PENDING.c.request_id == "not-a-call-1")).first() is None
    assert_rollups_match(session)


def test_a_read_only_session_renewed_by_a_reader_keeps_nothing_it_wrote(session, settle):
    """A plain session (no write lock asked) that wrote and then reads the roll-ups: its write
    stays uncommitted; only a session that has written nothing gets a fresh snapshot."""
    settle(6, threads=2)
    sqlite = session.get_bind().dialect.name == "sqlite"
    plain = db.session()
    try:
        plain.execute(select(PENDING).limit(1)).all()
        if sqlite:
            assert sqlite_engine.renew_snapshot(plain.connection()) is True  # it had only read
        plain.execute(insert(PENDING), [{"request_id": "not-a-call-2"}])
        # Renewing now would commit the row: refused.
        assert sqlite_engine.renew_snapshot(plain.connection()) is False
        plain.rollback()
    finally:
        plain.close()
    assert session.execute(select(PENDING).where(PENDING.c.request_id == "not-a-call-2")).first() is None


def test_folds_racing_settles_and_each_other_count_every_call_once(session, settle):
    stop = threading.Event()
    errors: list[BaseException] = []
    folded = [0]

    def keep_folding() -> None:
        while not stop.is_set():
            try:
                folded[0] += pending_rollups.fold_all()
            except BaseException as error:  # noqa: BLE001 - reported by the test
                errors.append(error)
                return

    folders = [threading.Thread(target=keep_folding) for _ in range(3)]
    for folder in folders:
        folder.start()
    try:
        outcomes = settle(36, threads=6)
    finally:
        stop.set()
        for folder in folders:
            folder.join()
    assert not errors, errors
    assert outcomes.get("ok", 0) >= 3, outcomes
    assert_rollups_match(session)
    session.rollback()
    assert folded[0] > 0  # the racing folds did fold calls
    assert sum(session.execute(select(rollups.USAGE.c.calls)).scalars()) == len(
        session.execute(select(LEDGER.c.id)).all()
    )


def test_a_pending_row_with_no_call_is_dropped_and_counts_nothing(session, settle):
    """Written by hand (or left by a call whose rows a retention run deleted before its fold)."""
    settle(6, threads=2)
    with db.write_session() as writer:
        writer.execute(insert(PENDING), [{"request_id": "req_never_settled"}])
        writer.commit()
    assert_rollups_match(session)
    assert waiting_calls(session) == 0


def test_a_retention_delete_of_waiting_calls_leaves_them_out_of_every_rollup(session, settle):
    settle(9, threads=3)
    session.rollback()
    waiting = [r for (r,) in session.execute(select(PENDING.c.request_id))]
    assert waiting
    gone = waiting[:3]
    with db.write_session() as writer:
        connection = writer.connection()
        hours = rollups.hours_of(connection, "gateway_call", "request_id", gone)
        connection.execute(delete(CALLS).where(CALLS.c.request_id.in_(gone)))
        rollups.rebuild_hours(connection, "gateway_call", hours)
        writer.commit()
    assert_rollups_match(session)
    session.rollback()
    rolled = sum(session.execute(select(rollups.CALL.c.calls)).scalars())
    assert rolled == len(session.execute(select(CALLS.c.id)).all())


def test_a_fold_waits_for_a_rebuild_and_neither_counts_a_call_twice(session, settle):
    """PostgreSQL: the rebuild locks the roll-ups first, the fold waits for its commit (no
    deadlock, nothing counted twice); on SQLite the write lock orders them the same way."""
    settle(9, threads=3)
    assert waiting_calls(session) > 0
    started, done = threading.Event(), threading.Event()
    results: list[object] = []

    def fold_meanwhile() -> None:
        started.wait(10)
        try:
            results.append(fold_once(session))
        except BaseException as error:  # noqa: BLE001 - reported by the test
            results.append(error)
        done.set()

    thread = threading.Thread(target=fold_meanwhile)
    thread.start()
    with db.write_session() as writer:
        rollups.rebuild(writer.connection())
        started.set()
        assert not done.wait(0.5)  # the fold waits for the rebuild's lock
        writer.commit()
    thread.join(30)
    assert done.is_set() and isinstance(results[0], int) and results[0] > 0, results
    assert_rollups_match(session)


# ---- any interleaving of settles, folds, rebuilds and retention deletes ----------------------

Operation = tuple[str, int]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("settle"), st.integers(1, 6)),
        st.tuples(st.just("fold"), st.integers(1, 5)),  # a fold of at most this many calls
        st.just(("rebuild", 0)),
        st.tuples(st.just("delete"), st.integers(1, 3)),  # a retention run deletes calls
    ),
    min_size=1,
    max_size=8,
)


def settle_directly(teams: list[int], count: int, seed: int) -> None:
    """What a settled batch writes for the roll-ups: call rows, ledger rows for the answered
    calls, and a pending row per call, in one transaction (no gateway: many examples run)."""
    start = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    rows = varied_call_rows(start, [(seed * 997 + i * 331) % (3 * 24 * 60) for i in range(count)])
    with db.write_session() as writer:
        for row in rows:
            row["request_id"] = f"req_{uuid.uuid4().hex}"
            row["team_id"] = teams[row["team_id"] % len(teams)]
            row["endpoint"] = "chat"
        writer.execute(insert(CALLS), rows)
        ledger = [
            {
                "occurred_at": r["created_at"],
                "team_id": r["team_id"],
                "key_id": r["key_id"],
                "model": r["model"],
                "input_tokens": r["input_tokens"],
                "output_tokens": r["output_tokens"],
                "cost_micro": r["cost_micro"],
                "cache_hit": r["cache_hit"],
                "request_id": r["request_id"],
            }
            for r in rows
            if r["status"] == "ok"
        ]
        if ledger:
            writer.execute(insert(LEDGER), ledger)
        writer.execute(insert(PENDING), [{"request_id": r["request_id"], "network": None} for r in rows])
        writer.commit()


def delete_calls(session, count: int) -> None:
    """A retention run's batch: the oldest calls and their ledger rows deleted, their hours rebuilt."""
    session.rollback()
    ids = [r for (r,) in session.execute(select(CALLS.c.request_id).order_by(CALLS.c.id).limit(count))]
    if not ids:
        return
    with db.write_session() as writer:
        connection = writer.connection()
        for table, name in ((LEDGER, "usage_record"), (CALLS, "gateway_call")):
            hours = rollups.hours_of(connection, name, "request_id", ids)
            connection.execute(delete(table).where(table.c.request_id.in_(ids)))
            rollups.rebuild_hours(connection, name, hours)
        writer.commit()


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_any_interleaving_keeps_the_rollups_equal_to_the_folded_calls(session, directory, operations: list[Operation]):
    teams = [team_by_name(session, name).id for name in ("Support", "Legal")]
    with db.write_session() as writer:  # each example from nothing: its failure replays alike
        for table in (PENDING, CALLS, LEDGER, *ROLLUP_TABLES):
            writer.execute(delete(table))
        writer.commit()
    for step, (operation, size) in enumerate(operations):
        if operation == "settle":
            settle_directly(teams, size, step)
        elif operation == "fold":
            with db.write_session() as writer:
                pending_rollups.fold(writer.connection(), limit=size)
                writer.commit()
        elif operation == "rebuild":
            with db.write_session() as writer:
                rollups.rebuild(writer.connection())
                writer.commit()
        else:
            delete_calls(session, size)
        _assert_rollups_match(session, folded_only=True)
    assert_rollups_match(session)  # and once a reader catches up, every call counts
