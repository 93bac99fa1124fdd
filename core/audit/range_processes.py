"""Ranges of an SQLite audit chain checked in worker processes, one range per process at a time.

Threads cannot keep two cores busy on SQLite: hashing each canonical form in Python holds the
GIL, and SQLite's global memory statistics serialize its allocations across connections of one
process. Processes share neither. Each worker opens the file itself (core.audit.group_check,
standard library only) and reads a snapshot of its own, taken after the caller's; the ranges
stop at the caller's last seq and the log only grows past its end, so a range sound in a
worker's snapshot holds the same events as the caller's (core.audit.ranges says more).

A worker is a plain `python -m core.audit.group_check` that answers one JSON line per range on
its standard input and output, not a multiprocessing child: those import the caller's main
script again (with "spawn") or copy a process whose other threads may hold locks (with "fork"),
and a script without an `if __name__ == "__main__"` guard would run once more in each of them.
Workers are started on first use and kept for the life of the process, so that only the first
verification pays for starting them; a verification uses at most `workers` at once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import core
from core.audit.group_check import REBUILD, SOUND

log = logging.getLogger(__name__)

_idle: queue.SimpleQueue[subprocess.Popen] = queue.SimpleQueue()
_lock = threading.Lock()
_started: list[subprocess.Popen] = []


class WorkerFailed(Exception):
    """A worker process died or answered something other than a verdict."""


def _start() -> subprocess.Popen:
    root = str(Path(core.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    worker = subprocess.Popen(
        [sys.executable, "-m", "core.audit.group_check"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    with _lock:
        _started[:] = [w for w in _started if w.poll() is None]
        _started.append(worker)
    return worker


def _take() -> subprocess.Popen:
    while True:
        try:
            worker = _idle.get_nowait()
        except queue.Empty:
            return _start()
        if worker.poll() is None:
            return worker


def _ask(worker: subprocess.Popen, request: list) -> list:
    assert worker.stdin is not None and worker.stdout is not None
    try:
        worker.stdin.write(json.dumps(request) + "\n")
        worker.stdin.flush()
        reply = worker.stdout.readline()
    except OSError as error:
        raise WorkerFailed(f"the worker's pipe broke: {error}") from error
    if not reply:
        raise WorkerFailed(f"the worker ended (exit status {worker.wait()})")
    answer = json.loads(reply)
    if answer[0] == "error":
        raise WorkerFailed(answer[1])
    return answer


def worker_pids() -> list[int]:
    """The live worker processes' ids (the benchmark adds up their CPU time)."""
    with _lock:
        return [worker.pid for worker in _started if worker.poll() is None]


# (first, last, sound, first link, last hash); None: the range needs its rows checked one by one.
Outcome = tuple[int, int, bool, str | None, str | None] | None


def check_in_processes(
    path: Path,
    queries: tuple[str, str],
    ranges: list[tuple[int, int]],
    checkpoints: dict[int, str],
    *,
    workers: int,
    group: int,
    on_done: Callable[[int, int, Outcome], bool],
) -> None:
    """Check `ranges` of the SQLite file at `path`, at most `workers` at once, in worker processes.

    `on_done(first, last, outcome)` runs on the caller's thread as each range finishes and says
    whether to go on; the first range it stops on (or any failure of a worker) ends the run, and
    the ranges not reported are left to the caller, who counts them as unsound.
    """
    todo: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
    for item in ranges:
        todo.put(item)
    finished: queue.SimpleQueue[tuple[int, int, Outcome] | BaseException] = queue.SimpleQueue()
    stop = threading.Event()

    def drive() -> None:
        """One worker process, fed ranges from this thread until none is left or the run stops."""
        worker = None
        try:
            worker = _take()
            while not stop.is_set():
                try:
                    first, last = todo.get_nowait()
                except queue.Empty:
                    break
                wanted = {seq: head for seq, head in checkpoints.items() if first <= seq <= last}
                verdict, first_link, last_hash = _ask(worker, [str(path), list(queries), first, last, group, wanted])
                outcome = None if verdict == REBUILD else (first, last, verdict == SOUND, first_link, last_hash)
                finished.put((first, last, outcome))
            _idle.put(worker)
        except Exception as error:
            if worker is not None:
                worker.kill()  # its state is unknown: a new one starts next time
                worker.wait()
            finished.put(error)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit-verify") as threads:
        running = [threads.submit(drive) for _ in range(min(workers, len(ranges)))]
        reported = 0
        while reported < len(ranges):
            try:
                item = finished.get(timeout=0.1)
            except queue.Empty:
                if all(f.done() for f in running) and finished.empty():
                    return  # stopped: the ranges not reported are the caller's to count as unsound
                continue
            if isinstance(item, BaseException):
                # The serial walk that follows reads the same rows and says what is wrong.
                log.warning("a worker process of the audit verification failed; verifying serially: %s", item)
                stop.set()
                continue
            reported += 1
            if not stop.is_set() and not on_done(*item):
                stop.set()
