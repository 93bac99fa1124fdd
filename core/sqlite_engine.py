"""SQLite engines: the connection settings, and the write transactions of one process queued
on a lock of its own.

SQLite lets one transaction write at a time. A second writer's BEGIN IMMEDIATE finds the
database locked and SQLite's busy handler puts the thread to sleep, for 1, 2, 5, 10 ms and
longer, whether the lock is freed a tenth of a millisecond later or not. Under the
gateway's load that was about two such sleeps per call: calls that waited longer than the
writes ahead of them took, and threads asleep while the process had work to do. So write
transactions of one process first queue on a `threading.Lock` per database file, which
hands itself to the next writer the moment the last one commits or rolls back, and only
then send BEGIN IMMEDIATE. Another process (a second gateway worker, the command line)
still meets SQLite's own lock and its busy handler, as before.

The lock is held from BEGIN IMMEDIATE until the driver's commit or rollback returns
(`dialect.do_commit` / `do_rollback`, which the pool also calls when a connection goes back
with its transaction open) or until the connection is invalidated or closed. A writer that
waits longer than the busy timeout gets SQLite's own error, "database is locked".
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry

BUSY_TIMEOUT_S = 30
# Set by the "begin" event on a connection whose transaction will write; read by do_begin.
_WILL_WRITE = "quorum_sqlite_will_write"
# The writer lock a connection holds, in its pool entry's info (kept with the driver connection).
_HOLDS = "quorum_sqlite_writer_lock"
# The driver connection's total_changes when its read transaction began (renew_snapshot).
_CHANGES_AT_BEGIN = "quorum_sqlite_changes_at_begin"

_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_lock = threading.Lock()


def writer_lock(database: str) -> threading.Lock:
    """The lock this process's write transactions on `database` (a file's path) queue on."""
    with _writer_locks_lock:
        return _writer_locks.setdefault(database, threading.Lock())


def holds_writer_lock(connection: Connection) -> bool:
    """Whether this connection's transaction holds the writer lock (always False off SQLite)."""
    return connection.dialect.name == "sqlite" and _HOLDS in connection.connection.info


def renew_snapshot(connection: Connection) -> bool:
    """End this connection's read transaction and begin another, so that its next read sees
    what other connections committed since its first one (an SQLite transaction reads one
    snapshot throughout). Only a transaction that has written nothing: True if renewed."""
    if connection.dialect.name != "sqlite" or holds_writer_lock(connection):
        return False
    raw = connection.connection
    driver = raw.driver_connection
    if driver is None or not driver.in_transaction or raw.info.get(_CHANGES_AT_BEGIN) != driver.total_changes:
        return False
    driver.execute("COMMIT")  # of a transaction that only read: ends its snapshot, nothing else
    driver.execute("BEGIN DEFERRED")
    return True


def tune(engine: Engine, database: str) -> None:
    """Connection settings, BEGIN IMMEDIATE for write transactions, and the writer lock."""
    lock = writer_lock(database)
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let the "begin" below issue BEGIN itself (pysqlite's own implicit transactions
        # would defer it past our choice of lock mode).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        try:
            cursor.execute("SELECT ln(1), floor(1.5)")
        except sqlite3.OperationalError:
            # An SQLite built without its math functions: the observability histogram needs these two.
            dbapi_connection.create_function("ln", 1, math.log, deterministic=True)
            dbapi_connection.create_function("floor", 1, math.floor, deterministic=True)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front: a deferred transaction that
        # reads and then writes fails at once (SQLITE_BUSY) when another writer got in
        # between, whereas BEGIN IMMEDIATE simply waits its turn. The BEGIN itself is sent
        # by do_begin, where an error is reported as SQLAlchemy reports the driver's.
        if conn.get_execution_options().get("quorum_write"):
            conn.connection.info[_WILL_WRITE] = True

    def do_begin(connection: Any) -> None:
        # On the driver's connection: through exec_driver_sql this BEGIN cost as much CPU as
        # the INSERT it opens for (every gateway call begins a transaction or two).
        info = connection.info
        if not info.pop(_WILL_WRITE, False):
            driver = connection.dbapi_connection
            info[_CHANGES_AT_BEGIN] = driver.total_changes
            driver.execute("BEGIN DEFERRED")
            return
        if not lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise sqlite3.OperationalError("database is locked")
        info[_HOLDS] = lock
        try:
            connection.dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            _release(info)
            raise

    dialect.do_begin = do_begin  # type: ignore[method-assign,assignment]
    dialect.do_commit = _releasing(dialect.do_commit)  # type: ignore[method-assign,assignment]
    dialect.do_rollback = _releasing(dialect.do_rollback)  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi: Any, record: ConnectionPoolEntry, _error: BaseException | None) -> None:
        _release(record.info)

    @event.listens_for(engine, "close")
    def _on_close(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        _release(record.info)


def _releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
    """The dialect's commit or rollback, handing the writer lock on once the driver is done."""

    def end_then_release(connection: Any) -> None:
        try:
            end(connection)
        finally:
            try:
                info = connection.info
            except NotImplementedError:  # the pool's first, ad hoc connection: it began nothing
                return
            _release(info)

    return end_then_release


def _release(info: dict[Any, Any]) -> None:
    held = info.pop(_HOLDS, None)
    if held is not None:
        held.release()
