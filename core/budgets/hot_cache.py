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

from sqlalchemy import Connection
from sqlmodel import Session

from core import db

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


def cached(session: Session | Connection | None, key: Hashable, load: Callable[[Session], T]) -> T:
    """The value for `key`, loaded with `load(session)` when missing or old.

    With a plain Connection, a session bound to it reads the value; with nothing, a session
    of the configured database is opened. Either way only when the value must be loaded, so
    a fresh value costs no database work at all."""
    engine = _engine(session) if isinstance(session, Session) else (session.engine if session else db.get_engine())
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key)
        generation = _generation
    if entry is not None and entry[0] is engine and entry[1] > now:
        return entry[2]
    if isinstance(session, Session):
        value = load(session)
    elif session is not None:
        # Through the caller's connection: taking a second one from the pool while the caller
        # holds its first would starve the pool when many admissions miss at once.
        with Session(bind=session) as borrowed:
            value = load(borrowed)
    else:
        with db.session(engine) as own:
            value = load(own)
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
