"""Reading the audit log for verification: every stored row, in order, as the bytes to hash.

SQLite and PostgreSQL build each event's canonical form (core.audit.chain) and Python hashes
it; the rare row the database cannot build exactly (text holding a NUL on SQLite, a time
outside years 1000-9999 on PostgreSQL) is read again and built in Python. Batches are read one
ahead on a helper thread while the verifier hashes the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from operator import itemgetter

from core.audit.chain import (
    HASHED_COLUMNS,
    canonical_payload,
    canonical_payload_sql,
    exact_row_sql,
    stored_payload,
)


def read_events(
    connection,
    start_seq: int,
    batch: int,
    *,
    end_seq: int | None = None,
    lenient: bool = False,
    ahead: bool = True,
) -> Iterator[list[tuple]]:
    """Every event from `start_seq` to `end_seq` in (seq, id) order: (seq, hash, prev_hash, canonical bytes) rows.

    The canonical bytes are built from exactly the bytes stored (NUL characters included).
    `lenient` (SQLite) reads text that is not UTF-8 instead of failing on it. `ahead` reads the next
    batch on a helper thread while the caller hashes this one (parallel range checks have their own).
    """
    dialect = connection.dialect.name
    in_sql = canonical_payload_sql(dialect)
    if dialect == "postgresql" and in_sql and _utf8(connection):
        yield from _read_postgres(connection, start_seq, end_seq, batch, in_sql, ahead)
        return
    dbapi = connection.connection.dbapi_connection
    factory = getattr(dbapi, "text_factory", None)
    if lenient:
        dbapi.text_factory = _lenient_text
    cursor = dbapi.cursor()
    try:
        if dialect == "sqlite" and in_sql:
            # SQLite builds the canonical form in C and hands it over as bytes, ready to hash.
            # One query read with fetchmany: the read transaction is the snapshot, so no keyset is needed.
            # The fifth column names the rare row whose text holds a NUL, where printf() would stop short.
            cursor.execute(
                f"SELECT seq, hash, prev_hash, CAST({in_sql} AS BLOB), "
                f"{exact_row_sql(dialect)} FROM audit_event "
                "WHERE seq >= ? AND seq <= ? ORDER BY seq, id",
                (start_seq, _LAST if end_seq is None else end_seq),
            )
            exact = dbapi.cursor()

            def fetch() -> list[tuple]:
                rows = cursor.fetchmany(batch)
                if any(map(_FLAG, rows)):  # C-level: ids as text are never false, NULL always is
                    rows = [_exact_row(exact, row) if row[4] is not None else row for row in rows]
                return rows

            try:
                yield from _read_ahead(fetch) if ahead else iter(fetch, [])
            finally:
                exact.close()
            return
        # Elsewhere the hashed columns come back and Python builds the form, in keyset batches
        # (a client-side cursor would hold the whole result in memory).
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        last_seq = _LAST if end_seq is None else end_seq
        columns = "seq, id, hash, " + ", ".join(HASHED_COLUMNS)
        cursor.execute(
            f"SELECT {columns} FROM audit_event WHERE seq >= {mark} AND seq <= {mark} ORDER BY seq, id LIMIT {mark}",
            (start_seq, last_seq, batch),
        )
        next_sql = (
            f"SELECT {columns} FROM audit_event WHERE seq >= {mark} AND seq <= {mark} "
            f"AND (seq > {mark} OR id > {mark}) ORDER BY seq, id LIMIT {mark}"
        )
        while rows := cursor.fetchall():
            yield [(r[0], r[2], r[-1], canonical_payload(r[3:]).encode(), None) for r in rows]
            last = rows[-1]
            cursor.execute(next_sql, (last[0], last_seq, last[0], last[1], batch))
    finally:
        cursor.close()
        if lenient:
            dbapi.text_factory = factory


# Larger than any seq: "no upper bound" as a plain parameter.
_LAST = 2**63 - 1


def _utf8(connection) -> bool:
    # PostgreSQL's length() counts characters like Python's len() only in a UTF8 database.
    return connection.exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"


def _read_postgres(
    connection, start_seq: int, end_seq: int | None, batch: int, in_sql: str, ahead: bool
) -> Iterator[list[tuple]]:
    """PostgreSQL builds the canonical form; a server-side cursor streams it in binary, one batch ahead."""
    dbapi = connection.connection.dbapi_connection
    cursor = dbapi.cursor(name=f"audit_verify_{threading.get_ident()}", binary=True)
    exact = dbapi.cursor()
    columns = ", ".join(HASHED_COLUMNS)
    ge, le = " OPERATOR(pg_catalog.>=) ", " OPERATOR(pg_catalog.<=) "
    try:
        cursor.execute(
            f"SELECT seq, hash, prev_hash, {in_sql}, {exact_row_sql('postgresql')} FROM audit_event "
            f"WHERE seq{ge}%s AND seq{le}%s ORDER BY seq, id",
            (start_seq, _LAST if end_seq is None else end_seq),
        )

        def exact_row(row: tuple) -> tuple:
            exact.execute(f"SELECT {columns} FROM audit_event WHERE id = %s", (int(row[4]),))
            return (row[0], row[1], row[2], canonical_payload(exact.fetchone()).encode(), None)

        def fetch() -> list[tuple]:
            rows = cursor.fetchmany(batch)
            if any(map(_FLAG, rows)):
                rows = [exact_row(row) if row[4] is not None else row for row in rows]
            return rows

        yield from _read_ahead(fetch) if ahead else iter(fetch, [])
    finally:
        exact.close()
        cursor.close()


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


_FLAG = itemgetter(4)


_RAW_COLUMNS = ", ".join(f"CAST({c} AS BLOB)" if c != "team_id" else c for c in HASHED_COLUMNS)


def _exact_row(cursor, row: tuple) -> tuple:
    """`row` with its canonical form rebuilt in Python from the stored bytes (same snapshot)."""
    cursor.execute(f"SELECT {_RAW_COLUMNS} FROM audit_event WHERE id = ?", (int(row[4]),))
    return (row[0], row[1], row[2], stored_payload(cursor.fetchone()), None)


def _read_ahead(fetch: Callable[[], list]) -> Iterator[list]:
    """The batches `fetch` returns, fetched one ahead by a helper thread.

    sqlite3 releases the GIL while SQLite steps (and builds the canonical text), so the
    next batch is read on the second core while this thread hashes the current one.
    """
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                rows = fetch()
                ready.put(rows)
                if not rows:
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            ready.put(error)

    thread = threading.Thread(target=reader, name="audit-verify-reader", daemon=True)
    thread.start()
    try:
        while True:
            rows = ready.get()
            if isinstance(rows, BaseException):
                raise rows
            if not rows:
                return
            yield rows
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting to put, then let it finish its fetch
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
