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
from itertools import accumulate
from typing import IO

SOUND, UNSOUND, REBUILD = "sound", "unsound", "rebuild"

_sha256 = hashlib.sha256
_hexdigest = type(_sha256()).hexdigest


def check_groups(
    cursor, query: str, first: int, last: int, group: int, checkpoints: dict[int, str]
) -> tuple[str, bytes | None, bytes | None]:
    """(verdict, first link, last hash) of events first..last, read GROUP events per row by `query`.

    `query` takes (start, end) and returns seqs (comma-separated text), hashes and links
    (concatenated, as bytes), each canonical form's length (comma-separated), the forms
    (concatenated), whether a row must be rebuilt in Python, and how many hashes or links are not
    64 bytes long. Every hash and link being 64 bytes, equal concatenations mean equal values
    event by event; the seqs must read first, first+1... in the order of the other columns.
    `checkpoints` maps a signed seq to its head hash.
    """
    first_link: bytes | None = None
    prev_hash: bytes | None = None
    for start in range(first, last + 1, group):
        end = min(start + group - 1, last)
        try:
            seqs, hashes, links, lengths, payloads, flagged, odd = cursor.execute(query, (start, end)).fetchone()
        except sqlite3.OperationalError:  # text that is not UTF-8 in a seq: the serial walk reads leniently
            return UNSOUND, None, None
        if flagged:
            return REBUILD, None, None
        if odd or seqs != ",".join(map(str, range(start, end + 1))):
            return UNSOUND, None, None
        stops = list(accumulate(map(int, lengths.split(","))))
        view = memoryview(payloads)
        parts = map(view.__getitem__, map(slice, [0, *stops[:-1]], stops))
        if "".join(map(_hexdigest, map(_sha256, parts))).encode() != hashes:
            return UNSOUND, None, None
        if links[64:] != hashes[:-64] or (prev_hash is not None and links[:64] != prev_hash):
            return UNSOUND, None, None
        for seq, head_hash in checkpoints.items():
            if start <= seq <= end and hashes[(seq - start) * 64 : (seq - start + 1) * 64] != head_hash.encode():
                return UNSOUND, None, None
        if first_link is None:
            first_link = bytes(links[:64])
        prev_hash = bytes(hashes[-64:])
    return SOUND, first_link, prev_hash


def check_file_range(
    path: str, query: str, first: int, last: int, group: int, checkpoints: dict[int, str]
) -> tuple[str, str | None, str | None]:
    """`check_groups` on a connection of its own to the SQLite file at `path`, in one read snapshot.

    Runs in a worker process: the hashes come back as text, ready to join with the other ranges.
    """
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA query_only = 1")
        connection.execute("BEGIN")
        verdict, first_link, last_hash = check_groups(connection.cursor(), query, first, last, group, checkpoints)
        connection.execute("ROLLBACK")
    finally:
        connection.close()
    if verdict != SOUND or first_link is None or last_hash is None:
        return verdict, None, None
    return verdict, first_link.decode(), last_hash.decode()


def serve(requests: IO[str], replies: IO[str]) -> None:
    """Answer range checks, one JSON line in, one out, until the input ends (a worker process's loop).

    A request is [path, query, first, last, group, {seq: head hash}]; a reply is
    [verdict, first link, last hash] or ["error", what went wrong].
    """
    for line in requests:
        try:
            path, query, first, last, group, checkpoints = json.loads(line)
            reply = list(check_file_range(path, query, first, last, group, {int(k): v for k, v in checkpoints.items()}))
        except Exception as error:  # reported to the caller, which leaves the verdict to the serial walk
            reply = ["error", f"{type(error).__name__}: {error}"]
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
