"""Group commit: writes that arrive together share one transaction, and each caller waits for its own.

The gateway's settle is a write transaction per call, and on both databases the cost of
a transaction is mostly its fixed part: taking the write lock (SQLite's BEGIN IMMEDIATE,
PostgreSQL's row locks on the team's counters and on the audit head) and the commit.
`GroupCommit.submit(item)` queues the item; the first caller to find no batch being
written becomes the leader, takes everything queued and writes it with one call of
`write(items)` (one transaction), while the callers that arrive meanwhile queue for the
next batch. `submit` returns only once the item's own batch committed, so an answer
never leaves before its rows are in the database. Nobody waits for a timer: a lone call
is a batch of one, written at once.

A batch that fails is rolled back whole (by `write`), and then each of its items is
written again alone, each in a transaction of its own: a bad item then fails by itself
and its caller gets its error, while the others commit as if nothing had happened. One
by one rather than halving the batch: a failure is rare (a defect, a lost connection, a
lock timeout), most of the time it is not any one item's fault and every retry
succeeds, and one by one is the per-call write-back the gateway had before, whose
errors are exactly attributed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
_log = logging.getLogger("quorum.gateway")

# A bound on one transaction's size (and on how long its first caller waits for it).
MAX_BATCH = 64


class _Pending(Generic[T]):
    __slots__ = ("item", "ready", "lead", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        # Released once, when the caller may go on (its batch committed, or it leads the next):
        # a held lock is the cheapest one-shot signal between threads (an Event is a Condition,
        # Python code and a second lock, and its set() was a tenth of the settle's own CPU).
        self.ready = threading.Lock()
        self.ready.acquire()
        self.lead = False  # handed the next batch to write
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Batches of items written by `write`, one transaction per batch (see the module's story)."""

    def __init__(self, write: Callable[[Sequence[T]], None], *, max_batch: int = MAX_BATCH) -> None:
        self._write, self._max_batch = write, max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending[T]] = []
        self._writing = False
        self.batches = 0  # batches written (observability, tests)
        self.largest = 0

    def submit(self, item: T) -> None:
        """Write `item` with whatever else is waiting; return once it is committed, or raise its error."""
        pending = _Pending(item)
        with self._lock:
            self._queue.append(pending)
            leading = not self._writing
            self._writing = True
        if not leading:
            pending.ready.acquire()
            leading = pending.lead
        if leading:
            self._lead()
        if pending.error is not None:
            raise pending.error

    def _lead(self) -> None:
        # The leader is always first in the queue: a caller leads only when no batch is being
        # written (the queue was empty) or when the last leader handed it the head of the queue.
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            self._write_isolated(batch)
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.ready.release()
                else:
                    self._writing = False
                self.batches += 1
                self.largest = max(self.largest, len(batch))
            for pending in batch[1:]:  # the first is the leader, running here, signalled already
                pending.ready.release()

    def _write_isolated(self, batch: list[_Pending[T]]) -> None:
        try:
            self._write([p.item for p in batch])
            return
        except BaseException as error:  # noqa: BLE001 - handed to the callers it belongs to
            if len(batch) == 1 or not isinstance(error, Exception):
                for pending in batch:
                    pending.error = error
                return
            _log.warning(
                "gateway: a write-back batch of %d failed (%r); writing its calls one by one", len(batch), error
            )
        for pending in batch:
            try:
                self._write([pending.item])
            except BaseException as error:  # noqa: BLE001 - this caller's own error
                pending.error = error
