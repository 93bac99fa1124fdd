"""Sums of the usage ledger over any time range, read from its hourly roll-ups.

Whole UTC hours come from `usage_rollup`. A range whose ends are not on the hour (a period
of a time zone whose offset is not a whole number of hours, such as Asia/Kolkata) has its
partial first and last hours summed by the database from the ledger itself: at most two
hours of rows, and never a row brought into Python. Either way the result is what the
ledger says, to the micro-dollar.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, literal, select

from core.budgets import pending_rollups, rollups
from core.budgets.rollups import LEDGER, USAGE, USAGE_SUMS, hour_of

DIMENSIONS = ("hour", "team_id", "person_id", "key_id", "prompt_id", "model")
HOUR = timedelta(hours=1)


def ceil_hour(instant: datetime) -> datetime:
    floor = hour_of(instant)
    return floor if floor == instant else floor + HOUR


def ledger_sums(
    connection: Connection,
    *,
    start: datetime,
    end: datetime,
    by: Sequence[str] = (),
    team_id: int | None = None,
) -> dict[tuple, dict[str, int]]:
    """`read_ledger_sums`, cached per (range, grouping, team) until the ledger changes.

    A new ledger row (a settle, in any process) raises the ledger's highest id, which every
    read checks first (one index probe), with whether any settled call waits for the roll-ups
    (a result read while one waited is read again once it is folded); a rebuild in this
    process starts afresh. What no probe sees (a retention run in another process, or on
    PostgreSQL a call committed out of its id order) shows after at most `CACHE_SECONDS`.
    The result is shared: do not change it.
    """
    probe = (*connection.execute(_PROBE).one(), rollups.generation())
    key = (start, end, tuple(by), team_id, connection.engine.url.render_as_string())
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == probe and now - hit[1] < CACHE_SECONDS:
            _cache.move_to_end(key)
            return hit[2]
    pending_rollups.catch_up(connection)
    result = _read(connection, start=start, end=end, by=by, team_id=team_id)
    with _lock:
        _cache[key] = (probe, now, result)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return result


CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
_cache: OrderedDict[tuple, tuple[Any, float, dict[tuple, dict[str, int]]]] = OrderedDict()
_lock = threading.Lock()
_PROBE = select(
    select(func.max(LEDGER.c.id)).scalar_subquery(),
    select(rollups.PENDING.c.request_id).limit(1).scalar_subquery(),
)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def read_ledger_sums(
    connection: Connection,
    *,
    start: datetime,
    end: datetime,
    by: Sequence[str] = (),
    team_id: int | None = None,
) -> dict[tuple, dict[str, int]]:
    """The ledger's rows in [start, end), summed per `by` (any of DIMENSIONS; a missing person,
    key or prompt is 0): {(values of by...): {"calls": n, "cost_micro": ..., ...}}. An "hour"
    is the start of what was summed: the hour, or the start of a partial hour at either end.
    Settled calls waiting for the roll-ups are folded first (pending_rollups.catch_up)."""
    pending_rollups.catch_up(connection)
    return _read(connection, start=start, end=end, by=by, team_id=team_id)


def _read(
    connection: Connection, *, start: datetime, end: datetime, by: Sequence[str], team_id: int | None
) -> dict[tuple, dict[str, int]]:
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"cannot sum the ledger by {unknown}")
    result: dict[tuple, dict[str, int]] = {}
    if start >= end:
        return result
    first, last = ceil_hour(start), hour_of(end)
    if first < last:
        where = [USAGE.c.hour >= first, USAGE.c.hour < last]
        if team_id is not None:
            where.append(USAGE.c.team_id == team_id)
        keys = [USAGE.c[d] for d in by]
        query = select(*keys, *(func.sum(USAGE.c[s]) for s in USAGE_SUMS)).where(*where).group_by(*keys)
        _merge(result, connection.execute(query), len(by))
        edges = [(start, first), (last, end)]
    else:
        edges = [(start, end)]
    for edge_start, edge_end in edges:
        if edge_start < edge_end:
            _merge(result, connection.execute(_edge_query(edge_start, edge_end, by, team_id)), len(by))
    return result


def _edge_query(start: datetime, end: datetime, by: Sequence[str], team_id: int | None):
    """The same sums straight from the ledger, for part of one hour."""
    columns = {
        # The span's own start, not its hour's: a span lies within one local day (periods
        # begin at local midnight), which the start names correctly, the hour may not.
        "hour": literal(start, USAGE.c.hour.type),
        "team_id": LEDGER.c.team_id,
        "person_id": func.coalesce(LEDGER.c.person_id, 0),
        "key_id": func.coalesce(LEDGER.c.key_id, 0),
        "prompt_id": func.coalesce(LEDGER.c.prompt_id, 0),
        "model": LEDGER.c.model,
    }
    keys = [columns[d].label(d) for d in by]
    sums = [
        func.count(),
        *(
            func.sum(LEDGER.c[s])
            for s in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_micro")
        ),
        func.sum(case((LEDGER.c.cache_hit, 1), else_=0)),
    ]
    where = [LEDGER.c.occurred_at >= start, LEDGER.c.occurred_at < end]
    if team_id is not None:
        where.append(LEDGER.c.team_id == team_id)
    query = select(*keys, *sums).where(*where)
    return query.group_by(*[columns[d] for d in by if d != "hour"]) if by else query


def _merge(result: dict[tuple, dict[str, int]], rows, width: int) -> None:
    for row in rows:
        if not row[width]:
            continue  # an empty range's SUM or COUNT without GROUP BY
        key = tuple(row[:width])
        sums = result.get(key)
        if sums is None:
            sums = result[key] = dict.fromkeys(USAGE_SUMS, 0)
        for name, value in zip(USAGE_SUMS, row[width:], strict=True):
            sums[name] += int(value or 0)
