"""A queue worked by one daemon thread, started on first use: how Quorum sends webhooks
without a call or a governance action ever waiting on someone else's server."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
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


def post_json(url: str, body: dict[str, Any], *, delays: Sequence[float], timeout: float) -> tuple[int, bool]:
    """POST `body` as JSON, then again after each of `delays` (seconds) until an answer below
    300; (attempts made, delivered?). For the sender's thread: it sleeps between attempts."""
    attempts = 0
    for delay in [0.0, *delays]:
        time.sleep(delay)
        attempts += 1
        try:
            if httpx.post(url, json=body, timeout=timeout).status_code < 300:
                return attempts, True
        except httpx.HTTPError:
            pass
    return attempts, False
