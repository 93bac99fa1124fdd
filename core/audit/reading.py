"""Reading the audit log for verification: every stored row, in order, as the bytes to hash.

On SQLite the database builds each event's canonical form (core.audit.chain), and rows whose
text may hold a NUL are read again as raw bytes; elsewhere Python builds the form. Batches
are read one ahead on a helper thread while the verifier hashes the current one.
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
    stored_nul_sql,
    stored_payload,
)


def read_events(connection, start_seq: int, batch: int, *, lenient: bool = False) -> Iterator[list[tuple]]:
    """Every event from `start_seq` on in (seq, id) order, as (seq, hash, prev_hash, canonical bytes) rows.

    The canonical bytes are built from exactly the bytes stored (NUL characters included).
    `lenient` (SQLite) reads text that is not UTF-8 instead of failing on it.
    """
    dbapi = connection.connection.dbapi_connection
    factory = getattr(dbapi, "text_factory", None)
    if lenient:
        dbapi.text_factory = _lenient_text
    cursor = dbapi.cursor()
    try:
        in_sql = canonical_payload_sql(connection.dialect.name)
        if in_sql:
            # SQLite builds the canonical form in C and hands it over as bytes, ready to hash.
            # One query read with fetchmany: the read transaction is the snapshot, so no keyset is needed.
            # The fifth column names the rare row whose text holds a NUL, where printf() would stop short.
            cursor.execute(
                f"SELECT seq, hash, prev_hash, CAST({in_sql} AS BLOB), "
                f"{stored_nul_sql(connection.dialect.name)} FROM audit_event "
                "WHERE seq >= ? ORDER BY seq, id",
                (start_seq,),
            )
            exact = dbapi.cursor()

            def fetch() -> list[tuple]:
                rows = cursor.fetchmany(batch)
                if any(map(_FLAG, rows)):  # C-level: ids as text are never false, NULL always is
                    rows = [_exact_row(exact, row) if row[4] is not None else row for row in rows]
                return rows

            try:
                yield from _read_ahead(fetch)
            finally:
                exact.close()
            return
        # Elsewhere the hashed columns come back and Python builds the form, in keyset batches
        # (a client-side cursor would hold the whole result in memory).
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        columns = "seq, id, hash, " + ", ".join(HASHED_COLUMNS)
        cursor.execute(
            f"SELECT {columns} FROM audit_event WHERE seq >= {mark} ORDER BY seq, id LIMIT {mark}", (start_seq, batch)
        )
        next_sql = (
            f"SELECT {columns} FROM audit_event WHERE seq >= {mark} AND (seq > {mark} OR id > {mark}) "
            f"ORDER BY seq, id LIMIT {mark}"
        )
        while rows := cursor.fetchall():
            yield [(r[0], r[2], r[-1], canonical_payload(r[3:]).encode(), None) for r in rows]
            last = rows[-1]
            cursor.execute(next_sql, (last[0], last[0], last[1], batch))
    finally:
        cursor.close()
        if lenient:
            dbapi.text_factory = factory


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
