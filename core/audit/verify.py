"""`quorum audit verify`: check every link of the audit chain and every checkpoint.

Events stream in keyset batches through a raw DB-API cursor (no ORM objects, no full
load), inside one read snapshot so that concurrent writers do not confuse the result.
Each problem names the sequence number(s) and one of these kinds:

  modified      an event's content no longer matches its hash, or its hash was recomputed
                (the next event still links to the original), or the chain differs from a
                signed checkpoint (the whole chain was recomputed after an edit)
  missing       sequence numbers absent from the chain
  inserted      an event that the chain skips over, or a duplicate sequence number
  reordered     events whose links say they belong elsewhere in the order
  truncated after checkpoint   a signed checkpoint vouches for events that are gone
  bad signature a checkpoint (database or file) whose signature does not verify
  unknown chain a validly signed checkpoint in the file names a chain this database does not
                hold (the chain was replaced, or its id rewritten)

Every stored row is read, whatever its seq: a row numbered below 1 (or below a prune's
start, other than events the prune has yet to delete) is reported as inserted, so what the
audit page and exports show is what verification has seen.
"""

from __future__ import annotations

import gc
import sqlite3
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from core.audit import chain as audit_chain
from core.audit import checkpoints as audit_checkpoints
from core.audit.chain import (
    GENESIS_HASH,
)
from core.audit.checkpoints import Checkpoint
from core.audit.reading import read_events
from core.permissions import Actor, Permission, require

BATCH = 50_000
# How far back a misplaced link is looked for (reorders and inserts within this distance are named).
WINDOW = 10_000
MAX_PROBLEMS = 1_000

MODIFIED, MISSING, INSERTED, REORDERED = "modified", "missing", "inserted", "reordered"
TRUNCATED, BAD_SIGNATURE, UNKNOWN_CHAIN = "truncated after checkpoint", "bad signature", "unknown chain"
KINDS = (MODIFIED, MISSING, INSERTED, REORDERED, TRUNCATED, BAD_SIGNATURE, UNKNOWN_CHAIN)


@dataclass(frozen=True)
class Problem:
    first: int | None
    last: int | None
    kind: str
    detail: str
    where: str | None = None  # when there is no seq, e.g. "checkpoint file line 3"

    def __str__(self) -> str:
        if self.first is None:
            place = self.where or "chain"
        elif self.last is None or self.last == self.first:
            place = f"seq {self.first}"
        else:
            place = f"seq {self.first}-{self.last}"
        return f"{place}: {self.kind}: {self.detail}"


@dataclass
class VerifyResult:
    events: int = 0
    last_seq: int | None = None
    last_hash: str | None = None
    last_checkpoint: int | None = None
    pruned_before: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed: bool = False  # a key was available to check checkpoints
    dropped_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        checkpoint = (
            f"last checkpoint at {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no signed checkpoint yet"
        )
        text_ = f"{self.events} events verified, {checkpoint}"
        if self.pruned_before is not None:
            text_ += f", pruned before {self.pruned_before}"
        return text_

    def lines(self) -> list[str]:
        out = [str(p) for p in self.problems]
        if self.dropped_problems:
            out.append(f"... and {self.dropped_problems} more problems")
        return out

    def add(self, problem: Problem) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.dropped_problems += 1
        elif problem not in self.problems[-8:]:
            self.problems.append(problem)


Progress = Callable[[int, int], None]


def verify_chain(
    *, session: Session, actor: Actor, progress: Progress | None = None, batch: int = BATCH, checkpoint: bool = False
) -> VerifyResult:
    """Verify the whole chain; with `checkpoint`, sign the verified head when all is well."""
    require(actor, Permission.AUDIT_VERIFY)
    session.rollback()
    connection = session.connection(execution_options=_snapshot_options(session))
    result = VerifyResult()
    chain = audit_chain.chain_id(session)
    head = audit_chain.head(session)
    trusted = _checked_checkpoints(session, chain, result)
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
    expected = {c.seq: c for c in trusted if c.seq >= start_seq}
    total = connection.exec_driver_sql("SELECT COUNT(*) FROM audit_event").scalar() or 0
    read_from = start_seq if lowest is None else min(int(lowest), start_seq)

    # A million rows of tuples would set off the cycle collector hundreds of times; they hold no cycles.
    collecting = gc.isenabled()
    gc.disable()
    kept, dropped = len(result.problems), result.dropped_problems
    try:
        try:
            _walk(connection, result, expected, start_seq, start_hash, read_from, batch, progress, total)
        except sqlite3.OperationalError as error:
            if "decode" not in str(error):
                raise
            # Bytes that are not UTF-8 in a hash column (only a tamperer writes them): walk again,
            # reading text leniently. The fast path pays nothing for this.
            del result.problems[kept:]
            result.dropped_problems, result.events = dropped, 0
            _walk(connection, result, expected, start_seq, start_hash, read_from, batch, progress, total, lenient=True)
    finally:
        if collecting:
            gc.enable()
    _check_tail(result, trusted, head, start_seq)
    if trusted:
        result.last_checkpoint = max(c.seq for c in trusted)
    session.rollback()
    if (
        checkpoint
        and result.ok
        and result.last_seq
        and audit_checkpoints.signing_key() is not None
        and (result.last_checkpoint or 0) < result.last_seq
    ):
        # Its own write transaction: the verification itself never held SQLite's write lock.
        with Session(session.get_bind().execution_options(quorum_write=True), expire_on_commit=False) as writer:
            made = audit_checkpoints.sign_head(session=writer, seq=result.last_seq, head_hash=result.last_hash)
        result.last_checkpoint = made.seq
    return result


def _snapshot_options(session: Session) -> dict:
    # SQLite's read transaction is already a snapshot; PostgreSQL needs REPEATABLE READ for one.
    return {"isolation_level": "REPEATABLE READ"} if session.get_bind().dialect.name == "postgresql" else {}


def _checked_checkpoints(session: Session, chain: str | None, result: VerifyResult) -> list[Checkpoint]:
    """The checkpoints whose signatures verify; a problem for each that does not."""
    from_file = audit_checkpoints.file_checkpoints(chain)
    for number in from_file.unreadable:
        result.add(
            Problem(None, None, BAD_SIGNATURE, "not a readable checkpoint", where=f"checkpoint file line {number}")
        )
    in_database = audit_checkpoints.database_checkpoints(session)
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


def _walk(
    connection,
    result: VerifyResult,
    expected: dict[int, Checkpoint],
    start_seq: int,
    start_hash: str,
    read_from: int,
    batch: int,
    progress: Progress | None,
    total: int,
    lenient: bool = False,
) -> None:
    walk = _Walk(result.add, expected, start_seq, start_hash)
    done = 0
    for rows in read_events(connection, read_from, batch, lenient=lenient):
        if rows[0][0] < start_seq:  # rows come in seq order: any outside the chain lead the first batches
            outside = [row for row in rows if row[0] < start_seq]
            rows = rows[len(outside) :]
            for row in outside:
                result.add(
                    Problem(
                        row[0],
                        None,
                        INSERTED,
                        "outside the chain, which starts at seq "
                        f"{start_seq}" + ("" if start_seq == 1 else " (pruned before it)"),
                    )
                )
            result.events += len(outside)
            done += len(outside)
            if not rows:
                continue
        if not walk.sound_batch(rows):
            walk.examine(rows)
        done += len(rows)
        result.events += len(rows)
        if progress:
            progress(done, max(total, done))
    walk.finish()
    result.problems.sort(key=lambda p: (p.first is not None, p.first or 0))
    if result.events:
        result.last_seq, result.last_hash = walk.prev_seq, walk.prev_hash


_hexdigest = type(audit_chain._sha256()).hexdigest


class _Walk:
    """The state of one pass along the chain.

    `sound_batch` checks a whole batch with C-level comparisons (no Python code per event)
    and accepts it only if every event is in place, links to its predecessor, matches its
    hash and every checkpoint in it. Any other batch goes through `examine`, event by event,
    which names each problem; a sound chain never needs it.
    """

    def __init__(
        self, add: Callable[[Problem], None], expected: dict[int, Checkpoint], start_seq: int, start_hash: str
    ) -> None:
        self.add = add
        self.expected = expected
        self.checkpoint_seqs = sorted(expected)
        self.prev_seq, self.prev_hash = start_seq - 1, start_hash
        # The last WINDOW (hash, seq) pairs; `recent` indexes them by hash, rebuilt only when needed.
        self.window: deque[tuple[str, int]] = deque(maxlen=WINDOW)
        self.recent: dict[str, int] | None = {}
        self.pending: dict[str, int] = {}  # a link to a hash not seen yet -> the seq of the event holding it
        self.reordered: set[int] = set()
        self.last_good_checkpoint = start_seq - 1

    def sound_batch(self, rows: list[tuple]) -> bool:
        if self.pending:
            return False
        seqs, stored, links, payloads, _flags = zip(*rows)
        first = self.prev_seq + 1
        if seqs != tuple(range(first, first + len(rows))):
            return False
        if links[0] != self.prev_hash or links[1:] != stored[:-1]:
            return False
        if tuple(map(_hexdigest, map(audit_chain._sha256, payloads))) != stored:
            return False
        last = seqs[-1]
        good_checkpoint = self.last_good_checkpoint
        for seq in self.checkpoint_seqs[
            bisect_left(self.checkpoint_seqs, first) : bisect_right(self.checkpoint_seqs, last)
        ]:
            if self.expected[seq].head_hash != stored[seq - first]:
                return False
            good_checkpoint = seq
        self.last_good_checkpoint = good_checkpoint
        self.window.extend(zip(stored[-WINDOW:], seqs[-WINDOW:]))
        self.recent = None
        self.prev_seq, self.prev_hash = last, stored[-1]
        return True

    def examine(self, rows: list[tuple]) -> None:
        """Event by event, naming every problem."""
        add, expected, pending, reordered, window = self.add, self.expected, self.pending, self.reordered, self.window
        recent = self.recent if self.recent is not None else dict(self.window)
        prev_seq, prev_hash = self.prev_seq, self.prev_hash
        sha256 = audit_chain._sha256
        for seq, stored, link, payload, _flag in rows:
            computed = sha256(payload).hexdigest()
            gap = False
            if seq > prev_seq + 1:
                add(Problem(prev_seq + 1, seq - 1, MISSING, "events absent from the chain"))
                gap = True
            elif seq <= prev_seq:
                # The first row holding a seq keeps its place; a second one is named and left out of
                # the links, so the events around it are not blamed for it.
                add(Problem(seq, None, INSERTED, "a second event with this sequence number"))
                if computed != stored:
                    add(Problem(seq, None, MODIFIED, "its content does not match its hash"))
                continue
            if computed != stored:
                add(Problem(seq, None, MODIFIED, "its content does not match its hash"))
            earlier = pending.pop(stored, None)
            if earlier is not None:
                reordered.update((earlier, seq))
                add(Problem(earlier, None, REORDERED, f"it is chained after seq {seq}, which comes later"))
                add(Problem(seq, None, REORDERED, f"seq {earlier}, placed before it, is chained after it"))
            if link != prev_hash and not gap:
                known = recent.get(link)
                if known is None:
                    pending[link] = seq
                elif seq not in reordered and not any(s in reordered for s in range(known + 1, seq)):
                    add(Problem(known + 1, seq - 1, INSERTED, f"seq {seq} links directly to seq {known}"))
            checkpoint = expected.get(seq)
            if checkpoint is not None:
                if checkpoint.head_hash != stored:
                    add(
                        Problem(
                            self.last_good_checkpoint + 1,
                            seq,
                            MODIFIED,
                            f"the chain differs from the checkpoint signed {checkpoint.created_at} UTC "
                            "(events up to it were rewritten)",
                        )
                    )
                else:
                    self.last_good_checkpoint = seq
            recent[stored] = seq
            if len(window) == WINDOW:
                recent.pop(window[0][0], None)
            window.append((stored, seq))
            prev_seq, prev_hash = seq, stored
        self.recent = recent
        self.prev_seq, self.prev_hash = prev_seq, prev_hash

    def finish(self) -> None:
        for _link, seq in sorted(self.pending.items(), key=lambda item: item[1]):
            self.add(
                Problem(seq - 1, None, MODIFIED, f"its hash was recomputed; seq {seq} still links to the original")
            )


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
