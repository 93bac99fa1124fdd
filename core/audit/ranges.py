"""Checking ranges of the audit chain in parallel, each on a connection and thread of its own.

An event's hash depends only on its own row, and a link only on the event before it, so a
range of sequence numbers can be checked on its own: every seq of the range present once,
each event linked to the one before, matching its hash and every signed checkpoint in the
range (`walk.batch_sound`, the test the serial walk uses). What joins two ranges is one pair
of hashes, the first event's link and the previous range's last hash, which the caller
compares. A range found unsound is not examined here: the caller then walks the chain
serially, which names every problem exactly as it always has.

Processes on SQLite, threads on PostgreSQL. PostgreSQL builds and hashes each canonical
form on a backend process of its own per connection, so threads waiting on it keep both cores
busy while costing nothing to start. On an SQLite file, Python hashes each form, holding the
GIL, and SQLite's allocations take a lock shared by the connections of one process: threads
took turns (two of them verified 257k events/s on an idle machine, the serial walk 182k), so each range is
checked in a worker process (core.audit.range_processes). An in-memory SQLite database is
never split: each connection to it sees a database of its own.

Snapshots: on PostgreSQL every worker joins the caller's snapshot (`pg_export_snapshot`).
SQLite cannot share one, so each worker reads a snapshot of its own, taken after the
caller's. The ranges stop at the caller's last seq, and the log only grows past its end, so
a range sound in a worker's snapshot holds the same events; if anything differs (a prune
deleting events as the check runs), the range is unsound and the serial walk, in the
caller's snapshot, has the last word.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from core.audit.chain import HASHED_COLUMNS, canonical_payload_sql, exact_row_sql, sqlite_payload_sql
from core.audit.checkpoints import Checkpoint
from core.audit.findings import Progress
from core.audit.group_check import REBUILD, UNSOUND, WIDTHS, check_groups
from core.audit.range_processes import Outcome, check_in_processes
from core.audit.reading import read_events
from core.audit.walk import batch_sound
from core.db import sqlite_file

log = logging.getLogger(__name__)

# Ranges are at least this long, so a small chain does not pay for threads it cannot use.
MIN_RANGE = 20_000
# About this many ranges per worker: they balance the load and give the progress bar its steps.
RANGES_PER_WORKER = 4


@dataclass(frozen=True)
class RangeReport:
    first: int
    last: int
    sound: bool
    first_link: str | None = None  # the first event's prev_hash
    last_hash: str | None = None


def split(first: int, last: int, workers: int) -> list[tuple[int, int]]:
    """[first, last] cut into consecutive ranges of at least MIN_RANGE events."""
    span = last - first + 1
    if span <= 0:
        return []
    size = max(MIN_RANGE, math.ceil(span / (workers * RANGES_PER_WORKER)))
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]


def check_range(connection, first: int, last: int, expected: dict[int, Checkpoint], batch: int) -> RangeReport:
    """Whether events first..last are all present once, linked inside, and match their hashes and checkpoints."""
    if connection.dialect.name in ("sqlite", "postgresql"):
        report = _vector_range(connection, first, last, expected)
        if report is not None:
            return report
    checkpoint_seqs = sorted(s for s in expected if first <= s <= last)
    next_seq, prev_hash, first_link = first, None, None
    for rows in read_events(connection, first, batch, end_seq=last, ahead=False):
        if not batch_sound(rows, next_seq, prev_hash, checkpoint_seqs, expected):
            return RangeReport(first, last, False)
        if first_link is None:
            first_link = rows[0][2]
        next_seq, prev_hash = rows[-1][0] + 1, rows[-1][1]
    if next_seq != last + 1:
        return RangeReport(first, last, False)
    return RangeReport(first, last, True, first_link, prev_hash)


# Events per aggregated row of the SQLite check, and of PostgreSQL's (which hands over only hashes and links).
GROUP = 2_000
POSTGRES_GROUP = 10_000


def _vector_range(connection, first: int, last: int, expected: dict[int, Checkpoint]) -> RangeReport | None:
    """The range check as a vectorized pass: the database hands over GROUP events per row, concatenated.

    Read row by row, two threads would pass the GIL back and forth at every row the database
    hands over; aggregated, each thread holds it once per GROUP events, and Python makes one
    bytes object per event (its canonical form, sliced out by the lengths the database reports;
    core.audit.group_check). PostgreSQL (11 and later) hashes each form itself and reports how
    many differ from the stored hash, so its backends, not this process, do that work, in
    parallel without the GIL. None when a row needs its form built in Python (text holding a
    NUL on SQLite): the caller checks the range row by row instead.
    """
    checkpoints = {seq: c.head_hash for seq, c in expected.items() if first <= seq <= last}
    dbapi = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite":
        cursor = dbapi.cursor()
        try:
            verdict, first_link, last_hash = check_groups(cursor, _SQLITE_GROUP, first, last, GROUP, checkpoints)
        finally:
            cursor.close()
        if verdict == REBUILD:
            return None
        if verdict == UNSOUND or first_link is None or last_hash is None:
            return RangeReport(first, last, False)
        return RangeReport(first, last, True, first_link.decode(), last_hash.decode())
    if (connection.dialect.server_version_info or (0,)) < (11,):
        return None  # sha256() is built in from PostgreSQL 11
    cursor = dbapi.cursor(binary=True)
    first_link, prev_hash = None, None
    try:
        for start in range(first, last + 1, POSTGRES_GROUP):
            end = min(start + POSTGRES_GROUP - 1, last)
            seqs, hashes, links, _lengths, mismatched, flagged, odd = cursor.execute(
                _POSTGRES_GROUP, (start, end)
            ).fetchone()
            if flagged:
                return None
            # PostgreSQL hashed each canonical form itself and counted the mismatches.
            if odd or mismatched or seqs != ",".join(map(str, range(start, end + 1))):
                return RangeReport(first, last, False)
            if links[64:] != hashes[:-64] or (prev_hash is not None and links[:64] != prev_hash):
                return RangeReport(first, last, False)
            for seq, head_hash in checkpoints.items():
                if start <= seq <= end and hashes[(seq - start) * 64 : (seq - start + 1) * 64] != head_hash.encode():
                    return RangeReport(first, last, False)
            if first_link is None:
                first_link = links[:64]
            prev_hash = hashes[-64:]
    finally:
        cursor.close()
    if first_link is None or prev_hash is None:
        return RangeReport(first, last, False)
    return RangeReport(first, last, True, bytes(first_link).decode(), bytes(prev_hash).decode())


def _sqlite_group(widths: dict[str, int]) -> str:
    """The SQLite range check's query over events ? to ?, GROUP events per row (core.audit.group_check).

    No ORDER BY: every aggregate takes the rows in the same order, the seq index's, and the
    check proves that order from the seqs. Each column is read as few times as it can be (SQLite
    copies a value out of its page at every reference): the canonical form reads the hashed
    columns, and the stored text is read once more, whole, for the NUL that printf() would stop at.
    """
    stored = [c for c in HASHED_COLUMNS if c not in ("event_id", "occurred_at", "prev_hash")]
    return (
        "SELECT group_concat(seq), CAST(group_concat(ifnull(hash, '')) AS BLOB), "
        "CAST(group_concat(ifnull(prev_hash, '')) AS BLOB), "
        f"CAST(group_concat({sqlite_payload_sql(widths)}, x'00') AS BLOB), "
        "CAST(group_concat(event_id) AS BLOB), CAST(group_concat(occurred_at) AS BLOB), "
        # A hash or link stored as bytes reads like text here but not in the serial walk.
        "max(typeof(hash) != 'text' OR typeof(prev_hash) NOT IN ('text', 'null')), "
        + ", ".join(f"CAST(group_concat({column}, '') AS BLOB)" for column in stored)
        + " FROM audit_event WHERE seq >= ? AND seq <= ?"
    )


# Fast: the widths of event ids and times written into the format; general: theirs measured row by row
# (prev_hash's width is proven by the links in both).
_SQLITE_GROUP = (_sqlite_group(WIDTHS), _sqlite_group({"prev_hash": WIDTHS["prev_hash"]}))

# Schema-qualified throughout, like core.audit.chain.postgres_payload_sql.
_NE = " OPERATOR(pg_catalog.<>) "
_POSTGRES_GROUP = (
    "SELECT pg_catalog.string_agg(CAST(seq AS pg_catalog.text), ','), "
    "pg_catalog.convert_to(pg_catalog.string_agg(hash, ''), 'UTF8'), "
    "pg_catalog.convert_to(pg_catalog.string_agg(prev_hash, ''), 'UTF8'), NULL, "
    # Hashed in the database: the backend's C does the work of Python's hashlib without the GIL,
    # and only hashes and links cross the connection, not each event's canonical text.
    # Compared as bytes: a collation must not decide whether two hashes are equal.
    "pg_catalog.count(*) FILTER (WHERE pg_catalog.convert_to(pg_catalog.encode(pg_catalog.sha256(p), 'hex'), 'UTF8')"
    f"{_NE}pg_catalog.convert_to(hash, 'UTF8')), pg_catalog.bool_or(f IS NOT NULL), "
    f"pg_catalog.count(*) FILTER (WHERE pg_catalog.octet_length(hash){_NE}64 "
    f"OR pg_catalog.octet_length(prev_hash){_NE}64) "
    f"FROM (SELECT seq, hash, prev_hash, {canonical_payload_sql('postgresql')} AS p, "
    f"{exact_row_sql('postgresql')} AS f FROM audit_event "
    "WHERE seq OPERATOR(pg_catalog.>=) %s AND seq OPERATOR(pg_catalog.<=) %s ORDER BY seq, id) AS events"
)


def check_ranges(
    engine: Engine,
    ranges: list[tuple[int, int]],
    expected: dict[int, Checkpoint],
    *,
    workers: int,
    batch: int,
    snapshot: str | None = None,
    progress: Progress | None = None,
    done: int = 0,
    total: int = 0,
) -> list[RangeReport]:
    """A report per range, in order; stops early (the rest unsound) as soon as one range is unsound.

    `snapshot` is a PostgreSQL snapshot id every worker joins. `progress` is called on the
    caller's thread (Streamlit draws only from there) as ranges finish.
    """
    path = sqlite_file(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is not None:
        return _in_processes(
            engine, path, ranges, expected, workers=workers, batch=batch, progress=progress, done=done, total=total
        )
    todo: queue.Queue[tuple[int, int]] = queue.Queue()
    for item in ranges:
        todo.put(item)
    finished: queue.Queue[RangeReport] = queue.Queue()
    stop = threading.Event()

    def worker() -> None:
        try:
            with engine.connect() as connection:
                if snapshot is not None:
                    connection = connection.execution_options(isolation_level="REPEATABLE READ")
                    connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                while not stop.is_set():
                    try:
                        first, last = todo.get_nowait()
                    except queue.Empty:
                        return
                    report = check_range(connection, first, last, expected, batch)
                    finished.put(report)
                    if not report.sound:
                        stop.set()
                connection.rollback()
        except Exception:  # the serial walk that follows reads the same rows and says what is wrong
            log.warning("a range check of the audit chain failed; verifying serially", exc_info=True)
            stop.set()

    reports: dict[int, RangeReport] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audit-verify") as pool:
        running = [pool.submit(worker) for _ in range(min(workers, len(ranges)))]
        while len(reports) < len(ranges) and not (stop.is_set() and all(f.done() for f in running)):
            try:
                report = finished.get(timeout=0.1)
            except queue.Empty:
                continue
            reports[report.first] = report
            done += report.last - report.first + 1
            if progress:
                progress(done, max(total, done))
    while not finished.empty():
        report = finished.get()
        reports[report.first] = report
    return [reports.get(first) or RangeReport(first, last, False) for first, last in ranges]


def _in_processes(
    engine: Engine,
    path: Path,
    ranges: list[tuple[int, int]],
    expected: dict[int, Checkpoint],
    *,
    workers: int,
    batch: int,
    progress: Progress | None,
    done: int,
    total: int,
) -> list[RangeReport]:
    """`check_ranges` for an SQLite file: each range in a worker process (core.audit.range_processes)."""
    reports: dict[int, RangeReport] = {}

    def on_done(first: int, last: int, outcome: Outcome) -> bool:
        nonlocal done
        if outcome is None:  # a row to build in Python: this range row by row, here
            with engine.connect() as connection:
                report = check_range(connection, first, last, expected, batch)
                connection.rollback()
        else:
            report = RangeReport(*outcome)
        reports[first] = report
        done += last - first + 1
        if progress:
            progress(done, max(total, done))
        return report.sound

    checkpoints = {seq: c.head_hash for seq, c in expected.items()}
    check_in_processes(path, _SQLITE_GROUP, ranges, checkpoints, workers=workers, group=GROUP, on_done=on_done)
    return [reports.get(first) or RangeReport(first, last, False) for first, last in ranges]
