"""The experiments running in this process: their progress and their cancel switch, by id.

A run lives in a background thread; the page that started it (or any other page of the
same server) polls ``progress`` and flips ``cancel``. After a restart nothing is
registered, and the database row alone tells the status.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class RunState:
    total: int
    done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


_runs: dict[int, RunState] = {}
_lock = threading.Lock()


def register(experiment_id: int, total: int) -> RunState:
    with _lock:
        state = _runs[experiment_id] = RunState(total=total)
        return state


def get(experiment_id: int) -> RunState | None:
    with _lock:
        return _runs.get(experiment_id)


def unregister(experiment_id: int) -> None:
    with _lock:
        _runs.pop(experiment_id, None)


def wait(experiment_id: int, timeout: float = 60.0) -> bool:
    """Wait for a background run to end (tests, the CLI); True when it has."""
    state = get(experiment_id)
    if state is None or state.thread is None:
        return True
    state.thread.join(timeout)
    return not state.thread.is_alive()
