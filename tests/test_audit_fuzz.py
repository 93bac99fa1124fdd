"""Random single-bit changes to events and checkpoints are all reported; concurrent writers keep the chain whole.

Sequences of edits, insertions, reorderings and truncations are in test_audit_properties.py.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import db
from core.audit import checkpoints as audit_checkpoints
from core.audit.record import committing, record
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, add_events, verify

# Every test here runs against the serial walk and the parallel range check (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("verify_mode")

EVENT_FIELDS = [
    "seq",
    "event_id",
    "occurred_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "team_id",
    "before_json",
    "after_json",
    "prev_hash",
    "hash",
]
CHECKPOINT_FIELDS = ["chain_id", "seq", "head_hash", "created_at", "pruned_before", "key_id", "signature"]
TRIALS = 300


@pytest.fixture(autouse=True)
def signed(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()


def flipped(value, rng: random.Random, *, nul: bool = False):
    """`value` with one bit changed (a character's code point, an integer's low bits, a time's microseconds).

    With `nul` a character may become NUL (SQLite stores it; PostgreSQL refuses it).
    """
    if isinstance(value, int):
        return value ^ (1 << rng.randrange(12))
    if isinstance(value, str):
        position = rng.randrange(len(value))
        code = ord(value[position])
        for bit in rng.sample(range(7), 7):  # stay ASCII/BMP and never produce NUL (PostgreSQL refuses it)
            new = code ^ (1 << bit)
            if new or nul:
                return value[:position] + chr(new) + value[position + 1 :]
    if hasattr(value, "microsecond"):
        return value + timedelta(microseconds=1 << rng.randrange(20))
    raise AssertionError(f"cannot flip {value!r}")


def test_random_single_bit_changes_are_all_reported(session):
    add_events(session, 12, team_id=3)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    add_events(session, 8)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    assert verify(session).ok
    rng = random.Random(20261125)
    engine = db.get_engine()
    reported = refused = 0
    for _trial in range(TRIALS):
        table, fields = rng.choice([("audit_event", EVENT_FIELDS)] * 3 + [("audit_checkpoint", CHECKPOINT_FIELDS)])
        with engine.connect() as conn:
            row_id, *values = conn.execute(
                text(f"SELECT id, {', '.join(fields)} FROM {table} ORDER BY random() LIMIT 1")
            ).one()
        candidates = [(f, v) for f, v in zip(fields, values, strict=True) if v is not None]
        field, old = rng.choice(candidates)
        new = flipped(old, rng, nul=engine.dialect.name == "sqlite")
        try:
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE {table} SET {field} = :v WHERE id = :i"), {"v": new, "i": row_id})
        except DBAPIError:
            refused += 1  # the database itself refused (a duplicate seq or event id): also caught
            continue
        result = verify(session)
        assert not result.ok, f"{table}.{field} {old!r} -> {new!r} went unnoticed"
        reported += 1
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET {field} = :v WHERE id = :i"), {"v": old, "i": row_id})
    assert verify(session).ok
    assert reported > TRIALS * 0.8, (reported, refused)


def test_sixteen_concurrent_writers_leave_a_gap_free_chain(session):
    threads, per_thread = 16, 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                s = db.write_session()
                try:
                    with committing(s):
                        record(s, actor=SYSTEM, action="thing.change", target_type="thing", target_id=f"{n}-{i}")
                finally:
                    s.close()
        except BaseException as error:  # reported below, with the thread's failure
            errors.append(error)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    session.rollback()
    seqs = [s for (s,) in session.execute(text("SELECT seq FROM audit_event ORDER BY seq"))]
    assert seqs == list(range(1, threads * per_thread + 1))
    result = verify(session)
    assert result.ok, result.lines()
    assert result.events == threads * per_thread
