"""The audit chain: every way of tampering with the rows is reported, naming the seq."""

from __future__ import annotations

import json
import threading

import pytest
from sqlmodel import select

from core.audit import checkpoints as audit_checkpoints
from core.audit import verify as audit_verify
from core.audit.record import committing, prepare_event, record, record_rows
from core.cli.main import main
from core.errors import PermissionDenied, ValidationError
from core.models.audit import AuditCheckpoint, AuditEvent
from core.permissions import Role
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, add_events, hash_of, problems, rehash_from, sql, verify

# Every test here runs against the serial walk and the parallel range check (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("verify_mode")


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(folder))
    reset_settings()
    return folder


@pytest.fixture
def signed(monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()


def checkpoint(session):
    return audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)


def test_events_form_a_gap_free_chain_that_verifies(session):
    add_events(session, 10)
    rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [r.seq for r in rows] == list(range(1, 11))
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    result = verify(session)
    assert result.ok and result.summary() == "10 events verified, no signed checkpoint yet"


def test_a_rolled_back_change_leaves_no_gap(session):
    add_events(session, 2)
    with pytest.raises(RuntimeError), committing(session):
        record(session, actor=SYSTEM, action="thing.change", target_type="thing", target_id=1)
        raise RuntimeError("the change failed")
    add_events(session, 1)
    assert session.exec(select(AuditEvent.seq).order_by(AuditEvent.seq)).all() == [1, 2, 3]
    assert verify(session).ok


def test_one_field_of_one_event_changed(session):
    add_events(session, 10)
    sql("UPDATE audit_event SET after_json = :j WHERE seq = 5", {"j": '{"n":999}'})
    assert problems(session) == ["seq 5: modified: its content does not match its hash"]


def test_an_edit_with_its_own_hash_recomputed_is_caught_by_the_next_link(session):
    add_events(session, 10)
    sql("UPDATE audit_event SET actor = 'person:1' WHERE seq = 5")
    rehash_from(5)
    sql("UPDATE audit_event SET prev_hash = :p WHERE seq = 6", {"p": "f" * 64})  # undo the rehash of 6..
    rehash_from(7)  # ...leaving 6 pointing at the original 5
    lines = problems(session)
    assert "seq 6: modified: its content does not match its hash" in lines


def test_a_middle_event_deleted(session):
    add_events(session, 10)
    sql("DELETE FROM audit_event WHERE seq = 5")
    assert problems(session) == ["seq 5: missing: events absent from the chain"]


def test_two_events_swapped(session):
    add_events(session, 10)
    sql("UPDATE audit_event SET seq = -5 WHERE seq = 5")
    sql("UPDATE audit_event SET seq = 5 WHERE seq = 6")
    sql("UPDATE audit_event SET seq = 6 WHERE seq = -5")
    assert problems(session) == [
        "seq 5: reordered: it is chained after seq 6, which comes later",
        "seq 6: reordered: seq 5, placed before it, is chained after it",
    ]


def test_two_distant_events_swapped_are_both_named(session):
    add_events(session, 10)
    sql("UPDATE audit_event SET seq = -3 WHERE seq = 3")
    sql("UPDATE audit_event SET seq = 3 WHERE seq = 8")
    sql("UPDATE audit_event SET seq = 8 WHERE seq = -3")
    lines = problems(session)
    assert lines and all(": reordered: " in line for line in lines)
    assert {"seq 3", "seq 8"} <= {line.split(":")[0] for line in lines}


def test_an_event_inserted_in_the_middle(session):
    add_events(session, 10)
    # Make room after seq 5, then forge an event with a correct hash linking to seq 5.
    sql("UPDATE audit_event SET seq = -seq WHERE seq > 5")
    sql("UPDATE audit_event SET seq = 1 - seq WHERE seq < 0")
    sql(
        "INSERT INTO audit_event (seq, event_id, occurred_at, actor, action, target_type, target_id, prev_hash, hash) "
        "VALUES (6, 'forged-event', '2026-01-01 00:00:00.000000', 'person:1', 'budget.raise', 'budget', '1', '', '')"
    )
    if session.get_bind().dialect.name == "postgresql":
        sql("UPDATE audit_event SET occurred_at = '2026-01-01 00:00:00+00' WHERE seq = 6")
    sql("UPDATE audit_head SET seq = 11")
    from core.audit.chain import row_hash

    with __import__("core.db", fromlist=["db"]).get_engine().connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT event_id, occurred_at, actor, action, target_type, target_id, team_id, before_json, after_json "
            "FROM audit_event WHERE seq = 6"
        ).one()
    digest = row_hash((*raw, hash_of(5)))
    sql("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE seq = 6", {"p": hash_of(5), "h": digest})
    assert problems(session) == ["seq 6: inserted: seq 7 links directly to seq 5"]


def test_the_last_events_deleted_are_caught_by_the_checkpoint(session, signed):
    add_events(session, 10)
    checkpoint(session)
    sql("DELETE FROM audit_event WHERE seq > 7")
    sql("UPDATE audit_head SET seq = 7, head_hash = :h", {"h": hash_of(7)})
    assert problems(session) == [
        "seq 8-10: truncated after checkpoint: a signed checkpoint vouches for seq 10, the log ends at seq 7"
    ]


def test_the_whole_chain_recomputed_after_a_change_is_caught_by_the_signed_checkpoints(session, signed):
    add_events(session, 4)
    checkpoint(session)
    add_events(session, 6)
    checkpoint(session)
    sql("UPDATE audit_event SET after_json = :j WHERE seq = 5", {"j": '{"n":999}'})
    rehash_from(5)
    lines = problems(session)
    assert len(lines) == 1 and lines[0].startswith("seq 5-10: modified: the chain differs from the checkpoint")
    # Updating the database checkpoint to the new head breaks its signature; the file copy still holds.
    sql("UPDATE audit_checkpoint SET head_hash = :h WHERE seq = 10", {"h": hash_of(10)})
    lines = problems(session)
    assert lines[0].startswith("seq 5-10: modified") or "seq 10: bad signature: database checkpoint" in lines[0]
    assert any(line.startswith("seq 10: bad signature: database checkpoint") for line in lines)
    assert any(line.startswith("seq 5-10: modified") for line in lines)


def test_a_checkpoint_with_a_forged_signature(session, signed):
    add_events(session, 3)
    made = checkpoint(session)
    sql(
        "INSERT INTO audit_checkpoint (chain_id, seq, head_hash, created_at, key_id, signature) "
        "VALUES (:c, 12, :h, :t, :k, :s)",
        {"c": made.chain_id, "h": "a" * 64, "t": "2026-01-01 00:00:00.000000", "k": made.key_id, "s": "ab" * 64},
    )
    assert [line.split(" UTC")[0] for line in problems(session)] == [
        "seq 12: bad signature: database checkpoint signed 2026-01-01 00:00:00.000000"
    ]


def test_a_doctored_checkpoint_file_line_is_reported(session, signed, checkpoint_dir):
    add_events(session, 3)
    checkpoint(session)
    path = audit_checkpoints.checkpoint_file()
    line = json.loads(path.read_text())
    line["seq"] = 2
    path.write_text(json.dumps(line) + "\nnot json\n")
    lines = problems(session)
    assert "checkpoint file line 2: bad signature: not a readable checkpoint" in lines
    assert any(line.startswith("seq 2: bad signature: file checkpoint") for line in lines)


def test_checkpoints_go_to_the_database_and_the_file_and_catch_nothing_on_a_sound_chain(session, signed):
    add_events(session, 5)
    made = checkpoint(session)
    assert session.exec(select(AuditCheckpoint.seq)).all() == [5]
    assert json.loads(audit_checkpoints.checkpoint_file().read_text())["signature"] == made.signature
    add_events(session, 2)
    result = verify(session)
    assert result.ok and result.summary() == "7 events verified, last checkpoint at 5"


def test_verify_signs_the_head_it_verified(session, signed):
    add_events(session, 4)
    result = audit_verify.verify_chain(session=session, actor=SYSTEM, checkpoint=True)
    assert result.summary() == "4 events verified, last checkpoint at 4"
    assert session.exec(select(AuditCheckpoint.seq)).all() == [4]


def test_every_nth_event_makes_a_checkpoint(session, signed, monkeypatch):
    monkeypatch.setattr(audit_checkpoints, "CHECKPOINT_EVERY", 4)
    add_events(session, 9)
    session.rollback()
    assert session.exec(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).all() == [4, 8]
    assert len(audit_checkpoints.checkpoint_file().read_text().splitlines()) == 2


def test_without_a_key_verify_says_what_is_not_protected_and_checkpoints_are_refused(session):
    add_events(session, 2)
    result = verify(session)
    assert result.ok and audit_checkpoints.NO_KEY_WARNING in result.notes
    with pytest.raises(ValidationError, match="QUORUM_AUDIT_SIGNING_KEY"):
        checkpoint(session)


def test_a_malformed_key_is_a_clear_error(session, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", "not-a-key")
    reset_settings()
    add_events(session, 1)
    with pytest.raises(ValidationError, match="64 hex digits or base64"):
        checkpoint(session)


def test_a_public_key_alone_verifies_checkpoints(session, signed, monkeypatch):
    add_events(session, 3)
    made = checkpoint(session)
    public = audit_checkpoints.public_key_hex(audit_checkpoints.public_key())
    monkeypatch.delenv("QUORUM_AUDIT_SIGNING_KEY")
    monkeypatch.setenv("QUORUM_AUDIT_PUBLIC_KEY", public)
    reset_settings()
    assert verify(session).summary() == f"3 events verified, last checkpoint at {made.seq}"


def test_old_events_deleted_without_a_prune_checkpoint_are_missing(session, signed):
    add_events(session, 10)
    sql("DELETE FROM audit_event WHERE seq < 5")
    assert problems(session) == ["seq 1-4: missing: events absent from the chain"]


def test_a_prune_checkpoint_lets_verify_start_from_its_hash(session, signed):
    add_events(session, 10)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM, pruned_before=5)
    sql("DELETE FROM audit_event WHERE seq < 5")
    result = verify(session)
    assert result.ok, result.lines()
    assert result.summary() == "6 events verified, last checkpoint at 4, pruned before 5"
    sql("UPDATE audit_event SET target_id = 'x' WHERE seq = 5")
    assert problems(session) == ["seq 5: modified: its content does not match its hash"]


def test_only_auditors_and_governance_leads_verify(session, directory):
    with pytest.raises(PermissionDenied):
        audit_verify.verify_chain(session=session, actor=directory.with_role(Role.ADMIN))
    assert audit_verify.verify_chain(session=session, actor=directory.with_role(Role.AUDITOR)).ok
    with pytest.raises(PermissionDenied):
        audit_checkpoints.create_checkpoint(session=session, actor=directory.with_role(Role.FINANCE))


def test_cli_verify_exit_codes_and_lines(db_url, session, signed, capsys):
    add_events(session, 6)
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == "6 events verified, last checkpoint at 6"
    sql("DELETE FROM audit_event WHERE seq = 2")
    assert main(["audit", "verify"]) == 1
    assert capsys.readouterr().out.strip() == "seq 2: missing: events absent from the chain"
    assert main(["audit", "checkpoint"]) == 0
    assert "checkpoint at seq 6" in capsys.readouterr().out


def test_cli_without_a_key_explains_and_keygen_makes_a_usable_key(db_url, session, capsys, monkeypatch):
    add_events(session, 1)
    assert main(["audit", "verify"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "1 events verified, no signed checkpoint yet"
    assert "No audit signing key" in captured.err
    assert main(["audit", "checkpoint"]) == 1
    assert capsys.readouterr().err.startswith("error: Cannot sign a checkpoint")
    assert main(["audit", "keygen"]) == 0
    private = capsys.readouterr().out.splitlines()[0].split("=", 1)[1]
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", private)
    reset_settings()
    assert main(["audit", "checkpoint"]) == 0


def test_migration_chains_events_written_before_it(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from core import db
    from core.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0001")
    with db.get_engine(url).begin() as conn:
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO audit_event (event_id, occurred_at, actor, action, target_type, target_id) "
                    f"VALUES (:e, '2026-01-0{i + 1} 10:00:00.000000', 'system:cli', 'team.create', 'team', :e)"
                ),
                {"e": f"e{i}"},
            )
    command.upgrade(alembic_config(url), "head")
    with db.session(db.get_engine(url)) as s:
        assert (
            audit_verify.verify_chain(session=s, actor=SYSTEM).summary()
            == "3 events verified, no signed checkpoint yet"
        )
        record(s, actor=SYSTEM, action="team.create", target_type="team", target_id=9)
        s.commit()
        assert s.exec(select(AuditEvent.seq).order_by(AuditEvent.seq)).all() == [1, 2, 3, 4]
        assert audit_verify.verify_chain(session=s, actor=SYSTEM).ok


def _write_batch(size: int, label: str) -> None:
    from core import db

    events = [
        prepare_event(actor=SYSTEM, action="thing.change", target_type="thing", target_id=f"{label}-{i}")
        for i in range(size)
    ]
    with db.write_session() as own, committing(own):
        record_rows(own, events)


def test_batches_from_concurrent_writers_chain_with_no_gap_or_fork(session):
    """Writers that each chain a batch of events with one head update (the gateway's group commit)."""
    add_events(session, 2)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            for round_ in range(4):
                _write_batch(1 + (n + round_) % 4, f"w{n}r{round_}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    written = 2 + sum(1 + (n + r) % 4 for n in range(8) for r in range(4))
    result = verify(session)
    assert result.ok, result.lines()
    assert result.events == written
    session.rollback()
    seqs = session.exec(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert seqs == list(range(1, written + 1))
    # A batch rolled back gives its seqs back: the next event follows on.
    from core import db

    with db.write_session() as own:
        record_rows(
            own, [prepare_event(actor=SYSTEM, action="thing.change", target_type="thing", target_id=x) for x in "ab"]
        )
        own.rollback()
    add_events(session, 1)
    session.rollback()
    assert session.exec(select(AuditEvent.seq).order_by(AuditEvent.seq.desc())).first() == written + 1
    assert verify(session).ok


def test_a_batch_that_steps_over_a_checkpoint_multiple_still_makes_its_checkpoint(session, signed, monkeypatch):
    monkeypatch.setattr(audit_checkpoints, "CHECKPOINT_EVERY", 4)
    add_events(session, 3)
    _write_batch(3, "a")  # seqs 4-6: 4 is inside, the checkpoint signs the head the batch left
    _write_batch(5, "b")  # seqs 7-11: 8 is inside
    _write_batch(1, "c")  # seq 12
    session.rollback()
    assert session.exec(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq)).all() == [6, 11, 12]
    assert verify(session).ok
