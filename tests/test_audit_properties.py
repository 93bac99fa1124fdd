"""Random tampering with a small audit chain, as an insider with SQL access would do it.

With a signing key every change to the stored events is reported. Without one, exactly the
two classes the README names stay unseen (`UNDETECTABLE_WITHOUT_KEY`: a truncated tail with
the head rewritten, and a chain recomputed after an edit) and every other change is reported.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import db
from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.settings import reset_settings
from tests.audit_helpers import (
    EVENT_COLUMNS,
    SYSTEM,
    TEST_KEY,
    add_events,
    forge,
    hash_of,
    on_sqlite,
    rehash_from,
    sql,
    verify,
)

# Every test here runs against the serial walk and the parallel range check (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("verify_mode")

EVENTS = 8
# The README's words for what goes unseen without a signing key; test_docs_match keeps them in step.
UNDETECTABLE_WITHOUT_KEY = ("truncated tail", "fully recomputed chain")
DETECTABLE = ("edit", "byte flip", "deletion", "insertion", "reordering")
# Each move the tamperer makes, and the README class it belongs to.
CLASS_OF = {
    "edit": "edit",
    "nul append": "byte flip",
    "byte flip": "byte flip",
    "deletion": "deletion",
    "insertion": "insertion",
    "insertion outside": "insertion",
    "reordering": "reordering",
    "truncated tail": "truncated tail",
    "fully recomputed chain": "fully recomputed chain",
}
EDITABLE = ("event_id", "actor", "action", "target_type", "target_id", "before_json", "after_json", "prev_hash", "hash")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


def fresh_chain(session, *, key: bool) -> list[tuple]:
    """Empty the log, write EVENTS events (signed checkpoints at the middle and the end with a key)."""
    session.rollback()
    for table in ("audit_event", "audit_head", "audit_checkpoint"):
        sql(f"DELETE FROM {table}")
    path = audit_checkpoints.checkpoint_file()
    if path.exists():
        path.unlink()
    add_events(session, EVENTS // 2)
    if key:
        audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    add_events(session, EVENTS - EVENTS // 2)
    if key:
        audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    return snapshot()


def snapshot() -> list[tuple]:
    if on_sqlite():  # as raw bytes: a flipped byte may leave text that is not UTF-8
        conn = sqlite3.connect(db.get_engine().url.database)
        conn.text_factory = bytes
        try:
            return conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_event ORDER BY seq, id").fetchall()
        finally:
            conn.close()
    with db.get_engine().connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text(f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_event ORDER BY seq, id")).all()
        ]


# ---- the tamperer's moves --------------------------------------------------------------------

seqs = st.integers(1, EVENTS)
# A character's replacement: NUL, a bit flip of ASCII, or non-ASCII of 2, 3 and 4 UTF-8 bytes.
replacements = st.sampled_from(["\x00", "ë", "日", "𝄞", "bitflip"])

edits = st.tuples(st.just("edit"), seqs, st.sampled_from(EDITABLE), st.integers(0, 200), replacements)
nul_appends = st.tuples(st.just("nul append"), seqs, st.sampled_from(EDITABLE), st.text("ab:~ë", max_size=3))
byte_flips = st.tuples(st.just("byte flip"), seqs, st.sampled_from(EDITABLE), st.integers(0, 200), st.integers(1, 255))
deletions = st.tuples(st.just("deletion"), seqs)
insertions = st.tuples(st.just("insertion"), st.integers(2, EVENTS)) | st.tuples(
    st.just("insertion outside"), st.integers(-3, 0)
)
reorderings = st.tuples(st.just("reordering"), seqs, seqs)
truncations = st.tuples(st.just("truncated tail"), st.integers(1, EVENTS - 1))
recomputes = st.tuples(
    st.just("fully recomputed chain"), seqs, st.sampled_from(EDITABLE[:7]), st.integers(0, 200), replacements
)


def detectable_moves():
    moves = [edits, deletions, insertions, reorderings]
    if on_sqlite():  # PostgreSQL text holds neither NUL nor bytes that are not UTF-8
        moves += [nul_appends, byte_flips]
    return st.one_of(moves)


def replaced(value: str, position: int, replacement: str) -> str:
    position %= len(value)
    new = chr(ord(value[position]) ^ 1) if replacement == "bitflip" else replacement
    if new == "\x00" and not on_sqlite():
        new = "ë"
    return value[:position] + new + value[position + 1 :]


def apply(move: tuple) -> None:
    kind, *args = move
    if kind in ("edit", "fully recomputed chain"):
        seq, column, position, replacement = args
        old = _value(seq, column)
        if old:
            sql(
                f"UPDATE audit_event SET {column} = :v WHERE seq = :s",
                {"v": replaced(old, position, replacement), "s": seq},
            )
            if kind == "fully recomputed chain":
                rehash_from(seq)
    elif kind == "nul append":
        seq, column, tail = args
        sql(f"UPDATE audit_event SET {column} = {column} || char(0) || :t WHERE seq = :s", {"t": tail, "s": seq})
    elif kind == "byte flip":
        seq, column, position, byte = args
        raw = _raw(seq, column)
        if raw:
            position %= len(raw)
            _write_raw(seq, column, raw[:position] + bytes([raw[position] ^ byte]) + raw[position + 1 :])
    elif kind == "deletion":
        sql("DELETE FROM audit_event WHERE seq = :s", {"s": args[0]})
    elif kind == "insertion":  # a forged event slipped in before seq s, later events renumbered
        (seq,) = args
        sql("UPDATE audit_event SET seq = seq + 1000000 WHERE seq >= :s", {"s": seq})
        sql("UPDATE audit_event SET seq = seq - 999999 WHERE seq >= 1000000")
        forge(seq, prev_hash=hash_of(seq - 1) or audit_chain.GENESIS_HASH, like=_any_seq(), actor="person:666")
        sql("UPDATE audit_head SET seq = seq + 1")
    elif kind == "insertion outside":
        forge(args[0], prev_hash=audit_chain.GENESIS_HASH, like=_any_seq(), actor="person:666")
    elif kind == "reordering":
        a, b = args
        sql("UPDATE audit_event SET seq = -1000 WHERE seq = :a", {"a": a})
        sql("UPDATE audit_event SET seq = :a WHERE seq = :b", {"a": a, "b": b})
        sql("UPDATE audit_event SET seq = :b WHERE seq = -1000", {"b": b})
    elif kind == "truncated tail":  # the newest events deleted and the head set back to match
        keep = min(args[0], _any_seq() or 0)
        sql("DELETE FROM audit_event WHERE seq > :k", {"k": keep})
        sql(
            "UPDATE audit_head SET seq = :k, head_hash = :h",
            {"k": keep, "h": hash_of(keep) or audit_chain.GENESIS_HASH},
        )
    else:
        raise AssertionError(kind)


def _value(seq: int, column: str) -> str | None:
    raw = _raw(seq, column)
    return None if raw is None else raw.decode("utf-8", "replace")


def _any_seq() -> int:
    with db.get_engine().connect() as conn:
        return conn.execute(text("SELECT seq FROM audit_event ORDER BY seq DESC LIMIT 1")).scalar()


def _raw(seq: int, column: str) -> bytes | None:
    with db.get_engine().connect() as conn:
        cast = "BLOB" if conn.dialect.name == "sqlite" else "bytea"
        return conn.execute(
            text(f"SELECT CAST({column} AS {cast}) FROM audit_event WHERE seq = :s ORDER BY id LIMIT 1"), {"s": seq}
        ).scalar()


def _write_raw(seq: int, column: str, raw: bytes) -> None:
    conn = sqlite3.connect(db.get_engine().url.database)
    try:
        conn.execute(f"UPDATE audit_event SET {column} = CAST(? AS TEXT) WHERE seq = ?", (raw, seq))
        conn.commit()
    finally:
        conn.close()


def tampered(session, moves, *, key: bool, monkeypatch) -> bool:
    """Apply `moves` to a fresh chain; False (example discarded) if they left the events as they were."""
    if key:
        monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    else:
        monkeypatch.delenv("QUORUM_AUDIT_SIGNING_KEY", raising=False)
    reset_settings()
    before = fresh_chain(session, key=key)
    assert verify(session).ok
    for move in moves:
        try:
            apply(move)
        except DBAPIError:
            pass  # refused: by the database (a seq or event id twice), or the tamperer's tool (bytes not UTF-8)
    return snapshot() != before


@pytest.fixture
def env(monkeypatch):
    """monkeypatch for use inside a @given test (set and undone per example by `tampered`)."""
    return monkeypatch


@FAST
@given(data=st.data())
def test_with_a_key_every_change_is_reported(session, env, data):
    moves = data.draw(st.lists(detectable_moves() | truncations | recomputes, min_size=1, max_size=3))
    assume(tampered(session, moves, key=True, monkeypatch=env))
    result = verify(session)
    assert not result.ok, moves


@FAST
@given(data=st.data())
def test_without_a_key_every_change_but_truncation_and_recomputation_is_reported(session, env, data):
    moves = data.draw(st.lists(detectable_moves(), min_size=1, max_size=3))
    assert {CLASS_OF[m[0]] for m in moves} <= set(DETECTABLE)
    assume(tampered(session, moves, key=False, monkeypatch=env))
    assert not verify(session).ok, moves


@FAST
@given(moves=st.lists(truncations | recomputes, min_size=1, max_size=3))
def test_without_a_key_a_truncated_tail_and_a_recomputed_chain_go_unseen(session, env, moves):
    assert {CLASS_OF[m[0]] for m in moves} <= set(UNDETECTABLE_WITHOUT_KEY)
    assume(tampered(session, moves, key=False, monkeypatch=env))
    result = verify(session)
    assert result.ok, (moves, result.lines())
    assert not result.signed
