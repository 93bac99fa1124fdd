"""The call log per UTC day, prompt and prompt version: what Live A/B reads for a split's whole days.

Live A/B compares two versions of one prompt since its split began. Read from the hourly
roll-ups, a split of 300 days costs 7,200 hours of rows per version, and more every day;
read from this table, it costs a row per version and day (and the hours of its first,
partial day from the hourly roll-ups), so the comparison stays cheap as the split ages.

Written wherever the hourly call roll-ups are (`rollups.py`: the settle's batched
write-back, the seeds, a rebuild, a retention run's rebuilt hours), from the same hourly
groups folded per day, prompt and version, in the same transaction, with
`daily_rollups.py`'s machinery (prebuilt upsert in key order, then the histogram merged
under the row's lock). Calls that name no prompt are left out before anything is written:
a batch of them costs the settle nothing here.

A rebuild recomputes the days from the hourly call roll-ups (`call_rollup` and
`call_latency_rollup`, already summed), so a day's row always equals its hours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select

from core.budgets.daily_rollups import Grain, add, day_of
from core.models.rollups import CallLatencyRollup, CallRollup, CallVersionDailyRollup

VERSION_DAILY = CallVersionDailyRollup.__table__
_HOURLY = CallRollup.__table__
_HOURLY_LATENCY = CallLatencyRollup.__table__

VERSION_KEYS = ("day", "prompt_name", "prompt_version")
VERSION_SUMS = ("calls", "ok", "cost_micro", "ok_latency_ms")
# Where each of VERSION_SUMS sits in an hourly group's sums (rollups.CALL_SUMS).
_FROM_HOURLY = (0, 1, 9, 10)
VERSION_DAY = Grain(VERSION_DAILY, VERSION_KEYS, day_of, VERSION_SUMS)
# A rebuild reads the hourly roll-ups this many days at a time (memory stays bounded).
_REBUILD_STEP = timedelta(days=31)


def add_calls(
    connection: Connection, hourly: Mapping[tuple, Sequence], latencies: Mapping[tuple, Sequence[int]]
) -> None:
    """Add hourly call groups (`rollups.py`'s shapes) to the per-version days; nothing is run
    when none of them names a prompt."""
    groups, histograms = fold(hourly, latencies)
    if groups:
        add(connection, groups, histograms, grain=VERSION_DAY)


def fold(
    hourly: Mapping[tuple, Sequence], latencies: Mapping[tuple, Sequence[int]]
) -> tuple[dict[tuple, list], dict[tuple, dict[int, int]]]:
    """Hourly call groups of named prompts summed per day, prompt and version (VERSION_SUMS),
    and their answered calls as a {bucket: calls} histogram per such group."""
    days: dict[tuple, list] = {}
    for (hour, _team, _key, _actor, prompt, version, _model), sums in hourly.items():
        if not prompt:
            continue
        key = (day_of(hour), prompt, version)
        into = days.get(key)
        if into is None:
            into = days[key] = [0, 0, 0, 0.0]
        for position, source in enumerate(_FROM_HOURLY):
            into[position] += sums[source]
    histograms: dict[tuple, dict[int, int]] = {}
    for (hour, _team, prompt, version, _model, bucket), (calls, *_rest) in latencies.items():
        if not prompt:
            continue
        histogram = histograms.setdefault((day_of(hour), prompt, version), {})
        histogram[bucket] = histogram.get(bucket, 0) + int(calls)
    return days, histograms


def rebuild(connection: Connection, *, since: datetime | None = None, hours: Iterable[datetime] = ()) -> None:
    """Recompute the per-version days from the hourly call roll-ups: every day from the day of
    `since` on (all of them when `since` and `hours` are both empty), or only the days of the
    given hours, each summed again from all its hours. The caller has already rebuilt the
    hourly call roll-ups it changed and holds the roll-up lock."""
    column = VERSION_DAILY.c.day
    days = sorted({day_of(h) for h in hours})
    if days:
        for day in days:
            connection.execute(delete(VERSION_DAILY).where(column == day))
        spans = [(day, day + timedelta(days=1)) for day in days]
    else:
        start = day_of(since) if since is not None else None
        connection.execute(delete(VERSION_DAILY).where(column >= start) if start else delete(VERSION_DAILY))
        first, last = connection.execute(select(func.min(_HOURLY.c.hour), func.max(_HOURLY.c.hour))).one()
        if first is None:
            return
        cursor = max(start, day_of(first)) if start is not None else day_of(first)
        spans = []
        while cursor <= last:
            spans.append((cursor, cursor + _REBUILD_STEP))
            cursor += _REBUILD_STEP
    for start_, end in spans:
        add(connection, *_summed_days(connection, start_, end), grain=VERSION_DAY)


def _summed_days(connection: Connection, start: datetime, end: datetime) -> tuple[dict, dict]:
    """The hourly call roll-ups of named prompts in [start, end), summed by the database per
    hour, prompt and version and then per day here (days are computed alike on both databases)."""
    c = _HOURLY.c
    named = (c.hour >= start, c.hour < end, c.prompt_name != "")
    rows = connection.execute(
        select(c.hour, c.prompt_name, c.prompt_version, *(func.sum(c[n]) for n in VERSION_SUMS))
        .where(*named)
        .group_by(c.hour, c.prompt_name, c.prompt_version)
    )
    days: dict[tuple, list] = {}
    for hour, prompt, version, calls, ok, cost, latency in rows:
        into = days.setdefault((day_of(hour), prompt, version), [0, 0, 0, 0.0])
        into[0] += int(calls or 0)
        into[1] += int(ok or 0)
        into[2] += int(cost or 0)
        into[3] += float(latency or 0.0)
    lat = _HOURLY_LATENCY.c
    histograms: dict[tuple, dict[int, int]] = {}
    buckets = connection.execute(
        select(lat.hour, lat.prompt_name, lat.prompt_version, lat.bucket, func.sum(lat.calls))
        .where(lat.hour >= start, lat.hour < end, lat.prompt_name != "")
        .group_by(lat.hour, lat.prompt_name, lat.prompt_version, lat.bucket)
    )
    for hour, prompt, version, bucket, n in buckets:
        histogram = histograms.setdefault((day_of(hour), prompt, version), {})
        histogram[int(bucket)] = histogram.get(int(bucket), 0) + int(n or 0)
    return days, histograms
