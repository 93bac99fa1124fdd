"""Roll-ups of the gateway call log at Observability's grain: per UTC hour, per six UTC hours
and per UTC day, of team, prompt and model (core/models/rollups.py says why).

They are written wherever the hourly call roll-ups are (`rollups.py`: the settle's batched
write-back, the seeds, a rebuild, a retention run's rebuilt hours), from the same groups
folded by hour, six hours or day, in the same transaction: an hour's row always equals the
sum of its call_rollup rows, and six hours' or a day's the sum of their hours. A rebuild recomputes them all from the
hourly call roll-ups (already summed, so it is quick). Each row's latency histogram is
packed into it (`latency_histogram.py`); a write adds to it after the counts' upsert has
locked the row, so concurrent settles never lose a count.

The hourly groups come in `rollups.py`'s shapes: (hour, team, key, actor, prompt, version,
model) with sums in CALL_SUMS order, and (hour, team, prompt, version, model, bucket) with
the answered calls. This module does not import `rollups.py` (which imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Table, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from core.budgets import latency_histogram
from core.models.rollups import CallDailyRollup, CallHourlyRollup, CallLatencyRollup, CallRollup, CallSixHourRollup
from core.prebuilt import ROWS_PER_INSERT, Prebuilt
from core.together import Part, run_together

DAILY = CallDailyRollup.__table__
HOURLY = CallHourlyRollup.__table__
SIX_HOURLY = CallSixHourRollup.__table__
_HOURLY = CallRollup.__table__
_HOURLY_LATENCY = CallLatencyRollup.__table__

DAILY_KEYS = ("day", "team_id", "prompt_name", "model")
HOURLY_KEYS = ("hour", "team_id", "prompt_name", "model")
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


def hour_of(instant: datetime) -> datetime:
    """The UTC hour an instant falls in."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def six_hours_of(instant: datetime) -> datetime:
    """The first hour of the six UTC hours (from 00, 06, 12 or 18) an instant falls in."""
    hour = hour_of(instant)
    return hour.replace(hour=hour.hour - hour.hour % 6)


@dataclass(frozen=True)
class Grain:
    """A roll-up table of rows keyed by a time and some dimensions (team, prompt and model
    here; `version_rollups.py` has its own), the time its rows start at, and the sums the
    upsert adds (each row's packed `latency_histogram` besides)."""

    table: Table
    keys: tuple[str, ...]
    start_of: Callable[[datetime], datetime]
    sums: tuple[str, ...] = DAILY_SUMS


HOUR = Grain(HOURLY, HOURLY_KEYS, hour_of)
SIX_HOURS = Grain(SIX_HOURLY, HOURLY_KEYS, six_hours_of)
DAY = Grain(DAILY, DAILY_KEYS, day_of)
GRAINS = (HOUR, SIX_HOURS, DAY)


def add_calls(
    connection: Connection, hourly: Mapping[tuple, Sequence], latencies: Mapping[tuple, Sequence[int]]
) -> None:
    """Add hourly call groups (`rollups.py`'s shapes) to the hourly, six-hour and daily roll-ups.

    On PostgreSQL every grain's rows are upserted (and locked) first, in the grains' order,
    and then their merged histograms are written with one statement (core.together)."""
    updates = [_upserted(connection, *fold(hourly, latencies, grain), grain=grain) for grain in GRAINS]
    run_together(connection, [update for update in updates if update is not None])


def fold(
    hourly: Mapping[tuple, Sequence], latencies: Mapping[tuple, Sequence[int]], grain: Grain = DAY
) -> tuple[dict[tuple, list[int]], dict[tuple, dict[int, int]]]:
    """Hourly call groups summed per hour (or day), team, prompt and model, and their latency
    buckets as a {bucket: answered calls} histogram per such group."""
    start_of = grain.start_of
    days: dict[tuple, list[int]] = {}
    for (hour, team_id, _key, _actor, prompt, _version, model), sums in hourly.items():
        key = (start_of(hour), team_id, prompt, model)
        into = days.get(key)
        if into is None:
            into = days[key] = [0] * len(DAILY_SUMS)
        for position, source in enumerate(_FROM_HOURLY):
            into[position] += int(sums[source])
    histograms: dict[tuple, dict[int, int]] = {}
    for (hour, team_id, prompt, _version, model, bucket), (calls, *_rest) in latencies.items():
        histogram = histograms.setdefault((start_of(hour), team_id, prompt, model), {})
        histogram[bucket] = histogram.get(bucket, 0) + int(calls)
    return days, histograms


def add(
    connection: Connection,
    groups: Mapping[tuple, Sequence[int]],
    histograms: Mapping[tuple, Mapping[int, int]],
    *,
    grain: Grain = DAY,
) -> None:
    """Add folded groups to a grain's roll-ups: one upsert per group, in key order (so two
    batches on PostgreSQL lock the rows in the same order and never deadlock), each row's
    histogram merged with the group's. Every histogram's group is among `groups` (a
    latency bucket counts answered calls, which the counts hold too).

    On SQLite the upsert merges the histograms itself, through a function of ours
    (`HISTOGRAM_ADD`) that SQLite calls in this process: one statement per grain. On
    PostgreSQL, where such a function would have to be written in the server's PL/pgSQL,
    the upsert returns the rows' stored histograms and an update writes them merged: the
    upsert holds each row's lock until the transaction ends, so the histogram it returns is
    the latest and no one else's write can slip in between. Two statements per grain; more
    groups than one INSERT takes (a rebuild's) are upserted first and their histograms read
    back in chunks."""
    update = _upserted(connection, groups, histograms, grain=grain)
    if update is not None:
        run_together(connection, [update])


def _upserted(
    connection: Connection,
    groups: Mapping[tuple, Sequence[int]],
    histograms: Mapping[tuple, Mapping[int, int]],
    *,
    grain: Grain,
) -> Part | None:
    """`add`'s upsert; on PostgreSQL, the update of the rows' merged histograms, still to run."""
    if connection.dialect.name == "sqlite":
        _with_histogram_add(connection)
        _upsert(connection, grain, groups, histograms)
        return None
    wanted = sorted(key for key, histogram in histograms.items() if any(histogram.values()))
    if len(groups) <= ROWS_PER_INSERT:
        held = _upsert_returning(connection, grain, groups)
    else:
        _upsert(connection, grain, groups, {})
        held = _held(connection, grain, wanted)
    if not wanted:
        return None
    return (
        _statements(connection.dialect.name, grain).histogram,
        [
            {
                **{f"k_{k}": v for k, v in zip(grain.keys, key, strict=True)},
                "packed": latency_histogram.merged(held.get(key), histograms[key]),
            }
            for key in wanted
        ],
    )


# SQLite's name for latency_histogram.added, registered on each connection that upserts.
HISTOGRAM_ADD = "quorum_histogram_add"


def _with_histogram_add(connection: Connection) -> None:
    raw = connection.connection
    if HISTOGRAM_ADD not in raw.info:  # kept with the driver's connection, across checkouts
        raw.driver_connection.create_function(HISTOGRAM_ADD, 2, latency_histogram.added, deterministic=True)
        raw.info[HISTOGRAM_ADD] = True


@dataclass(frozen=True)
class _Statements:
    """A grain's prebuilt statements, for every settled batch (core/prebuilt.py says why)."""

    upsert: Prebuilt
    upsert_returning: Prebuilt  # PostgreSQL: the upsert, returning each row's key and stored histogram
    histogram: Prebuilt


_PREBUILT: dict[tuple[str, str], _Statements] = {}


def _statements(dialect: str, grain: Grain) -> _Statements:
    found = _PREBUILT.get((dialect, grain.table.name))
    if found is None:
        table = grain.table
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        sums = {name: table.c[name] + insert.excluded[name] for name in grain.sums}
        if dialect == "sqlite":
            histogram_column = table.c.latency_histogram
            merge = getattr(func, HISTOGRAM_ADD)
            sums["latency_histogram"] = merge(histogram_column, insert.excluded.latency_histogram)
        upsert = insert.on_conflict_do_update(index_elements=[table.c[k] for k in grain.keys], set_=sums)
        histogram = (
            update(table)
            .where(*(table.c[k] == bindparam(f"k_{k}") for k in grain.keys))
            .values(latency_histogram=bindparam("packed"))
        )
        # Groups are keyed by the conflict key: one row each, so the upsert's rows share a statement.
        upserts = Prebuilt(upsert, distinct_rows=True)
        returning = Prebuilt(
            upsert.returning(*(table.c[k] for k in grain.keys), table.c.latency_histogram), distinct_rows=True
        )
        found = _PREBUILT[(dialect, table.name)] = _Statements(upserts, returning, Prebuilt(histogram))
    return found


def _held(connection: Connection, grain: Grain, wanted: Sequence[tuple]) -> dict[tuple, bytes]:
    """The stored histograms of these groups, read in chunks (a rebuild's thousands)."""
    table, names = grain.table, grain.keys
    keys = tuple_(*(table.c[k] for k in names))
    held: dict[tuple, bytes] = {}
    for start in range(0, len(wanted), _READ_CHUNK):
        chunk = wanted[start : start + _READ_CHUNK]
        rows = connection.execute(
            select(*(table.c[k] for k in names), table.c.latency_histogram).where(keys.in_(chunk))
        )
        held.update({(grain.start_of(time), *rest): packed for time, *rest, packed in rows})
    return held


def rebuild(connection: Connection, *, since: datetime | None = None, hours: Iterable[datetime] = ()) -> None:
    """Recompute the hourly, six-hour and daily roll-ups here from the hourly call roll-ups:
    every hour and day from `since` on (everything when `since` and `hours` are both empty),
    or only the given hours, their six hours and their days. The caller has already rebuilt
    the call roll-ups of those hours and holds the roll-up lock."""
    wanted = sorted({hour_of(h) for h in hours})
    if wanted:
        spans = [(day, day + timedelta(days=1)) for day in sorted({day_of(h) for h in wanted})]
        for start, end in spans:
            connection.execute(delete(DAILY).where(DAILY.c.day >= start, DAILY.c.day < end))
        for grain, times in ((HOUR, wanted), (SIX_HOURS, sorted({six_hours_of(h) for h in wanted}))):
            column = grain.table.c[grain.keys[0]]
            for chunk in (times[i : i + _READ_CHUNK] for i in range(0, len(times), _READ_CHUNK)):
                connection.execute(delete(grain.table).where(column.in_(chunk)))
    else:
        first = connection.execute(select(func.min(_HOURLY.c.hour))).scalar()
        start = day_of(since) if since is not None else None
        for grain in GRAINS:
            statement = delete(grain.table)
            if start is not None:
                statement = statement.where(grain.table.c[grain.keys[0]] >= start)
            connection.execute(statement)
        if first is None:
            return
        cursor = max(start, day_of(first)) if start is not None else day_of(first)
        last = connection.execute(select(func.max(_HOURLY.c.hour))).scalar()
        spans = []
        while cursor <= last:
            spans.append((cursor, cursor + _REBUILD_STEP))
            cursor += _REBUILD_STEP
    only = set(wanted)
    sixes = {six_hours_of(h) for h in wanted}
    for start, end in spans:
        groups, histograms = _summed_hours(connection, start, end)
        add(connection, *_regrouped(groups, histograms, day_of), grain=DAY)
        if only:  # whole days were read: only the wanted hours' six hours are rewritten
            groups = {k: v for k, v in groups.items() if six_hours_of(k[0]) in sixes}
            histograms = {k: v for k, v in histograms.items() if six_hours_of(k[0]) in sixes}
        add(connection, *_regrouped(groups, histograms, six_hours_of), grain=SIX_HOURS)
        if only:
            groups = {k: v for k, v in groups.items() if k[0] in only}
            histograms = {k: v for k, v in histograms.items() if k[0] in only}
        add(connection, groups, histograms, grain=HOUR)


def _summed_hours(connection: Connection, start: datetime, end: datetime) -> tuple[dict, dict]:
    """The hourly call roll-ups of [start, end) summed by the database per hour, team, prompt
    and model, with their latency histograms."""
    sums = [func.sum(_HOURLY.c[name]) for name in DAILY_SUMS]
    calls = connection.execute(
        select(_HOURLY.c.hour, _HOURLY.c.team_id, _HOURLY.c.prompt_name, _HOURLY.c.model, *sums)
        .where(_HOURLY.c.hour >= start, _HOURLY.c.hour < end)
        .group_by(_HOURLY.c.hour, _HOURLY.c.team_id, _HOURLY.c.prompt_name, _HOURLY.c.model)
    )
    groups: dict[tuple, list[int]] = {
        (hour_of(hour), team_id, prompt, model): [int(v or 0) for v in values]
        for hour, team_id, prompt, model, *values in calls
    }
    latency = _HOURLY_LATENCY.c
    grouping = (latency.hour, latency.team_id, latency.prompt_name, latency.model, latency.bucket)
    histograms: dict[tuple, dict[int, int]] = {}
    rows = connection.execute(
        select(*grouping, func.sum(latency.calls)).where(latency.hour >= start, latency.hour < end).group_by(*grouping)
    )
    for hour, team_id, prompt, model, bucket, n in rows:
        histograms.setdefault((hour_of(hour), team_id, prompt, model), {})[bucket] = int(n or 0)
    return groups, histograms


def _regrouped(
    groups: Mapping[tuple, Sequence[int]],
    histograms: Mapping[tuple, Mapping[int, int]],
    start_of: Callable[[datetime], datetime],
) -> tuple[dict[tuple, list[int]], dict[tuple, dict[int, int]]]:
    """(time, team, prompt, model) groups summed per coarser time (an hour's six hours or day)."""
    summed: dict[tuple, list[int]] = {}
    for (time, *rest), values in groups.items():
        into = summed.setdefault((start_of(time), *rest), [0] * len(DAILY_SUMS))
        for position, value in enumerate(values):
            into[position] += value
    merged: dict[tuple, dict[int, int]] = {}
    for (time, *rest), histogram in histograms.items():
        into_histogram = merged.setdefault((start_of(time), *rest), {})
        for bucket, n in histogram.items():
            into_histogram[bucket] = into_histogram.get(bucket, 0) + n
    return summed, merged


def _upsert_returning(connection: Connection, grain: Grain, groups: Mapping[tuple, Sequence]) -> dict[tuple, bytes]:
    """PostgreSQL: the groups' upsert (new rows start with an empty histogram), and the
    histogram each row holds after it, by group."""
    if not groups:
        return {}
    rows = _statements(connection.dialect.name, grain).upsert_returning.fetchall(
        connection, _upsert_parameters(grain, groups, {})
    )
    return {(grain.start_of(time), *rest): bytes(packed) for time, *rest, packed in rows if packed}


def _upsert(
    connection: Connection,
    grain: Grain,
    groups: Mapping[tuple, Sequence],
    histograms: Mapping[tuple, Mapping[int, int]],
) -> None:
    """The groups' upsert; a new row starts with its group's histogram (empty when none given)."""
    if not groups:
        return
    _statements(connection.dialect.name, grain).upsert.execute(
        connection, _upsert_parameters(grain, groups, histograms)
    )


def _upsert_parameters(
    grain: Grain, groups: Mapping[tuple, Sequence], histograms: Mapping[tuple, Mapping[int, int]]
) -> list[dict]:
    """The upsert's rows, in key order (two batches lock the rows in the same order)."""
    keys, pack = grain.keys, latency_histogram.pack
    return [
        {
            **dict(zip(keys, key, strict=True)),
            **dict(zip(grain.sums, values, strict=True)),
            "latency_histogram": pack(histograms[key]) if key in histograms else latency_histogram.EMPTY,
        }
        for key, values in sorted(groups.items())
    ]
