"""Daily roll-ups of the gateway call log: the hourly ones summed per UTC day, team, prompt
and model (core/models/rollups.py says why).

They are written wherever the hourly call roll-ups are (`rollups.py`: the settle's batched
write-back, the seeds, a rebuild, a retention run's rebuilt hours), from the same groups
folded by day, in the same transaction: a day's row always equals the sum of its hours.
A rebuild recomputes the days from the hourly roll-ups (already summed, so it is quick).
Each row's latency histogram is packed into it (`latency_histogram.py`); a write adds to it
after the counts' upsert has locked the row, so concurrent settles never lose a count.

The hourly groups come in `rollups.py`'s shapes: (hour, team, key, actor, prompt, version,
model) with sums in CALL_SUMS order, and (hour, team, prompt, version, model, bucket) with
the answered calls. This module does not import `rollups.py` (which imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from core.budgets import latency_histogram
from core.models.rollups import CallDailyRollup, CallLatencyRollup, CallRollup

DAILY = CallDailyRollup.__table__
_HOURLY = CallRollup.__table__
_HOURLY_LATENCY = CallLatencyRollup.__table__

DAILY_KEYS = ("day", "team_id", "prompt_name", "model")
DAILY_SUMS = ("calls", "ok", "errors", "rejected_429", "blocked", "held", "cache_hits", "cost_micro")
# Where each of DAILY_SUMS sits in an hourly group's sums (rollups.CALL_SUMS).
_FROM_HOURLY = (0, 1, 2, 3, 4, 5, 6, 9)
# A rebuild reads the hourly roll-ups this many days at a time (memory stays bounded).
_REBUILD_STEP = timedelta(days=31)
# Rows whose histograms are read back per statement (SQLite allows 32,766 parameters).
_READ_CHUNK = 500


def day_of(instant: datetime) -> datetime:
    """Midnight UTC of the day an instant falls in."""
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def fold(
    hourly: Mapping[tuple, Sequence], latencies: Mapping[tuple, Sequence[int]]
) -> tuple[dict[tuple, list[int]], dict[tuple, dict[int, int]]]:
    """Hourly call groups summed per day, team, prompt and model, and their latency buckets
    as a {bucket: answered calls} histogram per day group."""
    days: dict[tuple, list[int]] = {}
    for (hour, team_id, _key, _actor, prompt, _version, model), sums in hourly.items():
        key = (day_of(hour), team_id, prompt, model)
        into = days.get(key)
        if into is None:
            into = days[key] = [0] * len(DAILY_SUMS)
        for position, source in enumerate(_FROM_HOURLY):
            into[position] += int(sums[source])
    histograms: dict[tuple, dict[int, int]] = {}
    for (hour, team_id, prompt, _version, model, bucket), (calls, *_rest) in latencies.items():
        histogram = histograms.setdefault((day_of(hour), team_id, prompt, model), {})
        histogram[bucket] = histogram.get(bucket, 0) + int(calls)
    return days, histograms


def add(
    connection: Connection, days: Mapping[tuple, Sequence[int]], histograms: Mapping[tuple, Mapping[int, int]]
) -> None:
    """Add folded groups to the daily roll-ups: one upsert per group, in key order (so two
    batches on PostgreSQL lock the rows in the same order and never deadlock), then each
    group's histogram merged into its row. The upsert holds the row's lock until the
    transaction ends, so the histogram read after it is the latest and no one else's
    write can slip in between the read and the update. Every histogram's group is among
    `days` (a latency bucket counts answered calls, which the counts hold too)."""
    _upsert(connection, DAILY, DAILY_KEYS, DAILY_SUMS, days)
    wanted = sorted(key for key, histogram in histograms.items() if any(histogram.values()))
    if not wanted:
        return
    keys = tuple_(*(DAILY.c[k] for k in DAILY_KEYS))
    held: dict[tuple, bytes] = {}
    for start in range(0, len(wanted), _READ_CHUNK):
        chunk = wanted[start : start + _READ_CHUNK]
        rows = connection.execute(
            select(*(DAILY.c[k] for k in DAILY_KEYS), DAILY.c.latency_histogram).where(keys.in_(chunk))
        )
        held.update({(day_of(day), *rest): packed for day, *rest, packed in rows})
    connection.execute(
        _HISTOGRAM_UPDATE,
        [
            {
                **{f"k_{k}": v for k, v in zip(DAILY_KEYS, key, strict=True)},
                "packed": latency_histogram.merged(held.get(key), histograms[key]),
            }
            for key in wanted
        ],
    )


_HISTOGRAM_UPDATE = (
    update(DAILY)
    .where(*(DAILY.c[k] == bindparam(f"k_{k}") for k in DAILY_KEYS))
    .values(latency_histogram=bindparam("packed"))
)


def rebuild_days(connection: Connection, *, since: datetime | None = None, days: Iterable[datetime] = ()) -> None:
    """Recompute the daily roll-ups from the hourly ones: every day from the day of `since`
    on (everything when `since` and `days` are both empty), or only the given days. The
    caller has already rebuilt the hours and holds the roll-up lock."""
    wanted = sorted({day_of(d) for d in days})
    if wanted:
        spans = [(day, day + timedelta(days=1)) for day in wanted]
    else:
        first = connection.execute(select(func.min(_HOURLY.c.hour))).scalar()
        start = day_of(since) if since is not None else None
        statement = delete(DAILY)
        if start is not None:
            statement = statement.where(DAILY.c.day >= start)
        connection.execute(statement)
        if first is None:
            return
        cursor = max(start, day_of(first)) if start is not None else day_of(first)
        last = connection.execute(select(func.max(_HOURLY.c.hour))).scalar()
        spans = []
        while cursor <= last:
            spans.append((cursor, cursor + _REBUILD_STEP))
            cursor += _REBUILD_STEP
    for start, end in spans:
        if wanted:
            connection.execute(delete(DAILY).where(DAILY.c.day >= start, DAILY.c.day < end))
        add(connection, *_summed_hours(connection, start, end))


def _summed_hours(connection: Connection, start: datetime, end: datetime) -> tuple[dict, dict]:
    """The hourly roll-ups of [start, end) summed by the database per hour, team, prompt and
    model, then folded by day here (the day of an hour is computed the same way everywhere)."""
    sums = [func.sum(_HOURLY.c[name]) for name in DAILY_SUMS]
    calls = connection.execute(
        select(_HOURLY.c.hour, _HOURLY.c.team_id, _HOURLY.c.prompt_name, _HOURLY.c.model, *sums)
        .where(_HOURLY.c.hour >= start, _HOURLY.c.hour < end)
        .group_by(_HOURLY.c.hour, _HOURLY.c.team_id, _HOURLY.c.prompt_name, _HOURLY.c.model)
    )
    days: dict[tuple, list[int]] = {}
    for hour, team_id, prompt, model, *values in calls:
        into = days.setdefault((day_of(hour), team_id, prompt, model), [0] * len(DAILY_SUMS))
        for position, value in enumerate(values):
            into[position] += int(value or 0)
    latency = _HOURLY_LATENCY.c
    grouping = (latency.hour, latency.team_id, latency.prompt_name, latency.model, latency.bucket)
    histograms: dict[tuple, dict[int, int]] = {}
    rows = connection.execute(
        select(*grouping, func.sum(latency.calls)).where(latency.hour >= start, latency.hour < end).group_by(*grouping)
    )
    for hour, team_id, prompt, model, bucket, n in rows:
        histogram = histograms.setdefault((day_of(hour), team_id, prompt, model), {})
        histogram[bucket] = histogram.get(bucket, 0) + int(n or 0)
    return days, histograms


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _upsert(
    connection: Connection, table: Table, keys: Sequence[str], sums: Sequence[str], groups: Mapping[tuple, Sequence]
) -> None:
    if not groups:
        return
    dialect = connection.dialect.name
    statement = _STATEMENTS.get((dialect, table.name))
    if statement is None:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        statement = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: table.c[name] + insert.excluded[name] for name in sums},
        )
        _STATEMENTS[(dialect, table.name)] = statement
    parameters = [
        {**dict(zip(keys, key, strict=True)), **dict(zip(sums, values, strict=True))}
        for key, values in sorted(groups.items())
    ]
    connection.execute(statement, parameters)
