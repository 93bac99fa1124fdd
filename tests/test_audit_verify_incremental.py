"""Incremental verification: it starts after the newest verified checkpoint, and what it trusts there.

A verified checkpoint is signed by a clean verification: "events up to V were verified and
end in hash H". Incremental mode reads only the events after V. Of the events up to V it
checks that seq V still ends in H and that seqs start..V are there once each; any other
change among them is found by the full walk only, and the tests below show both sides.
"""

from __future__ import annotations

import json
import re

import pytest

from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.audit import verify as audit_verify
from core.cli.main import main
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, add_events, forge, hash_of, insider, rehash_from

pytestmark = pytest.mark.usefixtures("verify_mode")

TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")


@pytest.fixture(autouse=True)
def signed(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()


def full(session, **options):
    return audit_verify.verify_chain(session=session, actor=SYSTEM, **options)


def incremental(session, **options):
    return audit_verify.verify_chain(session=session, actor=SYSTEM, incremental=True, **options)


@pytest.fixture
def verified_at_10(session):
    """Ten events verified in full (which signs a verified checkpoint at 10), then five more."""
    add_events(session, 10)
    assert full(session, checkpoint=True).summary() == "10 events verified, last checkpoint at 10"
    add_events(session, 5)


def test_incremental_reads_only_the_events_after_the_verified_checkpoint(session, verified_at_10):
    result = incremental(session, checkpoint=True)
    assert result.ok and result.events == 5 and result.verified_before == 10
    assert result.summary() == "5 new events verified after the verified checkpoint at 10, last checkpoint at 15"
    assert any(n.startswith("events 1-10 were verified in full") for n in result.notes)
    # That clean run signed a verified checkpoint at 15: the next one starts there.
    add_events(session, 2)
    assert (
        incremental(session).summary()
        == "2 new events verified after the verified checkpoint at 15, last checkpoint at 15"
    )


def test_only_a_checkpoint_signed_by_a_clean_verification_is_a_starting_point(session):
    add_events(session, 6)
    audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)  # on demand: vouches for the head only
    add_events(session, 2)
    result = incremental(session)
    assert result.ok and result.events == 8 and result.verified_before is None
    assert "no verified checkpoint yet: the whole chain was verified" in result.notes


def test_a_change_after_the_verified_checkpoint_is_reported_as_the_full_walk_reports_it(session, verified_at_10):
    insider("UPDATE audit_event SET target_id = 'x' WHERE seq = 13")
    expected = ["seq 13: modified: its content does not match its hash"]
    assert incremental(session).lines() == expected
    assert full(session).lines() == expected


def test_an_edit_before_the_verified_checkpoint_that_keeps_the_hashes_is_found_by_the_full_walk_only(
    session, verified_at_10
):
    """What incremental mode does not check, stated in the README: it does not read events up to V again."""
    insider("UPDATE audit_event SET target_id = 'x' WHERE seq = 3")
    assert incremental(session).ok
    assert full(session).lines() == ["seq 3: modified: its content does not match its hash"]


def test_an_edit_before_the_verified_checkpoint_rehashed_through_it_is_caught(session, verified_at_10):
    insider("UPDATE audit_event SET target_id = 'x' WHERE seq = 3")
    rehash_from(3)
    result = incremental(session)
    assert result.verified_before is None and result.events == 15
    assert result.notes[0].startswith("incremental verification found the events before the last verified checkpoint")
    assert [TIME.sub("<time>", line) for line in result.lines()] == [
        "seq 1-10: modified: the chain differs from the checkpoint signed <time> UTC (events up to it were rewritten)"
    ]


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("DELETE FROM audit_event WHERE seq = 4", "seq 4: missing: events absent from the chain"),
        ("DELETE FROM audit_event WHERE seq = 1", "seq 1: missing: events absent from the chain"),
        ("DELETE FROM audit_event WHERE seq = 10", "seq 10: missing: events absent from the chain"),
    ],
)
def test_events_deleted_before_the_verified_checkpoint_are_caught(session, verified_at_10, attack, expected):
    insider(attack)
    assert incremental(session).lines()[:1] == [expected] == full(session).lines()[:1]


def test_an_event_slipped_in_before_the_verified_checkpoint_is_caught(session, verified_at_10):
    forge(0, prev_hash=audit_chain.GENESIS_HASH, actor="person:666")
    assert incremental(session).lines() == ["seq 0: inserted: outside the chain, which starts at seq 1"]


def test_a_checkpoint_promoted_to_verified_does_not_move_the_start(session, verified_at_10):
    """An insider marks a later, unverified checkpoint as verified to skip the events they edited."""
    made = audit_checkpoints.create_checkpoint(session=session, actor=SYSTEM)  # at 15, vouches for the head only
    insider("UPDATE audit_event SET target_id = 'x' WHERE seq = 12")
    insider("UPDATE audit_checkpoint SET verified = :t WHERE seq = 15", t=True)
    path = audit_checkpoints.checkpoint_file()
    lines = path.read_text().splitlines()
    promoted = json.loads(lines[-1]) | {"verified": True}
    path.write_text("\n".join([*lines[:-1], json.dumps(promoted)]) + "\n")
    result = incremental(session)
    assert result.verified_before == 10
    found = [TIME.sub("<time>", line) for line in result.lines()]
    assert "seq 12: modified: its content does not match its hash" in found
    assert f"seq {made.seq}: bad signature: database checkpoint signed <time> UTC" in found
    assert f"seq {made.seq}: bad signature: file checkpoint signed <time> UTC" in found


def test_the_newest_verified_checkpoint_deleted_everywhere_only_makes_the_walk_longer(session, verified_at_10):
    assert incremental(session, checkpoint=True).verified_before == 10  # signs a verified checkpoint at 15
    insider("DELETE FROM audit_checkpoint WHERE seq = 15")
    path = audit_checkpoints.checkpoint_file()
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    insider("UPDATE audit_event SET target_id = 'x' WHERE seq = 14")
    result = incremental(session)
    assert result.verified_before == 10
    assert result.lines() == ["seq 14: modified: its content does not match its hash"]


def test_cli_incremental_and_workers(session, verified_at_10, capsys):
    assert main(["audit", "verify", "--incremental", "--workers", "2", "--no-checkpoint"]) == 0
    assert capsys.readouterr().out.strip() == (
        "5 new events verified after the verified checkpoint at 10, last checkpoint at 10"
    )
    with pytest.raises(SystemExit):
        main(["audit", "verify", "--workers", "0"])
    assert "--workers: must be a whole number of at least 1, not '0'" in capsys.readouterr().err


def test_a_deleted_event_traded_for_a_duplicate_seq_is_caught_once_the_unique_index_is_gone(session, verified_at_10):
    """The count up to V stays the same; incremental mode relies on the unique index on seq, and checks it is there."""
    insider("DROP INDEX ux_audit_event_seq")
    try:
        insider("DELETE FROM audit_event WHERE seq = 4")
        forge(5, prev_hash=hash_of(3), like=5, target_id="forged")
        result = incremental(session)
        assert result.verified_before is None
        assert result.lines() == full(session).lines()
        assert "seq 4: missing: events absent from the chain" in result.lines()
    finally:  # PostgreSQL's tables outlive the test (emptied, not rebuilt)
        insider("DELETE FROM audit_event WHERE target_id = 'forged'")
        insider("CREATE UNIQUE INDEX ux_audit_event_seq ON audit_event (seq)")
