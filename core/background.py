"""A queue worked by one daemon thread, started on first use: how Quorum sends webhooks
without a call or a governance action ever waiting on someone else's server."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

Item = TypeVar("Item")
log = logging.getLogger("quorum.background")


class Sender(Generic[Item]):
    """`put` returns at once; `handle` runs on the sender's thread, one item at a time. An item
    that raises is logged and dropped: the thread outlives any one bad item."""

    def __init__(self, name: str, handle: Callable[[Item], None]) -> None:
        self.name = name
        self._handle = handle
        self._queue: queue.Queue[Item] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, item: Item) -> None:
        self._queue.put(item)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until every queued item was handled (tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._handle(item)
            except Exception:  # noqa: BLE001 - the sender must outlive any one bad item
                log.exception("%s: an item failed", self.name)
            finally:
                self._queue.task_done()


@dataclass(frozen=True)
class Outcome:
    """How a POST with retries ended: what its delivery record says."""

    attempts: int
    delivered: bool
    status: int | None  # the last answer's HTTP status; None when no answer came
    error: str  # the last attempt's exception class ("ConnectError"); "" when an answer came


def post_with_retries(url: str, body: dict[str, Any], *, delays: Sequence[float], timeout: float) -> Outcome:
    """POST `body` as JSON, then again after each of `delays` (seconds) until an answer below
    300. For the sender's thread: it sleeps between attempts. Only the exception's class is
    kept, never its message: that may quote the URL, and a URL may hold a token."""
    attempts, status, error = 0, None, ""
    for delay in [0.0, *delays]:
        time.sleep(delay)
        attempts += 1
        try:
            status, error = httpx.post(url, json=body, timeout=timeout).status_code, ""
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
            continue
        if status < 300:
            return Outcome(attempts, True, status, "")
    return Outcome(attempts, False, status, error)


def post_json(url: str, body: dict[str, Any], *, delays: Sequence[float], timeout: float) -> tuple[int, bool]:
    """`post_with_retries`, as (attempts made, delivered?)."""
    outcome = post_with_retries(url, body, delays=delays, timeout=timeout)
    return outcome.attempts, outcome.delivered
