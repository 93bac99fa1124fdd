"""Exports written as they are read: rows in, bytes out, in constant memory.

Every export (the audit log, the spend ledger, the call log, a subject-access document) is an
`Export`: a file name, a MIME type and a generator of byte chunks that reads the database batch
by batch while the chunks are consumed. The command line writes the chunks to a file
(`write_file`, with progress); the pages hand them to an HTTP response through a short-lived
download link (`offer` and `claim`), because Streamlit's download button turns whatever it is
given, a callable's result included, into one bytes object held in the server's memory.

A link is a random token that names one prepared export for the person it was made for, for
a few minutes, in this server process only: the browser that shows the page is the one that
follows the link, and behind a load balancer the sessions are sticky. The export's own
function checked the permission when the link was made and checks it again when it runs.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from sqlalchemy import Boolean, Column, Integer, Numeric, String, Text, cast, func, literal, select
from sqlalchemy.orm import Session

from core.errors import NotFound, ValidationError

FORMATS = ("csv", "jsonl")
MIME = {"csv": "text/csv", "jsonl": "application/x-ndjson", "json": "application/json"}
# Bytes gathered before a chunk is handed on: big enough that a write or a socket send is
# cheap per row, small enough that memory stays flat (a few of these are alive at once).
CHUNK_BYTES = 256 * 1024
# Rows read from the database at a time: about a chunk's worth, so that little is held at once.
BATCH_ROWS = 1000
# How long a download link stays valid.
LINK_SECONDS = 15 * 60
# How many live links one person has at most (the oldest go first).
LINKS_PER_OWNER = 20


def check_format(fmt: str, formats: Sequence[str] = FORMATS) -> str:
    if fmt not in formats:
        raise ValidationError(f"Unknown export format {fmt!r}; use one of: {', '.join(formats)}")
    return fmt


@dataclass
class Export:
    """One export, ready to run: `chunks()` reads and encodes as it is iterated (once).

    `rows` counts the rows written so far (progress), `total` is how many there will be when
    the producer knows it cheaply (None otherwise), `summary` what the file holds by section
    when the producer counted it.
    """

    file_name: str
    mime: str
    produce: Callable[[Export], Iterator[bytes]]
    total: int | None = None
    rows: int = 0
    # What the file holds, when its producer counted it first (section -> rows).
    summary: dict[str, int] = field(default_factory=dict)

    def chunks(self) -> Iterator[bytes]:
        return self.produce(self)


def csv_chunks(export: Export, header: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> Iterator[bytes]:
    """CSV (header, then rows) from batches of row tuples, in chunks of about CHUNK_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for batch in batches:
        writer.writerows(batch)
        export.rows += len(batch)
        if buffer.tell() >= CHUNK_BYTES:
            yield _drain(buffer)
    if buffer.tell():
        yield _drain(buffer)


def line_chunks(export: Export, batches: Iterable[Sequence[str]]) -> Iterator[bytes]:
    """JSON Lines (or CSV lines) from batches of finished lines, each without its newline."""
    pending: list[bytes] = []
    size = 0
    for batch in batches:
        if not batch:
            continue
        data = ("\n".join(batch) + "\n").encode("utf-8")
        export.rows += len(batch)
        pending.append(data)
        size += len(data)
        if size >= CHUNK_BYTES:
            yield b"".join(pending) if len(pending) > 1 else data
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def csv_header(names: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(names)
    return buffer.getvalue().encode("utf-8")


def csv_line(*columns: Any, dialect: str = "", single_table: bool = False) -> Any:
    """A SQL expression for one CSV line of `columns`, built by the database.

    Text is always quoted (quotes doubled), numbers are bare, NULL is empty: a reader gets
    back exactly the stored text, commas, quotes and line breaks included. On a million rows
    this is several times faster than Python's csv writer over fetched tuples. On SQLite one
    printf() builds the line (its %w doubles the quotes), which costs the database about a
    quarter less than a chain of || that allocates a string per operator (bench/exports.py).
    `single_table` says the columns are read from their own table (no outer join), so that a
    column declared NOT NULL is never NULL: SQLite then quotes it in the line's one printf.
    """
    if dialect == "sqlite":
        return _sqlite_csv_line(columns, single_table)
    fields: list[Any] = []
    for column in columns:
        kind = column.type
        if isinstance(kind, Boolean):
            fields.append(func.coalesce(cast(cast(column, Integer), String), ""))
        elif isinstance(kind, Integer | Numeric):
            fields.append(func.coalesce(cast(column, String), ""))
        else:
            text = column if isinstance(kind, String) else cast(column, String)
            fields.append(func.coalesce('"' + func.replace(text, '"', '""') + '"', ""))
    line: Any = fields[0]
    for part in fields[1:]:
        line = line + "," + part
    return line


def _sqlite_csv_line(columns: Sequence[Any], single_table: bool) -> Any:
    # A text column that cannot hold NULL is quoted by the one printf itself ("%w" doubles the
    # quotes): half the cost of a printf per field. Anything that may be NULL goes through its own
    # printf, because printf's %s prints NULL as nothing, whereas "%w" would print "(NULL)" and a
    # quoted NULL would read as "" (an empty text).
    pattern: list[str] = []
    arguments: list[Any] = []
    for column in columns:
        kind = column.type
        if isinstance(kind, Boolean):
            pattern.append("%s")
            arguments.append(cast(column, Integer))
        elif isinstance(kind, Integer | Numeric):
            pattern.append("%s")
            arguments.append(column)
        elif single_table and isinstance(column, Column) and not column.nullable:
            pattern.append('"%w"')
            arguments.append(column)
        else:
            text = column if isinstance(kind, String) else cast(column, String)
            pattern.append("%s")
            arguments.append(func.iif(text.is_(None), "", func.printf('"%w"', text)))
    return func.printf(",".join(pattern), *arguments)


def utc_text(column: Any, dialect: str) -> Any:
    """A UTC time column as 2026-03-01T14:30:00.123456Z, formatted by the database."""
    if dialect == "sqlite":
        # Stored as UTC text "2026-03-01 14:30:00.123456" (core.models.types.UtcDateTime).
        return func.replace(cast(column, String), " ", "T") + "Z"
    return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


def json_line(pairs: dict[str, Any], dialect: str) -> Any:
    """A SQL expression for one JSON object (keys in the given order), built by the database."""
    args = [arg for key, value in pairs.items() for arg in (literal(key), value)]
    if dialect == "sqlite":
        return func.json_object(*args)
    # As text: the driver would otherwise parse each object into a dict.
    return cast(func.json_build_object(*args), Text)


def table_export(
    session: Session,
    *,
    columns: dict[str, Any],
    source: Any,
    where: Sequence[Any],
    order_by: Sequence[Any],
    fmt: str,
    file_name: str,
    check: Callable[[], None],
) -> Export:
    """An export of `columns` (name -> SQL expression) from `source` (a table or join),
    every row `where` selects in `order_by`, as CSV or JSON Lines built by the database.

    `check` runs again when the export starts (the caller's permission check).
    """
    check_format(fmt)
    engine = session.get_bind()
    header = list(columns)

    def produce(export: Export) -> Iterator[bytes]:
        check()
        with Session(engine) as reading:
            dialect = engine.dialect.name
            if fmt == "csv":
                line = csv_line(*columns.values(), dialect=dialect)
                yield csv_header(header)
            else:
                line = json_line(columns, dialect)
            query = select(line).select_from(source).where(*where).order_by(*order_by)
            yield from line_chunks(export, text_batches(reading, query))

    return Export(file_name=file_name, mime=MIME[fmt], produce=produce)


def text_batches(session: Session, query: Any) -> Iterator[list[str]]:
    """The first column of `query`'s rows, in lists of BATCH_ROWS, read as the statement runs
    (a server-side cursor on PostgreSQL; SQLite steps lazily)."""
    result = session.connection().execute(query, execution_options={"stream_results": True})
    try:
        while rows := result.fetchmany(BATCH_ROWS):
            yield [row[0] for row in rows]
    finally:
        result.close()


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def write_file(export: Export, path: str | Path, *, progress: Callable[[Export], None] | None = None) -> int:
    """Write the export to `path` (atomically: a partial file never has the final name); returns its rows."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "wb") as out:
            _copy(export, out, progress)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return export.rows


def write_stream(export: Export, out: BinaryIO, *, progress: Callable[[Export], None] | None = None) -> int:
    """Write the export to a binary stream (standard output); returns its rows."""
    _copy(export, out, progress)
    out.flush()
    return export.rows


def _copy(export: Export, out: BinaryIO, progress: Callable[[Export], None] | None) -> None:
    for chunk in export.chunks():
        out.write(chunk)
        if progress is not None:
            progress(export)


class TerminalProgress:
    """Progress ("12,345 of 1,000,000 rows…") on standard error, a few times a second, only on a terminal."""

    def __init__(self, noun: str = "rows", stream: TextIO | None = None) -> None:
        self.noun, self.stream, self.last = noun, stream or sys.stderr, 0.0
        self.shown = False

    def __call__(self, export: Export) -> None:
        now = time.monotonic()
        if not self.stream.isatty() or now - self.last < 0.25:
            return
        self.last, self.shown = now, True
        of = f" of {export.total:,}" if export.total is not None else ""
        self.stream.write(f"\r{export.rows:,}{of} {self.noun}…")
        self.stream.flush()

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


# ---- download links for the pages -------------------------------------------------------------


@dataclass
class _Link:
    owner: str
    expires: float
    export: Export


_links: dict[str, _Link] = {}
_lock = threading.Lock()


def download_link(export: Export, *, owner: str) -> str:
    """A path (`/exports/<token>`) that streams `export` when followed, for LINK_SECONDS.

    `owner` is the actor's ref, for the record; `export` was prepared by a function that
    checked the actor's permission, and checks it again when it runs.
    """
    token = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _lock:
        for stale in [t for t, link in _links.items() if link.expires < now]:
            del _links[stale]
        # Pages make their links on every run: keep a person's newest few, not every run's.
        theirs = [t for t, link in _links.items() if link.owner == owner]
        for oldest in theirs[: max(0, len(theirs) - LINKS_PER_OWNER + 1)]:
            del _links[oldest]
        _links[token] = _Link(owner=owner, expires=now + LINK_SECONDS, export=export)
    return f"/exports/{token}"


def claim(token: str) -> Export:
    """A fresh run of the export a download link names; NotFound when unknown or expired."""
    with _lock:
        link = _links.get(token)
        if link is not None and link.expires < time.monotonic():
            del _links[token]
            link = None
    if link is None:
        raise NotFound("This download link has expired or is unknown: go back to the page and download again")
    return replace(link.export, rows=0)
