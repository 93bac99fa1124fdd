"""`quorum audit verify`: check every link of the audit chain and every checkpoint.

Events stream in batches through a raw DB-API cursor (no ORM objects, no full load), inside
one read snapshot so that concurrent writers do not confuse the result. Each problem names
the sequence number(s) and its kind (core.audit.findings).

Every stored row is read, whatever its seq: a row numbered below 1 (or below a prune's
start, other than events the prune has yet to delete) is reported as inserted, so what the
audit page and exports show is what verification has seen.

Two ways through a sound chain, with the same findings:
- with `workers` > 1, ranges of the chain are checked in parallel (core.audit.ranges) and
  joined pairwise at their boundaries; any range that is not sound sends the verification
  through the serial walk (core.audit.walk), which names each problem;
- with `incremental`, the walk starts after the newest *verified* checkpoint: a signed
  statement, made by a clean verification, that events up to seq V were verified and ended
  in hash H. Events up to V are not read again; what is checked of them is that seq V still
  holds hash H and that seqs start..V are all there, once each. An edit there that keeps the
  stored hashes (or rehashes only events before V) is found by the full walk only.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlmodel import Session

from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.audit.chain import GENESIS_HASH
from core.audit.checkpoints import Checkpoint
from core.audit.findings import (
    BAD_SIGNATURE,
    FULL,
    INCREMENTAL,
    INSERTED,
    KINDS,
    MISSING,
    MODIFIED,
    TRUNCATED,
    UNKNOWN_CHAIN,
    Problem,
    Progress,
    VerifyResult,
)
from core.audit.ranges import check_ranges, split
from core.audit.walk import walk_chain
from core.db import sqlite_file
from core.errors import ValidationError
from core.permissions import Actor, Permission, require

__all__ = ["KINDS", "Problem", "VerifyResult", "default_workers", "verify_chain"]

BATCH = 50_000
MAX_WORKERS = 16


def default_workers() -> int:
    """One worker per core the process may use (at most MAX_WORKERS)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def verify_chain(
    *,
    session: Session,
    actor: Actor,
    progress: Progress | None = None,
    batch: int = BATCH,
    checkpoint: bool = False,
    workers: int | None = None,
    incremental: bool = False,
    checkpoint_file: Path | None = None,
) -> VerifyResult:
    """Verify the chain; with `checkpoint`, sign the verified head as a verified checkpoint when all is well.

    `workers` (default: one per core) checks ranges in parallel; 1 walks serially.
    `incremental` starts after the newest verified checkpoint (see the module's docstring);
    when what it checks of the events before it has changed, the whole chain is verified.
    `checkpoint_file` reads signed checkpoints from another file than the configured one (a
    backup's verification reads the lines up to the backup's moment).
    """
    require(actor, Permission.AUDIT_VERIFY)
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValidationError(f"workers must be at least 1, not {workers}")
    result = _verify(session, progress, batch, workers, incremental, checkpoint_file)
    if result is None:
        result = _verify(session, progress, batch, workers, False, checkpoint_file)
        result.notes.insert(
            0,
            "incremental verification found the events before the last verified checkpoint changed, "
            "so the whole chain was verified",
        )
    if checkpoint and result.ok and result.last_seq and audit_checkpoints.signing_key() is not None:
        # Its own write transaction: the verification itself never held SQLite's write lock.
        with Session(session.get_bind().execution_options(quorum_write=True), expire_on_commit=False) as writer:
            if not _verified_at(writer, result.last_seq):
                made = audit_checkpoints.sign_head(
                    session=writer, seq=result.last_seq, head_hash=result.last_hash, verified=True
                )
                result.last_checkpoint = made.seq
    return result


def _verify(
    session: Session,
    progress: Progress | None,
    batch: int,
    workers: int,
    incremental: bool,
    checkpoint_file: Path | None = None,
) -> VerifyResult | None:
    """One verification in one snapshot; None when incremental finds the verified prefix changed."""
    session.rollback()
    connection = session.connection(execution_options=_snapshot_options(session))
    result = VerifyResult(mode=INCREMENTAL if incremental else FULL, workers=workers)
    chain = audit_chain.chain_id(session)
    head = audit_chain.head(session)
    anchor = _verified_anchor(session, chain) if incremental else None
    if incremental and anchor is None:
        result.notes.append("no verified checkpoint yet: the whole chain was verified")
    trusted = _checked_checkpoints(session, chain, result, since=anchor.seq if anchor else None, path=checkpoint_file)
    lowest, start_seq, start_hash = _chain_start(connection, trusted, result)
    read_from = start_seq if lowest is None else min(int(lowest), start_seq)
    if anchor is not None and anchor.seq >= start_seq:
        if not _prefix_unchanged(connection, anchor, start_seq):
            session.rollback()
            return None
        result.verified_before = anchor.seq
        result.notes.append(
            f"events {start_seq}-{anchor.seq} were verified in full by {anchor.created_at} UTC and not read again "
            "(checked: seq {0} still ends in the signed hash, and no seq is missing or doubled up to it); "
            "`quorum audit verify` without --incremental reads every event".format(anchor.seq)
        )
        start_seq, start_hash, read_from = anchor.seq + 1, anchor.head_hash, anchor.seq + 1
    expected = {c.seq: c for c in trusted if c.seq >= start_seq}
    total = connection.exec_driver_sql(f"SELECT COUNT(*) FROM audit_event WHERE seq >= {int(read_from)}").scalar() or 0
    if not (
        workers > 1
        and read_from == start_seq
        and _in_parallel(session, connection, result, expected, start_seq, start_hash, batch, workers, progress, total)
    ):
        walk_chain(connection, result, expected, start_seq, start_hash, read_from, batch, progress, total)
    _check_tail(result, trusted, head, start_seq)
    if trusted:
        result.last_checkpoint = max(c.seq for c in trusted)
    session.rollback()
    return result


def _in_parallel(
    session: Session,
    connection,
    result: VerifyResult,
    expected: dict[int, Checkpoint],
    start_seq: int,
    start_hash: str,
    batch: int,
    workers: int,
    progress: Progress | None,
    total: int,
) -> bool:
    """Check start_seq..the last seq as ranges in parallel; True when all are sound and joined."""
    engine = session.get_bind()
    dialect = engine.dialect.name
    if dialect == "sqlite" and sqlite_file(str(engine.url)) is None:
        return False  # each connection to an in-memory database sees a database of its own
    last = connection.exec_driver_sql("SELECT MAX(seq) FROM audit_event").scalar()
    ranges = split(start_seq, int(last), workers) if last is not None else []
    if len(ranges) < 2:
        return False
    snapshot = (
        connection.exec_driver_sql("SELECT pg_catalog.pg_export_snapshot()").scalar()
        if dialect == "postgresql"
        else None
    )
    reports = check_ranges(
        engine, ranges, expected, workers=workers, batch=batch, snapshot=snapshot, progress=progress, total=total
    )
    links = [start_hash] + [r.last_hash for r in reports[:-1]]
    if not all(r.sound and r.first_link == link for r, link in zip(reports, links, strict=True)):
        return False
    result.events, result.ranges = int(last) - start_seq + 1, len(ranges)
    result.last_seq, result.last_hash = int(last), reports[-1].last_hash
    return True


def _snapshot_options(session: Session) -> dict:
    # SQLite's read transaction is already a snapshot; PostgreSQL needs REPEATABLE READ for one.
    return {"isolation_level": "REPEATABLE READ"} if session.get_bind().dialect.name == "postgresql" else {}


def _chain_start(connection, trusted: list[Checkpoint], result: VerifyResult) -> tuple[int | None, int, str]:
    """(the lowest stored seq, the seq the chain starts at, the hash its first event links to)."""
    lowest, first_in_chain = connection.exec_driver_sql(
        "SELECT MIN(seq), (SELECT MIN(seq) FROM audit_event WHERE seq >= 1) FROM audit_event"
    ).one()
    start_seq, start_hash = 1, GENESIS_HASH
    prune = max((c for c in trusted if c.pruned_before is not None), key=lambda c: c.seq, default=None)
    if prune is not None:
        result.pruned_before = prune.pruned_before
        if (
            first_in_chain is not None
            and first_in_chain < prune.pruned_before
            and connection.exec_driver_sql(
                f"SELECT COUNT(*) FROM audit_event WHERE seq >= {int(first_in_chain)} AND seq < {prune.pruned_before}"
            ).scalar()
            == prune.pruned_before - first_in_chain
        ):
            # A prune signs first, then deletes from the oldest up: what is left below its start must
            # be the unbroken run first..S-1 ending in the signed hash; its first link has no predecessor.
            start_seq = int(first_in_chain)
            start_hash = connection.exec_driver_sql(
                f"SELECT prev_hash FROM audit_event WHERE seq = {start_seq} ORDER BY id LIMIT 1"
            ).scalar()
            result.notes.append(
                f"pruned before {prune.pruned_before}: events {start_seq}-{prune.pruned_before - 1} "
                "are still to be deleted; they must end in that checkpoint's hash"
            )
        else:
            start_seq, start_hash = prune.pruned_before, prune.head_hash
            result.notes.append(f"pruned before {prune.pruned_before}: verification starts from that checkpoint's hash")
    return lowest, start_seq, start_hash


def _verified_anchor(session: Session, chain: str | None) -> Checkpoint | None:
    """The newest verified checkpoint of this chain whose signature verifies, from the database or the file."""
    key = audit_checkpoints.public_key()
    if key is None or chain is None:
        return None
    candidates = [
        c
        for c in audit_checkpoints.database_checkpoints(session) + audit_checkpoints.file_checkpoints(chain).checkpoints
        if c.verified and c.chain_id == chain
    ]
    for candidate in sorted(candidates, key=lambda c: c.seq, reverse=True):
        if audit_checkpoints.signature_ok(candidate, key):
            return candidate
    return None


def _still_checked(checkpoint: Checkpoint, since: int) -> bool:
    return checkpoint.seq >= since or checkpoint.pruned_before is not None


def _prefix_unchanged(connection, anchor: Checkpoint, start_seq: int) -> bool:
    """Seqs start_seq..V all present once and none below, and seq V still ending in the signed hash."""
    seq = int(anchor.seq)
    # All rows minus those after V: SQLite counts a whole index from its pages without visiting
    # each entry, and the rows after V are the few the incremental walk reads anyway.
    everything = connection.exec_driver_sql("SELECT COUNT(*) FROM audit_event").scalar()
    after = connection.exec_driver_sql(f"SELECT COUNT(*) FROM audit_event WHERE seq > {seq}").scalar()
    lowest = connection.exec_driver_sql("SELECT MIN(seq) FROM audit_event").scalar()
    hashes = [row[0] for row in connection.exec_driver_sql(f"SELECT hash FROM audit_event WHERE seq = {seq}")]
    return (
        _seq_is_unique(connection)
        and lowest == start_seq
        and everything - after == seq - start_seq + 1
        and hashes == [anchor.head_hash]
    )


def _seq_is_unique(connection) -> bool:
    """Whether a unique index on seq alone still holds: without it a deleted event and a
    duplicate seq would leave the count as it was."""
    if connection.dialect.name == "sqlite":
        indexes = connection.exec_driver_sql(
            "SELECT name FROM pragma_index_list('audit_event') WHERE \"unique\" AND NOT partial"
        ).all()
        return any(
            [row[0] for row in connection.exec_driver_sql(f"SELECT name FROM pragma_index_info('{name}')")] == ["seq"]
            for (name,) in indexes
        )
    return bool(
        connection.exec_driver_sql(
            "SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = i.indkey[0] WHERE i.indrelid = CAST('audit_event' AS pg_catalog.regclass) "
            "AND i.indisunique AND i.indisvalid AND i.indnatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL "
            "AND a.attname = 'seq'"
        ).first()
    )


def _verified_at(session: Session, seq: int) -> bool:
    """Whether a verified checkpoint of this seq is already stored (a clean run with nothing new signs no other)."""
    return any(c.seq == seq and c.verified for c in audit_checkpoints.database_checkpoints(session))


def _checked_checkpoints(
    session: Session, chain: str | None, result: VerifyResult, since: int | None = None, path: Path | None = None
) -> list[Checkpoint]:
    """The checkpoints whose signatures verify; a problem for each that does not.

    With `since` (incremental), only checkpoints from that seq on, and prune checkpoints, are
    checked: the verification that signed the verified checkpoint at `since` checked the rest.
    """
    from_file = audit_checkpoints.file_checkpoints(chain, path)
    if since is not None:
        from_file = audit_checkpoints.FileCheckpoints(
            [c for c in from_file.checkpoints if _still_checked(c, since)], from_file.other_chains, from_file.unreadable
        )
    for number in from_file.unreadable:
        result.add(
            Problem(None, None, BAD_SIGNATURE, "not a readable checkpoint", where=f"checkpoint file line {number}")
        )
    in_database = audit_checkpoints.database_checkpoints(session)
    if since is not None:
        in_database = [c for c in in_database if _still_checked(c, since)]
    every = in_database + from_file.checkpoints
    key = audit_checkpoints.public_key()
    if key is None:
        result.notes.append(audit_checkpoints.NO_KEY_WARNING)
        if every or from_file.other_chains:
            result.notes.append(
                f"{len(every) + len(from_file.other_chains)} checkpoint(s) could not be checked without the public key"
            )
        return []
    result.signed = True
    for number, cp in from_file.other_chains:
        # The file lives off the database host: a signed line is evidence the insider cannot unwrite.
        where = f"checkpoint file line {number}"
        if audit_checkpoints.signature_ok(cp, key):
            result.add(
                Problem(
                    None,
                    None,
                    UNKNOWN_CHAIN,
                    f"signed for seq {cp.seq} of chain {cp.chain_id}, which this database does not hold "
                    "(after a deliberate reset, archive the old checkpoint file)",
                    where=where,
                )
            )
        else:
            result.add(
                Problem(
                    None,
                    None,
                    BAD_SIGNATURE,
                    f"checkpoint of chain {cp.chain_id} signed {cp.created_at} UTC",
                    where=where,
                )
            )
    trusted: dict[int, Checkpoint] = {}
    for cp in every:
        if cp.chain_id != chain:
            result.add(Problem(cp.seq, None, BAD_SIGNATURE, f"{cp.source} checkpoint names another chain"))
        elif not audit_checkpoints.signature_ok(cp, key):
            result.add(Problem(cp.seq, None, BAD_SIGNATURE, f"{cp.source} checkpoint signed {cp.created_at} UTC"))
        elif cp.seq in trusted and trusted[cp.seq].head_hash != cp.head_hash:
            result.add(Problem(cp.seq, None, MODIFIED, "two signed checkpoints disagree about this event's hash"))
        elif cp.seq not in trusted or cp.pruned_before is not None:
            trusted[cp.seq] = cp
    filed = {(c.seq, c.signature) for c in from_file.checkpoints}
    for cp in in_database:
        # Each checkpoint is appended to the file before its row is stored: a signed row without its
        # line means lines were removed from the file (or verify was pointed at the wrong file).
        if cp.chain_id == chain and (cp.seq, cp.signature) not in filed and audit_checkpoints.signature_ok(cp, key):
            result.add(
                Problem(
                    None,
                    None,
                    MISSING,
                    f"the checkpoint of seq {cp.seq} signed {cp.created_at} UTC is in the database but not in the file",
                    where="checkpoint file",
                )
            )
    if not every:
        result.notes.append(
            "no signed checkpoint yet: deleting the newest events would go unnoticed "
            "until one is made (`quorum audit checkpoint`)"
        )
    return list(trusted.values())


def _check_tail(result: VerifyResult, trusted: list[Checkpoint], head: tuple[int, str] | None, start_seq: int) -> None:
    last = result.last_seq if result.last_seq is not None else start_seq - 1
    newest = max((c.seq for c in trusted), default=None)
    if newest is not None and newest > last:
        result.add(
            Problem(
                last + 1, newest, TRUNCATED, f"a signed checkpoint vouches for seq {newest}, the log ends at seq {last}"
            )
        )
    if head is not None:
        head_seq, head_hash = head
        if head_seq > last and (newest is None or head_seq > newest):
            result.add(
                Problem(
                    max(last, newest or 0) + 1, head_seq, MISSING, f"the chain head says the log reaches seq {head_seq}"
                )
            )
        elif head_seq < last:
            result.add(Problem(head_seq + 1, last, INSERTED, f"the chain head says the log ends at seq {head_seq}"))
        elif head_seq == last and result.last_hash is not None and head_hash != result.last_hash:
            result.add(Problem(last, None, MODIFIED, "does not match the chain head's hash"))
