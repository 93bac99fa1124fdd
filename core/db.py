"""Engines and sessions: SQLite by default (WAL, foreign keys), PostgreSQL by URL.

Services in core take a `Session` and commit their own change together with its audit
event (see `core.audit.record.committing`). Pages and the command line open sessions here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlmodel import Session, SQLModel, create_engine

from core import postgres_engine, sqlite_engine
from core.errors import NotFound
from core.settings import settings

_engines: dict[str, Engine] = {}
# What Session.execute returns for a statement whose columns are not known to the type checker.
AnyResult = Result[*tuple[Any, ...]]
Row = TypeVar("Row")
_lock = threading.Lock()


def sqlite_file(url: str) -> Path | None:
    path = url.split("///", 1)[1] if "///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    """A new engine for `url`, tuned for Quorum's access pattern."""
    if url.startswith("sqlite"):
        file = sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        # Last in, first out: the connection handed on is the one used last, whose page cache
        # is the most likely still valid (SQLite drops a connection's cache whenever another
        # connection has written): a quarter fewer page reads per gateway call than first in, first out.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": sqlite_engine.BUSY_TIMEOUT_S}, pool_use_lifo=True
        )
        sqlite_engine.tune(engine, str(file.resolve()) if file is not None else url)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=30)
    postgres_engine.tune(engine)  # its own check at checkout, for what pool_pre_ping cost
    return engine


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for `url` (default: the configured database)."""
    url = url or settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and forks of the server process), and tell
    whatever works on an engine in the background to stop (`on_dispose`)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _write_engines.clear()
    for callback in _on_dispose:
        callback()


_on_dispose: list[Callable[[], None]] = []


def on_dispose(callback: Callable[[], None]) -> None:
    """Call `callback` whenever `dispose_engines` runs (a background thread's owner stops it)."""
    _on_dispose.append(callback)


def session(engine: Engine | None = None) -> Session:
    """A session for reading, or for a service that commits its own change."""
    return Session(engine or get_engine(), expire_on_commit=False)


def write_session(engine: Engine | None = None) -> Session:
    """A session whose transactions take the write lock at once on SQLite."""
    return Session(_write_engine(engine or get_engine()), expire_on_commit=False)


_write_engines: dict[Engine, Engine] = {}


def _write_engine(engine: Engine) -> Engine:
    # One option-engine per engine (every gateway call opens a write session; building one
    # each time costs more than the statement it runs).
    writer = _write_engines.get(engine)
    if writer is None:
        writer = _write_engines[engine] = engine.execution_options(quorum_write=True)
    return writer


@contextmanager
def session_scope(*, write: bool = False) -> Iterator[Session]:
    """`with session_scope() as s:` closes the session; services commit their own work."""
    s = write_session() if write else session()
    try:
        yield s
    finally:
        s.close()


def get_or_not_found(session: Session, model: type[Row], row_id: object, what: str) -> Row:
    """The ``model`` row with primary key ``row_id``, or NotFound("No {what} with id {row_id}").

    One message shape for every lookup by id, so a page, the CLI and the HTTP layer all
    tell a missing team, person or key the same way.
    """
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"No {what} with id {row_id}")
    return row


class Saved(Protocol):
    """A table row with an integer primary key, which the database assigns on flush."""

    id: int | None


def saved_id(row: Saved) -> int:
    """The primary key of ``row``, which must have been flushed (or loaded) already.

    Table models declare ``id: int | None`` because a new row has none until the
    database gives it one; code that reads the id after a flush says so with this.
    """
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush the session before reading it")
    return row.id


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model, for statements that skip the ORM on hot paths.

    (SQLModel sets ``__table__`` on a table model without declaring it to type checkers.)
    """
    table = sa_inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a single table")
    return table


def changed_rows(result: AnyResult) -> int:
    """How many rows an UPDATE or DELETE changed.

    Such a statement's result is a ``CursorResult``; ``Session.execute`` is typed as
    returning any ``Result``, which has no count.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"{type(result).__name__} does not count changed rows: run an UPDATE or DELETE")
    return result.rowcount
