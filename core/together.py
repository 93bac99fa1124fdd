"""Prebuilt statements that run as one on PostgreSQL: fewer round trips for a settled batch.

A settled batch's write-back is some twenty statements in one transaction. Each costs a
round trip and, in the gateway process, about as much of psycopg's and the server's own
work per statement as the row it writes; and the statements after the first update of a
row every batch updates (a roll-up row, the audit head) run while that row is locked, so
every other process's batch waits for them. `run_together(connection, parts)` sends
several prebuilt statements as one on PostgreSQL: every part but the last becomes a
data-modifying `WITH` query of the last (`WITH q0 AS (INSERT ...) UPDATE ...`), which
returns the last part's rows or row count. Elsewhere (SQLite) the parts run one after the
other, as they would without it.

In one statement every part sees the same snapshot, and PostgreSQL runs the parts in an
order of its own. So parts are put together only where that cannot matter: no part reads
or updates a row another part writes, and no part takes a lock that another transaction
may take in another order (rows this transaction already locked are fine: an UPDATE of the
audit head it advanced, of the roll-up rows its upserts returned; a new row nobody else
knows of, an insert keyed by this call's own request id). Two upserts of rows every batch
updates stay apart: in one statement, two processes' batches could lock them in
opposite orders and deadlock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Connection

from core.prebuilt import Prebuilt, Statement, run_statement

Part = tuple[Prebuilt, Mapping[str, Any] | Sequence[Mapping[str, Any]]]

_PLACEHOLDER = re.compile(r"\$(\d+)")


def run_together(connection: Connection, parts: Sequence[Part], *, fetch: bool = False) -> Any:
    """Run `parts` (each a prebuilt statement and its row or rows) in order, as one statement
    where the database allows it (a part that has a WITH of its own, or an executemany,
    runs alone); the last part's rows (`fetch`) or row count. A part with no
    rows is left out; with no part left, returns [] (`fetch`) or 0. See the module's story
    for which statements may go together."""
    statements = [s for s in (prebuilt.statement(connection, rows) for prebuilt, rows in parts) if s is not None]
    if not statements:
        return [] if fetch else 0
    if len(statements) == 1 or not all(s.one_statement and not s.sql.startswith("WITH") for s in statements):
        found: Any = 0
        for position, statement in enumerate(statements):
            found = run_statement(connection, statement, fetch=fetch and position == len(statements) - 1)
        return found
    values = [s.parameters[0] if s.many else s.sent for s in statements]
    sql = _combined_sql(tuple(s.sql for s in statements), tuple(len(v) for v in values))
    combined = Statement(sql, tuple(v for part in values for v in part), False, [], statements[0].raw_cursor)
    return run_statement(connection, combined, fetch=fetch)


@lru_cache(maxsize=512)
def _combined_sql(sqls: tuple[str, ...], widths: tuple[int, ...]) -> str:
    """`WITH q0 AS (first), q1 AS (second) last`, each part's `$n` moved past the parts before it."""
    offset, renumbered = 0, []
    for sql, width in zip(sqls, widths, strict=True):
        renumbered.append(_shifted(sql, offset))
        offset += width
    *first, last = renumbered
    ctes = ", ".join(f"q{i} AS ({sql})" for i, sql in enumerate(first))
    return f"WITH {ctes} {last}"


def _shifted(sql: str, offset: int) -> str:
    def moved(found: re.Match[str]) -> str:
        return f"${int(found.group(1)) + offset}"

    return _PLACEHOLDER.sub(moved, sql)
