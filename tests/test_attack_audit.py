"""Attacks on the audit log by an insider with direct SQL access, and the exact finding each leaves.

Each attack writes straight to the database (the SQLite file through sqlite3, the PostgreSQL
tables through their own connection), never through Quorum, then runs `quorum audit verify`
and checks its exit code and the lines a user reads.
"""

from __future__ import annotations

import re
import uuid

import pytest

from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.audit import export as audit_export
from core.audit.query import AuditFilter
from core.cli.main import main
from core.errors import ValidationError
from core.permissions import Actor
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, add_events, forge, hash_of, insider, on_sqlite, rehash_from

# Every test here runs against the serial walk and the parallel range check (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("verify_mode")

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


@pytest.fixture(autouse=True)
def signed(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()


def verify_cli(capsys) -> tuple[int, list[str]]:
    """`quorum audit verify --no-checkpoint`: its exit code and the lines it prints on standard output."""
    code = main(["audit", "verify", "--no-checkpoint"])
    return code, [TIME.sub("<time>", line) for line in capsys.readouterr().out.strip().splitlines()]


def checkpoint(session):
    return audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)


def file_lines() -> list[str]:
    return audit_checkpoints.checkpoint_file().read_text().splitlines()


# ---- rows the verifier never used to read --------------------------------------------------


@pytest.mark.parametrize("seq", [0, -5])
def test_an_event_numbered_outside_the_chain_is_reported(session, capsys, seq):
    add_events(session, 4)
    checkpoint(session)
    forge(seq, prev_hash=audit_chain.GENESIS_HASH, actor="person:666")
    code, lines = verify_cli(capsys)
    assert (code, lines) == (1, [f"seq {seq}: inserted: outside the chain, which starts at seq 1"])


def test_what_the_page_and_export_show_is_every_row_verify_read(session):
    add_events(session, 4)
    forge(0, prev_hash=audit_chain.GENESIS_HASH)
    exported = audit_export.parse(
        audit_export.export_bytes(session=session, actor=SYSTEM, filters=AuditFilter(), fmt="jsonl")
        .decode()
        .splitlines(),
        "jsonl",
    )
    from tests.audit_helpers import verify

    result = verify(session)
    assert sorted(e["seq"] for e in exported) == [0, 1, 2, 3, 4]
    assert result.events == len(exported)
    assert result.lines() == ["seq 0: inserted: outside the chain, which starts at seq 1"]


def test_a_row_below_a_prunes_start_is_reported(session, capsys):
    add_events(session, 10)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM, pruned_before=6)
    insider("DELETE FROM audit_event WHERE seq < 6")
    assert verify_cli(capsys)[0] == 0
    forge(3, prev_hash=audit_chain.GENESIS_HASH, like=6)
    code, lines = verify_cli(capsys)
    assert (code, lines) == (1, ["seq 3: inserted: outside the chain, which starts at seq 6 (pruned before it)"])


def test_events_a_prune_has_yet_to_delete_verify_and_a_forged_one_among_them_does_not(session, capsys):
    add_events(session, 10)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM, pruned_before=6)
    insider("DELETE FROM audit_event WHERE seq < 3")  # the prune stopped part way
    assert verify_cli(capsys)[0] == 0
    insider("UPDATE audit_event SET actor = 'person:1' WHERE seq = 4")
    rehash_from(4)
    code, lines = verify_cli(capsys)
    assert code == 1
    assert lines == [
        "seq 3-5: modified: the chain differs from the checkpoint signed <time> UTC (events up to it were rewritten)"
    ]


# ---- bytes the hashed text used to lose -----------------------------------------------------


def test_a_nul_appended_to_a_field_is_reported(session, capsys):
    if not on_sqlite():
        pytest.skip("PostgreSQL text cannot hold NUL, so this attack cannot be written there")
    add_events(session, 5)
    insider("UPDATE audit_event SET actor = actor || char(0) || 'person:9' WHERE seq = 3")
    assert verify_cli(capsys) == (1, ["seq 3: modified: its content does not match its hash"])


def test_a_nul_in_the_team_column_is_reported(session, capsys):
    if not on_sqlite():
        pytest.skip("PostgreSQL integers cannot hold text")
    add_events(session, 5, team_id=7)
    insider("UPDATE audit_event SET team_id = '7' || char(0) || '8' WHERE seq = 2")
    assert verify_cli(capsys) == (1, ["seq 2: modified: its content does not match its hash"])


def test_quorum_refuses_to_write_a_nul_so_a_stored_one_is_always_tampering(session):
    from core.audit.record import record

    with pytest.raises(ValidationError, match="cannot contain NUL"):
        record(session, actor=SYSTEM, action="thing.change", target_type="thing", target_id="a\x00b")
    with pytest.raises(ValidationError, match="cannot contain NUL"):
        record(session, actor=Actor.system("a\x00b"), action="thing.change", target_type="thing", target_id=1)


def _add_named(session, name: str) -> None:
    from core.audit.record import committing, record

    with committing(session):
        record(session, actor=SYSTEM, action="thing.rename", target_type="thing", target_id="ä", after={"name": name})


def test_a_byte_flipped_inside_a_non_ascii_character_is_reported(session, capsys):
    add_events(session, 2)
    _add_named(session, "Zoë")
    add_events(session, 2)
    assert verify_cli(capsys)[0] == 0
    if on_sqlite():  # ë is C3 AB: flip one bit of its second byte, giving ê (C3 AA)
        insider(
            "UPDATE audit_event SET after_json = CAST(replace(CAST(after_json AS BLOB), x'c3ab', x'c3aa') AS TEXT) "
            "WHERE seq = 3"
        )
    else:
        insider("UPDATE audit_event SET after_json = replace(after_json, 'ë', 'ê') WHERE seq = 3")
    assert verify_cli(capsys) == (1, ["seq 3: modified: its content does not match its hash"])


def test_a_byte_flip_that_leaves_invalid_utf8_is_reported(session, capsys):
    if not on_sqlite():
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    _add_named(session, "Zoë")
    add_events(session, 2)
    insider(
        "UPDATE audit_event SET after_json = CAST(replace(CAST(after_json AS BLOB), x'c3ab', x'c32b') AS TEXT) "
        "WHERE seq = 1"
    )
    assert verify_cli(capsys) == (1, ["seq 1: modified: its content does not match its hash"])


# ---- the chain's identity and the checkpoint file -------------------------------------------


def _truncate_to(seq: int) -> None:
    insider("DELETE FROM audit_event WHERE seq > :s", s=seq)
    insider("UPDATE audit_head SET seq = :s, head_hash = :h", s=seq, h=hash_of(seq))


def test_truncation_with_the_head_rewritten_and_database_checkpoints_deleted_is_caught_by_the_file(session, capsys):
    add_events(session, 10)
    checkpoint(session)
    add_events(session, 5)
    checkpoint(session)
    _truncate_to(8)
    insider("DELETE FROM audit_checkpoint")
    code, lines = verify_cli(capsys)
    assert code == 1
    assert lines == [
        "seq 9-15: truncated after checkpoint: a signed checkpoint vouches for seq 15, the log ends at seq 8"
    ]


def test_truncation_with_a_new_chain_id_is_caught_by_the_files_signed_lines(session, capsys):
    add_events(session, 10)
    old = checkpoint(session).chain_id
    add_events(session, 5)
    checkpoint(session)
    _truncate_to(8)
    insider("DELETE FROM audit_checkpoint")
    insider("UPDATE audit_head SET chain_id = :c", c=str(uuid.uuid4()))
    code, lines = verify_cli(capsys)
    assert code == 1
    assert lines == [
        f"checkpoint file line 1: unknown chain: signed for seq 10 of chain {old}, which this database does not hold "
        "(after a deliberate reset, archive the old checkpoint file)",
        f"checkpoint file line 2: unknown chain: signed for seq 15 of chain {old}, which this database does not hold "
        "(after a deliberate reset, archive the old checkpoint file)",
    ]


def test_the_head_row_deleted_with_the_database_checkpoints_is_caught_by_the_file(session, capsys):
    add_events(session, 6)
    checkpoint(session)
    _truncate_to(4)
    insider("DELETE FROM audit_checkpoint")
    insider("DELETE FROM audit_head")
    code, lines = verify_cli(capsys)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("checkpoint file line 1: unknown chain: signed for seq 6 of chain ")


def test_a_chain_id_rewritten_everywhere_in_the_database_breaks_every_signature(session, capsys):
    add_events(session, 6)
    old = checkpoint(session).chain_id
    new = str(uuid.uuid4())
    insider("UPDATE audit_head SET chain_id = :c", c=new)
    insider("UPDATE audit_checkpoint SET chain_id = :c", c=new)
    code, lines = verify_cli(capsys)
    assert code == 1
    assert lines == [
        f"checkpoint file line 1: unknown chain: signed for seq 6 of chain {old}, which this database does not hold "
        "(after a deliberate reset, archive the old checkpoint file)",
        "seq 6: bad signature: database checkpoint signed <time> UTC",
    ]


def test_a_legitimate_reset_verifies_once_the_old_checkpoint_file_is_archived(session, capsys):
    add_events(session, 3)
    checkpoint(session)
    for table in ("audit_event", "audit_checkpoint", "audit_head"):
        insider(f"DELETE FROM {table}")
    add_events(session, 2)
    assert verify_cli(capsys)[0] == 1  # the old chain's signed lines cannot be placed
    path = audit_checkpoints.checkpoint_file()
    path.rename(path.with_name("audit-checkpoints-retired.jsonl"))
    assert verify_cli(capsys) == (0, ["2 events verified, no signed checkpoint yet"])


def test_checkpoint_file_lines_deleted_are_reported(session, capsys):
    add_events(session, 4)
    checkpoint(session)
    add_events(session, 2)
    made = checkpoint(session)
    audit_checkpoints.checkpoint_file().write_text(file_lines()[0] + "\n")
    code, lines = verify_cli(capsys)
    assert made.seq == 6
    assert (code, lines) == (
        1,
        ["checkpoint file: missing: the checkpoint of seq 6 signed <time> UTC is in the database but not in the file"],
    )


def test_file_lines_and_database_checkpoints_both_deleted_leave_a_truncation_unseen(session, capsys):
    """The limit the README states: with every copy of a checkpoint gone, it vouches for nothing."""
    add_events(session, 6)
    checkpoint(session)
    _truncate_to(4)
    insider("DELETE FROM audit_checkpoint")
    audit_checkpoints.checkpoint_file().write_text("")
    assert verify_cli(capsys) == (0, ["4 events verified, no signed checkpoint yet"])


def test_an_old_chains_checkpoint_replayed_into_the_database_is_reported(session, capsys):
    add_events(session, 3)
    stale = checkpoint(session)
    for table in ("audit_event", "audit_checkpoint", "audit_head"):
        insider(f"DELETE FROM {table}")
    path = audit_checkpoints.checkpoint_file()
    path.rename(path.with_name("audit-checkpoints-retired.jsonl"))
    add_events(session, 5)
    insider(
        "INSERT INTO audit_checkpoint (chain_id, seq, head_hash, created_at, pruned_before, key_id, signature) "
        "VALUES (:c, :s, :h, :t, NULL, :k, :g)",
        c=stale.chain_id,
        s=stale.seq,
        h=stale.head_hash,
        t=stale.created_at,
        k=stale.key_id,
        g=stale.signature,
    )
    code, lines = verify_cli(capsys)
    assert (code, lines) == (1, ["seq 3: bad signature: database checkpoint names another chain"])


def test_an_old_checkpoint_replayed_as_a_prune_to_hide_deleted_events_is_reported(session, capsys):
    add_events(session, 8)
    old = checkpoint(session)
    anchor = hash_of(3)
    insider("DELETE FROM audit_event WHERE seq < 4")
    # Its signature, re-used on the statement "events before 4 were pruned, seq 3 ended in `anchor`".
    insider(
        "INSERT INTO audit_checkpoint (chain_id, seq, head_hash, created_at, pruned_before, key_id, signature) "
        "VALUES (:c, 3, :h, :t, 4, :k, :g)",
        c=old.chain_id,
        h=anchor,
        t=old.created_at,
        k=old.key_id,
        g=old.signature,
    )
    code, lines = verify_cli(capsys)
    assert code == 1
    assert lines == [
        "seq 1-3: missing: events absent from the chain",
        "seq 3: bad signature: database checkpoint signed <time> UTC",
    ]


# ---- order and numbering ---------------------------------------------------------------------


def test_two_events_reordered(session, capsys):
    add_events(session, 6)
    insider("UPDATE audit_event SET seq = -3 WHERE seq = 3")
    insider("UPDATE audit_event SET seq = 3 WHERE seq = 4")
    insider("UPDATE audit_event SET seq = 4 WHERE seq = -3")
    assert verify_cli(capsys) == (
        1,
        [
            "seq 3: reordered: it is chained after seq 4, which comes later",
            "seq 4: reordered: seq 3, placed before it, is chained after it",
        ],
    )


def test_a_duplicate_sequence_number(session, capsys):
    add_events(session, 6)
    insider("DROP INDEX ux_audit_event_seq")
    try:
        forge(4, prev_hash=hash_of(3), actor="person:666")
        assert verify_cli(capsys) == (1, ["seq 4: inserted: a second event with this sequence number"])
    finally:  # PostgreSQL's test database is shared by the tests that follow
        insider("DELETE FROM audit_event WHERE actor = 'person:666'")
        insider("CREATE UNIQUE INDEX ux_audit_event_seq ON audit_event (seq)")


def test_bytes_that_are_not_utf8_in_a_hash_column_are_reported_not_a_crash(session, capsys):
    if not on_sqlite():
        pytest.skip("PostgreSQL refuses text that is not UTF-8")
    add_events(session, 5)
    insider("UPDATE audit_event SET hash = CAST(x'ff' || substr(CAST(hash AS BLOB), 2) AS TEXT) WHERE seq = 3")
    assert verify_cli(capsys) == (
        1,
        [
            "seq 3: modified: its content does not match its hash",
            "seq 3: modified: its hash was recomputed; seq 4 still links to the original",
        ],
    )


def test_a_demo_reset_retires_the_old_checkpoint_file_so_the_new_chain_verifies(session, capsys, monkeypatch):
    from core import demo

    monkeypatch.setenv("QUORUM_DEMO", "1")
    reset_settings()
    add_events(session, 3)
    old = checkpoint(session).chain_id
    demo.wipe(session)
    add_events(session, 2)
    assert verify_cli(capsys) == (0, ["2 events verified, no signed checkpoint yet"])
    [retired] = audit_checkpoints.checkpoint_file().parent.glob(f"audit-checkpoints-retired-{old}-*.jsonl")
    assert len(retired.read_text().splitlines()) == 1
