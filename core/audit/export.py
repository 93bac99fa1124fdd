"""Exports of a filtered audit log as CSV or JSON Lines, for auditors and SIEMs.

Each record carries its `event_id` (a receiver de-duplicates on it), its `seq` and both
hashes (a receiver can re-check the chain), and UTC times in ISO 8601 with a `Z`.
Actors stay ids (person:12): an export never carries names or e-mails.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import TextIO

from sqlmodel import Session

from core.audit.query import AuditFilter, EventRow, iter_filtered
from core.errors import ValidationError
from core.permissions import Actor

FORMATS = ("csv", "jsonl")
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
MIME = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


def utc_text(row: EventRow) -> str:
    return row.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(row: EventRow) -> dict:
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "occurred_at": utc_text(row),
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


def write(rows: Iterable[EventRow], out: TextIO, fmt: str) -> int:
    """Write `rows` to `out` in `fmt`; returns how many were written."""
    if fmt not in FORMATS:
        raise ValidationError(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            record = record_of(row)
            for key in ("before", "after"):
                record[key] = "" if record[key] is None else json.dumps(record[key], sort_keys=True, ensure_ascii=False)
            writer.writerow(record)
            count += 1
    else:
        for row in rows:
            out.write(json.dumps(record_of(row), sort_keys=True, ensure_ascii=False) + "\n")
            count += 1
    return count


def export(*, session: Session, actor: Actor, filters: AuditFilter, fmt: str, out: TextIO) -> int:
    """Exactly the events `filters` selects, oldest first, to `out`."""
    if fmt not in FORMATS:
        raise ValidationError(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    return write(iter_filtered(session, actor=actor, filters=filters), out, fmt)


def export_bytes(*, session: Session, actor: Actor, filters: AuditFilter, fmt: str) -> bytes:
    """The export as UTF-8 bytes (the page's download button)."""
    buffer = io.StringIO()
    export(session=session, actor=actor, filters=filters, fmt=fmt, out=buffer)
    return buffer.getvalue().encode("utf-8")


def file_name(fmt: str) -> str:
    from core import clock

    return f"audit-{clock.now():%Y%m%dT%H%M%SZ}.{fmt}"


def parse(lines: Iterator[str], fmt: str) -> list[dict]:
    """Read an export back (tests, and a receiver's sanity check)."""
    if fmt == "csv":
        return list(csv.DictReader(lines))
    return [json.loads(line) for line in lines if line.strip()]
