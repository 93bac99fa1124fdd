"""Budget settings read on every call, cached in the process for a few seconds.

Reserving and settling a call needs the team's policy (allow-list), the price book with
its database overrides and the budgets the call counts against. They change rarely and
only through core.budgets services, which call `invalidate()` after committing, so this
process sees a change at once; another Quorum process sees it within `TTL_S` seconds.
Entries belong to one engine: a new engine (another database, or the same URL after
`db.dispose_engines()`) starts empty.

The cached values are frozen dataclasses and a PriceBook that nobody mutates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlmodel import Session

TTL_S = 5.0
T = TypeVar("T")

_entries: dict[Hashable, tuple[Any, float, Any]] = {}  # key -> (engine, expires at, value)
_lock = threading.Lock()
_generation = 0


def _engine(session: Session) -> Any:
    bind = session.get_bind()
    while True:
        inner = getattr(bind, "_proxied", None)  # an engine with execution options
        if inner is None and hasattr(bind, "in_transaction") and hasattr(bind, "engine"):
            inner = bind.engine  # a Connection
        if inner is None or inner is bind:
            return bind
        bind = inner


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """The value for `key`, loaded with `load()` (which reads through `session`) when missing or old."""
    engine = _engine(session)
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key)
        generation = _generation
    if entry is not None and entry[0] is engine and entry[1] > now:
        return entry[2]
    value = load()
    with _lock:
        if generation == _generation:  # not invalidated while loading: safe to keep
            _entries[key] = (engine, now + TTL_S, value)
    return value


def invalidate() -> None:
    """Forget everything (a budget, team policy or price changed); call after the commit."""
    global _generation
    with _lock:
        _entries.clear()
        _generation += 1
