"""Ranges of an SQLite audit chain checked in worker processes, one range per process at a time.

Threads cannot keep two cores busy on SQLite: hashing each canonical form in Python holds the
GIL, and SQLite's global memory statistics serialize its allocations across connections of one
process. Processes share neither. Each worker opens the file itself (core.audit.group_check,
standard library only) and reads a snapshot of its own, taken after the caller's; the ranges
stop at the caller's last seq and the log only grows past its end, so a range sound in a
worker's snapshot holds the same events as the caller's (core.audit.ranges says more).

The pool is started on first use with the "spawn" method (forking a process that runs threads,
as the Streamlit server does, can copy a lock some other thread holds) and kept for the life of
the process, so that only the first verification pays for starting it. A verification never
has more ranges in flight than its `workers`, whatever the pool's size.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from core.audit.group_check import REBUILD, SOUND, check_file_range

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def _process_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            _pool_size = workers
        return _pool


def _forget(pool: ProcessPoolExecutor) -> None:
    """Drop a pool that broke (a worker killed): the next verification starts a new one."""
    global _pool, _pool_size
    with _lock:
        if _pool is pool:
            _pool, _pool_size = None, 0
    pool.shutdown(wait=False, cancel_futures=True)


def worker_pids() -> list[int]:
    """The worker processes' ids (the benchmark adds up their CPU time)."""
    with _lock:
        processes = getattr(_pool, "_processes", None) or {}
        return list(processes)


# (first, last, sound, first link, last hash); None: the range needs its rows checked one by one.
Outcome = tuple[int, int, bool, str | None, str | None] | None


def check_in_processes(
    path: Path,
    query: str,
    ranges: list[tuple[int, int]],
    checkpoints: dict[int, str],
    *,
    workers: int,
    group: int,
    on_done: Callable[[int, int, Outcome], bool],
) -> None:
    """Check `ranges` of the SQLite file at `path`, at most `workers` at once, in worker processes.

    `on_done(first, last, outcome)` runs on the caller's thread as each range finishes and says
    whether to go on; the first range it stops on (or any failure of the pool) ends the run, and
    the ranges not reported are left to the caller, who counts them as unsound.
    """
    pool = _process_pool(workers)
    todo = list(reversed(ranges))
    running: dict[Future, tuple[int, int]] = {}

    def submit() -> None:
        first, last = todo.pop()
        wanted = {seq: head for seq, head in checkpoints.items() if first <= seq <= last}
        running[pool.submit(check_file_range, str(path), query, first, last, group, wanted)] = (first, last)

    try:
        while todo and len(running) < workers:
            submit()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                first, last = running.pop(future)
                verdict, first_link, last_hash = future.result()
                outcome: Outcome = (
                    None if verdict == REBUILD else (first, last, verdict == SOUND, first_link, last_hash)
                )
                if not on_done(first, last, outcome):
                    return
                if todo:
                    submit()
    except BrokenProcessPool:  # a worker died (killed, out of memory): the serial walk has the last word
        log.warning("a worker process of the audit verification died; verifying serially", exc_info=True)
        _forget(pool)
    except Exception:  # the serial walk that follows reads the same rows and says what is wrong
        log.warning("a range check of the audit chain failed in a worker process; verifying serially", exc_info=True)
