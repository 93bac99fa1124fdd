"""The serial walk along the audit chain: batches checked whole, problems named event by event.

`batch_sound` accepts a batch only if every event is in place, links to its predecessor,
matches its hash and every signed checkpoint in it, with C-level comparisons and no Python
code per event; the parallel range check (core.audit.ranges) uses the same test. A batch it
refuses goes through `Walk.examine`, event by event, which names each problem.
"""

from __future__ import annotations

import gc
import hashlib
import sqlite3
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from operator import itemgetter

from core.audit.checkpoints import Checkpoint
from core.audit.findings import INSERTED, MISSING, MODIFIED, REORDERED, Problem, Progress, VerifyResult
from core.audit.reading import read_events

# How far back a misplaced link is looked for (reorders and inserts within this distance are named).
WINDOW = 10_000

_sha256 = hashlib.sha256
_hexdigest = type(_sha256()).hexdigest
_SEQ, _HASH = itemgetter(0), itemgetter(1)


def batch_sound(
    rows: list[tuple],
    first: int,
    prev_hash: str | None,
    checkpoint_seqs: Sequence[int],
    expected: dict[int, Checkpoint],
) -> bool:
    """Whether `rows` are events first, first+1, ... each linked to the one before (the first to
    `prev_hash`, unless None), each matching its hash and every signed checkpoint among them."""
    seqs, stored, links, payloads, _flags = zip(*rows)
    if seqs != tuple(range(first, first + len(rows))):
        return False
    if (prev_hash is not None and links[0] != prev_hash) or links[1:] != stored[:-1]:
        return False
    if tuple(map(_hexdigest, map(_sha256, payloads))) != stored:
        return False
    last = seqs[-1]
    for seq in checkpoint_seqs[bisect_left(checkpoint_seqs, first) : bisect_right(checkpoint_seqs, last)]:
        if expected[seq].head_hash != stored[seq - first]:
            return False
    return True


def walk_chain(
    connection,
    result: VerifyResult,
    expected: dict[int, Checkpoint],
    start_seq: int,
    start_hash: str,
    read_from: int,
    batch: int,
    progress: Progress | None,
    total: int,
) -> None:
    """Walk every stored event from `read_from` on, adding each problem to `result`."""
    # A million rows of tuples would set off the cycle collector hundreds of times; they hold no cycles.
    collecting = gc.isenabled()
    gc.disable()
    kept, dropped = len(result.problems), result.dropped_problems
    try:
        try:
            _walk_once(connection, result, expected, start_seq, start_hash, read_from, batch, progress, total)
        except sqlite3.OperationalError as error:
            if "decode" not in str(error):
                raise
            # Bytes that are not UTF-8 in a hash column (only a tamperer writes them): walk again,
            # reading text leniently. The fast path pays nothing for this.
            del result.problems[kept:]
            result.dropped_problems, result.events = dropped, 0
            _walk_once(
                connection, result, expected, start_seq, start_hash, read_from, batch, progress, total, lenient=True
            )
    finally:
        if collecting:
            gc.enable()


def _walk_once(
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
    end_seq: int | None = None,
) -> None:
    walk = Walk(result.add, expected, start_seq, start_hash)
    done = 0
    for rows in read_events(connection, read_from, batch, end_seq=end_seq, lenient=lenient):
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


class Walk:
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
        if not batch_sound(rows, self.prev_seq + 1, self.prev_hash, self.checkpoint_seqs, self.expected):
            return False
        first, last = rows[0][0], rows[-1][0]
        in_batch = self.checkpoint_seqs[
            bisect_left(self.checkpoint_seqs, first) : bisect_right(self.checkpoint_seqs, last)
        ]
        if in_batch:
            self.last_good_checkpoint = in_batch[-1]
        tail = rows[-WINDOW:]
        self.window.extend(zip(map(_HASH, tail), map(_SEQ, tail)))
        self.recent = None
        self.prev_seq, self.prev_hash = last, rows[-1][1]
        return True

    def examine(self, rows: list[tuple]) -> None:
        """Event by event, naming every problem."""
        add, expected, pending, reordered, window = self.add, self.expected, self.pending, self.reordered, self.window
        recent = self.recent if self.recent is not None else dict(self.window)
        prev_seq, prev_hash = self.prev_seq, self.prev_hash
        sha256 = _sha256
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
