"""Ranges of the chain checked in parallel report exactly what the serial walk reports.

The tamper tests (test_attack_audit, test_audit_*) each run in both modes (the `verify_mode`
fixture); here random tampering is compared line for line, and the joins between ranges,
which no single range can see, are attacked on their own.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import db
from core.audit import chain as audit_chain
from core.audit import range_processes
from core.audit import ranges as audit_ranges
from core.audit import verify as audit_verify
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, add_events, sql
from tests.test_audit_properties import FAST, detectable_moves, fresh_chain, recomputes, tampered, truncations


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


@pytest.fixture
def env(monkeypatch):
    """monkeypatch for use inside a @given test."""
    return monkeypatch


def run(session, workers: int):
    return audit_verify.verify_chain(session=session, actor=SYSTEM, workers=workers)


def outcome(result) -> tuple:
    return (result.lines(), result.events, result.last_seq, result.last_hash, result.notes, result.last_checkpoint)


def test_a_sound_chain_is_checked_as_ranges_in_parallel_with_the_serial_walks_result(session, monkeypatch):
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    add_events(session, 20)
    serial, parallel = run(session, 1), run(session, 3)
    assert serial.ranges == 0 and parallel.ranges == 7
    assert parallel.ok and outcome(parallel) == outcome(serial)
    assert parallel.summary() == "20 events verified, no signed checkpoint yet"


def test_progress_reaches_every_event_in_parallel(session, monkeypatch):
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 4)
    add_events(session, 17)
    seen: list[tuple[int, int]] = []
    result = audit_verify.verify_chain(
        session=session, actor=SYSTEM, workers=2, progress=lambda done, total: seen.append((done, total))
    )
    assert result.ok and result.ranges == 5
    assert seen[-1] == (17, 17) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def rehash_between(first: int, last: int) -> None:
    """Recompute the hashes of events first..last only, each linked to the one before (the tamperer stops short)."""
    with db.get_engine().begin() as conn:
        prev = conn.exec_driver_sql(f"SELECT hash FROM audit_event WHERE seq = {first - 1}").scalar()
        for seq in range(first, last + 1):
            conn.exec_driver_sql(f"UPDATE audit_event SET prev_hash = '{prev}' WHERE seq = {seq}")
            row = conn.exec_driver_sql(
                f"SELECT {', '.join(audit_chain.HASHED_COLUMNS)} FROM audit_event WHERE seq = {seq}"
            ).one()
            prev = audit_chain.row_hash(tuple(row))
            conn.exec_driver_sql(f"UPDATE audit_event SET hash = '{prev}' WHERE seq = {seq}")


@pytest.mark.parametrize("seq", [2, 3, 4, 5])
def test_an_edit_rehashed_to_a_ranges_edge_is_caught_at_the_join(session, monkeypatch, seq):
    """Ranges of three: events seq..6 rehashed make the middle range sound on its own; only the join shows it."""
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    add_events(session, 9)
    sql("UPDATE audit_event SET target_id = 'forged' WHERE seq = :s", {"s": seq})
    rehash_between(seq, 6)
    expected = ["seq 6: modified: its hash was recomputed; seq 7 still links to the original"]
    assert run(session, 1).lines() == expected
    parallel = run(session, 3)
    assert parallel.lines() == expected and parallel.ranges == 0


@FAST
@given(data=st.data())
def test_random_tampering_is_reported_identically_serially_and_in_parallel(session, env, data):
    moves = data.draw(st.lists(detectable_moves() | truncations | recomputes, min_size=1, max_size=3))
    key = data.draw(st.booleans())
    if not tampered(session, moves, key=key, monkeypatch=env):
        return
    serial = run(session, 1)
    for size, workers in ((1, 2), (2, 3), (3, 2)):
        env.setattr(audit_ranges, "MIN_RANGE", size)
        parallel = run(session, workers)
        assert outcome(parallel) == outcome(serial), (moves, size, workers)


@FAST
@given(data=st.data())
def test_an_untouched_chain_is_sound_in_every_split(session, env, data):
    env.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()
    fresh_chain(session, key=True)
    env.setattr(audit_ranges, "MIN_RANGE", data.draw(st.integers(1, 9)))
    result = run(session, data.draw(st.integers(2, 5)))
    assert result.ok and result.events == 8, result.lines()


def test_the_databases_range_check_hashes_every_event_and_finds_an_edit_that_kept_its_hash(session, monkeypatch):
    """The vectorized check itself (no fallback): sound on a sound chain; one edited event in a group of many spoils it.

    On PostgreSQL the database hashes each event; an edit that keeps the stored hash must still count.
    """
    monkeypatch.setattr(audit_ranges, "GROUP", 4)
    monkeypatch.setattr(audit_ranges, "POSTGRES_GROUP", 4)
    add_events(session, 10)
    # Characters of two, three and four bytes: lengths count characters, hashes the UTF-8 bytes.
    sql("UPDATE audit_event SET target_id = 'caf\u00e9 \u20ac \U0001f600' WHERE seq = 5")
    rehash_between(5, 10)
    with db.get_engine().connect() as conn:
        report = audit_ranges._vector_range(conn, 2, 9, {})
        assert report is not None and report.sound
        assert report.last_hash == conn.exec_driver_sql("SELECT hash FROM audit_event WHERE seq = 9").scalar()
    sql("UPDATE audit_event SET after_json = '{\"forged\": true}' WHERE seq = 7")
    with db.get_engine().connect() as conn:
        assert audit_ranges._vector_range(conn, 2, 9, {}) == audit_ranges.RangeReport(2, 9, False)
        assert audit_ranges._vector_range(conn, 8, 10, {}).sound  # the events after it are untouched


def test_sqlites_range_check_measures_an_event_id_or_time_of_another_width_and_rebuilds_one_holding_a_nul(
    session, monkeypatch
):
    """SQLite's check writes the usual widths of event ids and times into each canonical form: a value of
    another width, rehashed by whoever wrote it, is measured instead (a sound chain stays sound), and a
    NUL, where printf() would stop short, sends the range to be rebuilt row by row in Python."""
    if db.get_engine().dialect.name != "sqlite":
        pytest.skip("PostgreSQL builds and hashes each form itself")
    monkeypatch.setattr(audit_ranges, "GROUP", 4)
    add_events(session, 10)
    sql("UPDATE audit_event SET event_id = 'not-a-uuid' WHERE seq = 3")
    sql("UPDATE audit_event SET occurred_at = '2026-01-01 00:00:00' WHERE seq = 6")
    rehash_between(3, 10)
    with db.get_engine().connect() as conn:
        report = audit_ranges._vector_range(conn, 1, 10, {})
    assert report is not None and report.sound
    sql("UPDATE audit_head SET head_hash = (SELECT hash FROM audit_event WHERE seq = 10)")
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    parallel = run(session, 3)
    assert parallel.ok and parallel.ranges == 4 and outcome(parallel) == outcome(run(session, 1))
    sql("UPDATE audit_event SET event_id = event_id || char(0) || 'x' WHERE seq = 9")
    with db.get_engine().connect() as conn:
        assert audit_ranges._vector_range(conn, 1, 10, {}) is None
        assert audit_ranges._vector_range(conn, 1, 8, {}).sound  # the groups before it are untouched
    assert (
        run(session, 3).lines() == run(session, 1).lines() == ["seq 9: modified: its content does not match its hash"]
    )


@pytest.mark.parametrize("column", ["hash", "prev_hash"])
def test_a_hash_or_link_stored_as_bytes_is_judged_alike_serially_and_in_parallel(session, monkeypatch, column):
    """The same 64 characters stored as a BLOB read as text to SQLite's range check but not to the
    serial walk: the range goes to the row-by-row check, and both report the same fault."""
    if db.get_engine().dialect.name != "sqlite":
        pytest.skip("PostgreSQL's columns are typed: a hash cannot be stored as bytes")
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    add_events(session, 12)
    sql(f"UPDATE audit_event SET {column} = CAST({column} AS BLOB) WHERE seq = 7")
    serial, parallel = run(session, 1), run(session, 3)
    assert not serial.ok and parallel.lines() == serial.lines()


def test_an_sqlite_files_ranges_are_checked_in_worker_processes_that_find_what_the_walk_finds(session, monkeypatch):
    if db.get_engine().dialect.name != "sqlite":
        pytest.skip("PostgreSQL's ranges are checked by its own backends, from threads")
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    add_events(session, 12)
    assert run(session, 2).ok
    workers = range_processes.worker_pids()
    assert workers and os.getpid() not in workers
    sql("UPDATE audit_event SET target_id = 'forged' WHERE seq = 8")
    serial, parallel = run(session, 1), run(session, 2)
    assert parallel.lines() == serial.lines() == ["seq 8: modified: its content does not match its hash"]


def test_a_worker_process_that_died_is_replaced_and_one_that_fails_leaves_the_verdict_to_the_serial_walk(
    session, monkeypatch
):
    if db.get_engine().dialect.name != "sqlite":
        pytest.skip("only SQLite's ranges are checked in worker processes")
    monkeypatch.setattr(audit_ranges, "MIN_RANGE", 3)
    add_events(session, 12)
    assert run(session, 2).ok
    for pid in range_processes.worker_pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    result = run(session, 2)
    assert result.ok and result.events == 12 and result.ranges == 4  # new workers took the ranges

    def broken(worker, request):
        raise range_processes.WorkerFailed("the worker ended (exit status -9)")

    sql("UPDATE audit_event SET target_id = 'forged' WHERE seq = 8")
    monkeypatch.setattr(range_processes, "_ask", broken)
    failed = run(session, 2)
    assert failed.ranges == 0  # the serial walk gave the verdict
    assert failed.lines() == ["seq 8: modified: its content does not match its hash"]
