"""Exports of a filtered audit log as CSV or JSON Lines, for auditors and SIEMs.

Each record carries its `event_id` (a receiver de-duplicates on it), its `seq` and both
hashes (a receiver can re-check the chain), and UTC times in ISO 8601 with a `Z`.
Actors stay ids (person:12): an export never carries names or e-mails. `before` and
`after` are the stored canonical JSON (in CSV as text, in JSON Lines as values).

An export streams (core.exports): one query, oldest first, read in batches while the
bytes are written, so memory stays flat whatever the size. The database formats the time
and, on SQLite, builds each JSON line itself; Python only joins the batches.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC
from typing import IO

from sqlalchemy import Text, case, func, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from core import clock, db
from core.audit.query import AuditFilter, EventRow, conditions, iter_filtered, resolve_actor
from core.exports import (
    BATCH_ROWS,
    FORMATS,
    MIME,
    Export,
    check_format,
    csv_chunks,
    csv_header,
    csv_line,
    json_line,
    line_chunks,
    text_batches,
    utc_text,
    write_stream,
)
from core.models.audit import AuditEvent
from core.permissions import Actor, Permission, require

__all__ = ["FIELDS", "FORMATS", "MIME", "export", "export_bytes", "file_name", "parse", "prepare", "record_of"]

FIELDS = (
    "seq",
    "event_id",
    "occurred_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "team_id",
    "before",
    "after",
    "prev_hash",
    "hash",
)
_T = AuditEvent.__table__.c


def time_of(row: EventRow) -> str:
    return row.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(row: EventRow) -> dict:
    """An event as an export record (what `parse` gives back for it)."""
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "occurred_at": time_of(row),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "team_id": row.team_id,
        "before": row.before,
        "after": row.after,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _time_text(dialect: str):
    return utc_text(_T.occurred_at, dialect) if dialect in ("sqlite", "postgresql") else None


def _sqlite_json_line():
    """One event as a JSON object, keys sorted, built by SQLite (a tampered, non-JSON
    `before`/`after` is exported as a string, as the page shows it)."""

    def raw_json(column):
        return case((func.json_valid(column), func.json(column)), else_=column)

    pairs = {
        "action": _T.action,
        "actor": _T.actor,
        "after": raw_json(_T.after_json),
        "before": raw_json(_T.before_json),
        "event_id": _T.event_id,
        "hash": _T.hash,
        "occurred_at": _time_text("sqlite"),
        "prev_hash": _T.prev_hash,
        "seq": _T.seq,
        "target_id": _T.target_id,
        "target_type": _T.target_type,
        "team_id": _T.team_id,
    }
    return json_line(pairs, "sqlite")


def prepare(*, session: Session, actor: Actor, filters: AuditFilter, fmt: str) -> Export:
    """The export of exactly the events `filters` selects, oldest first, ready to stream.

    Checks the permission and the filters now (a bad filter is refused before any byte is
    written); the stream reads in a session of its own on the same database, and checks the
    permission again when it starts.
    """
    require(actor, Permission.AUDIT_READ)
    check_format(fmt)
    # An unknown person is refused now; the rest of the WHERE clause is built when the export runs
    # (the page makes its links on every run, and a time window's seq range costs a query).
    resolve_actor(session, filters.actor)
    engine = session.get_bind()

    def produce(export: Export) -> Iterator[bytes]:
        require(actor, Permission.AUDIT_READ)
        with db.session(engine) as reading:
            yield from _chunks(reading, export, filters, fmt)

    return Export(file_name=file_name(fmt), mime=MIME[fmt], produce=produce)


def _chunks(session: Session, export: Export, filters: AuditFilter, fmt: str) -> Iterator[bytes]:
    dialect = session.get_bind().dialect.name
    where = conditions(session, filters)
    if fmt == "jsonl" and dialect == "sqlite":
        query = select(_sqlite_json_line()).where(*where).order_by(_T.seq)
        yield from line_chunks(export, text_batches(session, query))
        return
    when = _time_text(dialect)
    if fmt == "csv" and when is not None:
        yield csv_header(FIELDS)
        columns = (_T.seq, _T.event_id, when, *(_T[name] for name in FIELDS[3:8]), _T.before_json, _T.after_json)
        query = (
            select(csv_line(*columns, _T.prev_hash, _T.hash, dialect=dialect, single_table=True))
            .where(*where)
            .order_by(_T.seq)
        )
        yield from line_chunks(export, text_batches(session, query))
        return
    if fmt == "jsonl" and dialect == "postgresql":
        yield from line_chunks(export, _postgres_json_batches(session, where))
        return
    # Any other database: Python builds each record from the stored text.
    rows = iter_filtered(session, actor=Actor.system("export"), filters=filters, batch=BATCH_ROWS)
    if fmt == "csv":
        batches = ([_csv_row(record_of(row)) for row in batch] for batch in _batched(rows))
        yield from csv_chunks(export, FIELDS, batches)
    else:
        batches = (
            [json.dumps(record_of(row), sort_keys=True, ensure_ascii=False) for row in batch]
            for batch in _batched(rows)
        )
        yield from line_chunks(export, batches)


def _postgres_json_batches(session: Session, where: list) -> Iterator[list[str]]:
    """JSON lines built by PostgreSQL, streamed from one statement in batches of BATCH_ROWS.

    `before`/`after` are cast to json, which fails on text that is not JSON (a tampered row):
    the statement then stops there, and the rest is read in keyset batches, each on its own
    (`_postgres_json_pages`), so that only the batches holding such a row are built in Python.
    """
    query = select(_POSTGRES_JSON_LINE).select_from(AuditEvent.__table__).where(*where).order_by(_T.seq)
    after = None
    batches = text_batches(session, query)
    try:
        with session.begin_nested():
            try:
                for lines in batches:
                    yield lines
                    # The last line's seq read back from its text: one parse per batch rather than a column per row.
                    after = json.loads(lines[-1])["seq"]
            finally:
                batches.close()  # the cursor closes before its savepoint ends, also when the reader stops early
        return
    except DBAPIError:
        pass
    yield from _postgres_json_pages(session, where, after)


def _json_field(key: str, value: str) -> str:
    return f"""', "{key}" : ' || {value}"""


def _json_text(column: str) -> str:
    return f"CAST(to_json(audit_event.{column}) AS TEXT)"


def _json_value(column: str) -> str:
    return f"coalesce(CAST(CAST(audit_event.{column} AS JSON) AS TEXT), 'null')"


# One line per event, keys sorted, in the very form json_build_object() writes (`{"k" : v, ...}`),
# built with || instead: json_build_object() costs PostgreSQL about half as much again
# (bench/exports.py). to_json() quotes and escapes text as json_build_object() does; the time
# is quoted bare because to_char() with this pattern writes only digits, '-', ':', '.', 'T' and 'Z'.
_POSTGRES_JSON_LINE = literal_column(
    f"""'{{"action" : ' || {_json_text("action")} || """
    + " || ".join(
        (
            _json_field("actor", _json_text("actor")),
            _json_field("after", _json_value("after_json")),
            _json_field("before", _json_value("before_json")),
            _json_field("event_id", _json_text("event_id")),
            _json_field("hash", _json_text("hash")),
            _json_field(
                "occurred_at",
                """'"' || to_char(timezone('UTC', audit_event.occurred_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'""",
            ),
            _json_field("prev_hash", _json_text("prev_hash")),
            _json_field("seq", "CAST(audit_event.seq AS TEXT)"),
            _json_field("target_id", _json_text("target_id")),
            _json_field("target_type", _json_text("target_type")),
            _json_field("team_id", "coalesce(CAST(audit_event.team_id AS TEXT), 'null')"),
        )
    )
    + " || '}'",
    Text,
)


def _postgres_json_pages(session: Session, where: list, after: int | None) -> Iterator[list[str]]:
    """JSON lines after seq `after` (from the start when None), in keyset batches of BATCH_ROWS.

    Each batch runs in a savepoint of its own: one holding a `before`/`after` that is not JSON
    (the cast fails) is built in Python, where such text becomes a string.
    """
    fast = select(_POSTGRES_JSON_LINE, _T.seq).select_from(AuditEvent.__table__)
    slow = select(*(_T[name] for name in _STORED), _T.seq)
    while True:
        page = [*where, _T.seq > after] if after is not None else where
        try:
            with session.begin_nested():
                rows = session.execute(fast.where(*page).order_by(_T.seq).limit(BATCH_ROWS)).all()
            lines = [row[0] for row in rows]
        except DBAPIError:
            rows = session.execute(slow.where(*page).order_by(_T.seq).limit(BATCH_ROWS)).all()
            lines = [json.dumps(_stored_record(row), sort_keys=True, ensure_ascii=False) for row in rows]
        yield lines
        if len(rows) < BATCH_ROWS:
            return
        after = rows[-1][-1]


_STORED = (*FIELDS[:8], "before_json", "after_json", "prev_hash", "hash")


def _stored_record(row) -> dict:
    """An export record from a row of the _STORED columns (payloads that are not JSON stay text)."""
    record = dict(zip(FIELDS, row, strict=False))
    record["occurred_at"] = record["occurred_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for key in ("before", "after"):
        if record[key] is not None:
            try:
                record[key] = json.loads(record[key])
            except ValueError:
                pass  # a tampered payload is exported as the text stored; verify names it
    return record


def _batched(rows: Iterator[EventRow]) -> Iterator[list[EventRow]]:
    batch: list[EventRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _csv_row(record: dict) -> list:
    for key in ("before", "after"):
        value = record[key]
        record[key] = (
            "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        )
    return [record[name] for name in FIELDS]


def export(*, session: Session, actor: Actor, filters: AuditFilter, fmt: str, out: IO) -> int:
    """Write the export to `out` (a text or binary stream); returns how many events it holds."""
    prepared = prepare(session=session, actor=actor, filters=filters, fmt=fmt)
    if isinstance(out, io.TextIOBase) and getattr(out, "buffer", None) is None:
        for chunk in prepared.chunks():
            out.write(chunk.decode("utf-8"))
        return prepared.rows
    if isinstance(out, io.TextIOBase):
        out.flush()
        out = out.buffer  # type: ignore[attr-defined]
    write_stream(prepared, out)
    return prepared.rows


def export_bytes(*, session: Session, actor: Actor, filters: AuditFilter, fmt: str) -> bytes:
    """The whole export as bytes: for small exports and tests (the pages stream instead)."""
    prepared = prepare(session=session, actor=actor, filters=filters, fmt=fmt)
    return b"".join(prepared.chunks())


def file_name(fmt: str) -> str:
    return f"audit-{clock.now():%Y%m%dT%H%M%SZ}.{fmt}"


def parse(lines, fmt: str) -> list[dict]:
    """Read an export back (tests, and a receiver's sanity check)."""
    if fmt == "csv":
        return list(csv.DictReader(lines))
    return [json.loads(line) for line in lines if line.strip()]
