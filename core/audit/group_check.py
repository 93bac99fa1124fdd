"""The vectorized range check of an SQLite audit chain, and the process that runs it.

SQLite builds every event's canonical form in C and hands over GROUP events per row,
concatenated (see `core.audit.ranges`); Python hashes each form and compares the
concatenations whole. This module imports only the standard library, so that the worker
processes which run it start in a fraction of the time the whole core would take: a range of a
SQLite file is checked in a process of its own because in threads the Python half of the work
(hashing forms of a few hundred bytes, which does not release the GIL) and SQLite's global
memory statistics take turns instead of running side by side.

Verdicts: SOUND (with the first event's link and the last event's hash), UNSOUND, or REBUILD
when a row needs its canonical form built in Python (text holding a NUL); the caller then checks
the range row by row, or leaves it to the serial walk.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from binascii import hexlify
from typing import IO

SOUND, UNSOUND, REBUILD = "sound", "unsound", "rebuild"

# The widths the fast query writes into the format instead of measuring them (core.audit.ranges);
# prev_hash's is proven by the links, which must equal 64-character hashes.
WIDTHS = {"event_id": 36, "occurred_at": 26, "prev_hash": 64}

_sha256 = hashlib.sha256
_digest = type(_sha256()).digest


def check_groups(
    cursor, queries: tuple[str, str], first: int, last: int, group: int, checkpoints: dict[int, str]
) -> tuple[str, bytes | None, bytes | None]:
    """(verdict, first link, last hash) of events first..last, read GROUP events per row.

    `queries` (fast, general) take (start, end) and return seqs (comma-separated text); hashes
    and links (comma-separated, a NULL as nothing); the canonical forms separated by NUL bytes;
    then the event ids and times as stored (comma-separated), whether a hash or link is stored
    as something other than text (bytes, a number: REBUILD, so that it is judged as the serial
    walk judges it), and each other hashed column as stored (run together, NULLs left out). The
    fast query writes WIDTHS into the forms; the general one, run when an event id or time is not
    of its width, measures every value.

    printf() stops at a NUL, so no form holds one and the NUL separators cut the forms apart;
    text holding a NUL is found in the stored columns instead (REBUILD). Hashes and links are
    compared whole, commas included: equal texts holding exactly one comma between events mean
    equal values event by event. The seqs must read first, first+1... in the order of the other
    columns. `checkpoints` maps a signed seq to its head hash.
    """
    fast, general = queries
    first_link: bytes | None = None
    prev_hash: bytes | None = None
    for start in range(first, last + 1, group):
        end = min(start + group - 1, last)
        count = end - start + 1
        try:
            seqs, hashes, links, forms, event_ids, times, untyped, *stored = cursor.execute(
                fast, (start, end)
            ).fetchone()
            if seqs != ",".join(map(str, range(start, end + 1))):
                return UNSOUND, None, None
            if untyped or any(b"\0" in column for column in (event_ids, times, *stored) if column is not None):
                return REBUILD, None, None
            if not (_of_width(event_ids, WIDTHS["event_id"], count) and _of_width(times, WIDTHS["occurred_at"], count)):
                forms = cursor.execute(general, (start, end)).fetchone()[3]
        except sqlite3.OperationalError:  # text that is not UTF-8 in a seq: the serial walk reads leniently
            return UNSOUND, None, None
        if hexlify(b"".join(map(_digest, map(_sha256, forms.split(b"\0")))), b",", 32) != hashes:
            return UNSOUND, None, None
        # Links: the first, then the hashes of all events but the last; one comma between each two.
        if (
            len(links) != len(hashes)
            or links.count(b",") != count - 1
            or links[64:65] not in (b",", b"")
            or links[65:] != hashes[:-65]
            or (prev_hash is not None and links[:64] != prev_hash)
        ):
            return UNSOUND, None, None
        for seq, head_hash in checkpoints.items():
            if start <= seq <= end and hashes[(seq - start) * 65 : (seq - start) * 65 + 64] != head_hash.encode():
                return UNSOUND, None, None
        if first_link is None:
            first_link = links[:64]
        prev_hash = hashes[-64:]
    return SOUND, first_link, prev_hash


def _of_width(values: bytes | None, width: int, count: int) -> bool:
    """Whether `values` (comma-separated) are `count` ASCII values of `width` characters each."""
    return (
        values is not None
        and len(values) == (width + 1) * count - 1
        and values.count(b",") == count - 1
        and values.isascii()
    )


def check_file_range(
    path: str, queries: tuple[str, str], first: int, last: int, group: int, checkpoints: dict[int, str]
) -> tuple[str, str | None, str | None]:
    """`check_groups` on a connection of its own to the SQLite file at `path`, in one read snapshot.

    Runs in a worker process: the hashes come back as text, ready to join with the other ranges.
    """
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA query_only = 1")
        connection.execute("BEGIN")
        verdict, first_link, last_hash = check_groups(connection.cursor(), queries, first, last, group, checkpoints)
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    if verdict != SOUND or first_link is None or last_hash is None:
        return verdict, None, None
    return verdict, first_link.decode(), last_hash.decode()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer range checks, one JSON line in, one out, until the input ends (a worker process's loop).

    A request is [path, [fast query, general query], first, last, group, {seq: head hash}]; a reply is
    [verdict, first link, last hash] or ["error", what went wrong].
    """
    for line in requests:
        try:
            path, queries, first, last, group, checkpoints = json.loads(line)
            marks = {int(k): v for k, v in checkpoints.items()}
            reply = list(check_file_range(path, tuple(queries), first, last, group, marks))
        except Exception as error:  # reported to the caller, which leaves the verdict to the serial walk
            reply = ["error", f"{type(error).__name__}: {error}"]
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
