"""The verifier's fast path: whole batches checked at once, problems still named event by event."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import db
from core.audit import chain as audit_chain
from core.audit import reading as audit_reading
from core.audit import verify as audit_verify
from core.audit.record import committing, record
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, add_events, sql

# Every test here runs against the serial walk and the parallel range check (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("verify_mode")


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


def lines(session, batch: int) -> list[str]:
    return audit_verify.verify_chain(session=session, actor=SYSTEM, batch=batch).lines()


def test_sqlite_builds_exactly_the_canonical_form_python_builds(session):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("only SQLite builds the canonical form in SQL")
    odd = [(None, None, None), (7, "", '{"name":"Zoë ✓ 日本"}'), (12345, '{"a":"~"}', "3:x"), (0, "~", None)]
    for team_id, before, after in odd:
        with committing(session):
            event = record(
                session, actor=SYSTEM, action="thing.change", target_type="thing", target_id="ä", team_id=team_id
            )
            event.before_json, event.after_json = before, after
    session.rollback()
    columns = ", ".join(audit_chain.HASHED_COLUMNS)
    with db.get_engine().connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT {columns}, {audit_chain.canonical_payload_sql('sqlite')} FROM audit_event ORDER BY seq"
        ).all()
    assert len(rows) == len(odd)
    for row in rows:
        assert row[-1] == audit_chain.canonical_payload(row[:-1])


def test_problems_found_after_sound_batches_and_across_batch_boundaries(session):
    add_events(session, 23)
    assert lines(session, 4) == []
    sql("UPDATE audit_event SET after_json = :j WHERE seq = 13", {"j": '{"n":0}'})
    # Swap two events that sit in different batches of four.
    sql("UPDATE audit_event SET seq = -8 WHERE seq = 8")
    sql("UPDATE audit_event SET seq = 8 WHERE seq = 9")
    sql("UPDATE audit_event SET seq = 9 WHERE seq = -8")
    sql("DELETE FROM audit_event WHERE seq = 21")
    expected = [
        "seq 8: reordered: it is chained after seq 9, which comes later",
        "seq 9: reordered: seq 8, placed before it, is chained after it",
        "seq 13: modified: its content does not match its hash",
        "seq 21: missing: events absent from the chain",
    ]
    assert lines(session, 4) == expected
    assert lines(session, 1) == expected
    assert lines(session, 1000) == expected


def test_an_insert_is_named_after_the_window_was_filled_by_sound_batches(session):
    add_events(session, 12)
    # Drop seq 10, renumber 11.. down: seq 10 now links to seq 9's hash no more but to the gone event.
    sql("DELETE FROM audit_event WHERE seq = 10")
    sql("UPDATE audit_event SET seq = seq - 1 WHERE seq > 10")
    sql("UPDATE audit_head SET seq = 11")
    # seq 10 (formerly 11) links to a hash nobody holds any more: an edit that was rehashed looks the same.
    assert lines(session, 3) == ["seq 9: modified: its hash was recomputed; seq 10 still links to the original"]


def test_a_checkpoint_inside_a_sound_batch_is_compared(session, monkeypatch, tmp_path):
    from tests.audit_helpers import TEST_KEY, rehash_from

    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()
    from core.audit import checkpoints as audit_checkpoints

    add_events(session, 6)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)
    add_events(session, 6)
    sql("UPDATE audit_event SET target_id = 'x' WHERE seq = 2")
    rehash_from(2)
    found = lines(session, 100)
    assert len(found) == 1 and found[0].startswith("seq 1-6: modified: the chain differs from the checkpoint")


def test_events_written_while_verify_runs_are_left_for_the_next_run(session):
    add_events(session, 30)
    written = []

    def write_one(done: int, total: int) -> None:
        written.append(done)
        writer = db.write_session()
        try:
            with committing(writer):
                record(writer, actor=SYSTEM, action="thing.change", target_type="thing", target_id=f"late-{done}")
        finally:
            writer.close()

    result = audit_verify.verify_chain(session=session, actor=SYSTEM, batch=7, progress=write_one)
    assert result.ok and result.events == 30 and result.last_seq == 30
    result = audit_verify.verify_chain(session=session, actor=SYSTEM, batch=7)
    assert written and result.ok and result.events == 30 + len(written)


def _stored_forms(session) -> list[tuple[bytes, bytes]]:
    """(the verifier's canonical bytes, Python's canonical bytes of the stored values) for each event."""
    columns = ", ".join(audit_chain.HASHED_COLUMNS)
    session.rollback()
    with db.get_engine().connect() as conn:
        python = [
            audit_chain.canonical_payload(tuple(r)).encode()
            for r in conn.exec_driver_sql(f"SELECT {columns} FROM audit_event ORDER BY seq").all()
        ]
        verifier = [row[3] for rows in audit_reading.read_events(conn, 1, 3) for row in rows]
    return list(zip(verifier, python, strict=True))


NASTY = ["", "a\x00", "\x00", "person:1\x00person:2", "Zoë ✓ 日本", "日\x00本", "~", "3:x", "\x00\x00ë", "𝄞"]


def test_the_verifier_hashes_exactly_the_stored_text_nul_and_non_ascii_included(session):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL text cannot hold NUL; its form is built in Python anyway")
    add_events(session, len(NASTY))
    for seq, value in enumerate(NASTY, start=1):
        sql(
            "UPDATE audit_event SET actor = :v, target_id = :v, before_json = :v, after_json = :w WHERE seq = :s",
            {"v": value, "w": value[::-1] or None, "s": seq},
        )
    sql("UPDATE audit_event SET team_id = :t WHERE seq = 2", {"t": "4\x005"})
    forms = _stored_forms(session)
    assert len(forms) == len(NASTY)
    for verifier, python in forms:
        assert verifier == python


# Text the way a tamperer might store it: NULs, ASCII, accents, CJK, astral-plane characters.
_TEXT = st.text(alphabet=st.sampled_from(["\x00", "a", "~", ":", "9", "ë", "日", "𝄞", "\n"]), max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actor=_TEXT, target=_TEXT, after=st.none() | _TEXT)
def test_sql_and_python_forms_agree_on_any_stored_text(session, actor, target, after):
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("only SQLite builds the canonical form in SQL")
    sql("DELETE FROM audit_event")
    sql("DELETE FROM audit_head")
    add_events(session, 1)
    sql("UPDATE audit_event SET actor = :a, target_id = :t, after_json = :f", {"a": actor, "t": target, "f": after})
    [(verifier, python)] = _stored_forms(session)
    assert verifier == python


def test_postgres_builds_exactly_the_canonical_form_python_builds(session):
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's form is built by PostgreSQL")
    odd = [(None, None, None), (7, "", '{"name":"Zoë ✓ 日本 𝄞"}'), (-12345, '{"a":"~"}', "3:x"), (0, "~", None)]
    for team_id, before, after in odd:
        with committing(session):
            event = record(
                session, actor=SYSTEM, action="thing.change", target_type="thing", target_id="ä", team_id=team_id
            )
            event.before_json, event.after_json = before, after
    session.rollback()
    # A time with no fraction, and years to_char() would write differently (rebuilt in Python).
    for seq, when in ((1, "2026-03-01 12:00:00+00"), (2, "0999-12-31 23:59:59.5+00"), (3, "1000-01-01 00:00:00+00")):
        sql("UPDATE audit_event SET occurred_at = CAST(:t AS timestamptz) WHERE seq = :s", {"t": when, "s": seq})
    forms = _stored_forms(session)
    assert len(forms) == len(odd)
    for verifier, python in forms:
        assert verifier == python


def test_a_function_an_insider_creates_cannot_stand_in_for_a_built_in_one(session):
    """PostgreSQL prefers `public.length(varchar)` to the built-in length(text) for a varchar column."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite stores no functions in the database")
    add_events(session, 4)
    sql("UPDATE audit_event SET actor = 'person:666' WHERE seq = 2")
    try:
        sql("CREATE FUNCTION public.length(character varying) RETURNS integer LANGUAGE sql AS 'SELECT 7'")
        with db.get_engine().connect() as conn:
            assert conn.exec_driver_sql("SELECT length(actor) FROM audit_event WHERE seq = 1").scalar() == 7
        assert lines(session, 2) == ["seq 2: modified: its content does not match its hash"]
        assert all(verifier == python for verifier, python in _stored_forms(session))
    finally:
        sql("DROP FUNCTION IF EXISTS public.length(character varying)")
