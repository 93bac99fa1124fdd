"""Hourly roll-ups of the usage ledger and the gateway call log: folded from settled calls, rebuilt on demand.

Three tables (core/models/rollups.py): `usage_rollup` sums the ledger per hour of
`occurred_at` (what Spend and budgets read), `call_rollup` counts the call log per hour of
`created_at` and `call_latency_rollup` holds the answered calls' latency histogram (what
Observability and Live A/B read). Each source keeps its own clock, so a call that starts at
09:59:59 and settles at 10:00:01 counts in hour 09 of the ledger and hour 10 of the call log,
exactly as the two sources say. The call roll-ups are also summed per UTC hour, per six UTC
hours and per UTC day of team, prompt and model (`daily_rollups.py`, what Observability
reads), and per UTC day of prompt version (`version_rollups.py`, what Live A/B reads), in
the same writes.

Why in `budgets/`: it is the lowest context that every writer (the fold of settled calls, the
retention run, the demo seeds) and every reader (Spend and budgets here, the gateway's
Observability, the experiments' Live A/B) may import; it needs only tables from `core.models`,
no module of `gateway/`.

Writes add to the caller's transaction: `add_call_rows` and `add_ledger_rows` aggregate
call-log or ledger rows in Python and upsert each (hour, dimensions) group once (ON
CONFLICT DO UPDATE on SQLite and PostgreSQL), in key order so that concurrent writers
never deadlock on PostgreSQL. The gateway's settled calls come through a fold of many calls
at once (`pending_rollups.py`), not with each settle; a rebuild leaves out the calls still
waiting for it.

After a retention run deletes or anonymizes ledger or call rows, the hours it touched are
rebuilt from what remains (`rebuild_hours`): the roll-ups always say what the sources say, so
a purged month shows what its ledger still holds, and an anonymized call no longer counts
for its person or key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.audit.record import committing, record
from core.budgets import daily_rollups, version_rollups
from core.models.budgets import UsageRecord
from core.models.gateway import GatewayCall
from core.models.rollups import CallLatencyRollup, CallRollup, RollupPending, UsageRollup
from core.permissions import Actor, Permission, require
from core.prebuilt import Prebuilt

LEDGER = UsageRecord.__table__
CALLS = GatewayCall.__table__
USAGE = UsageRollup.__table__
CALL = CallRollup.__table__
LATENCY = CallLatencyRollup.__table__
PENDING = RollupPending.__table__

# The latency histogram's buckets grow by 5 %: a percentile read as its bucket's geometric
# middle is within 2.5 % of the exact value.
LATENCY_FLOOR_MS = 0.01
LATENCY_GROWTH = 1.05

USAGE_KEYS = ("hour", "team_id", "person_id", "key_id", "prompt_id", "model")
USAGE_SUMS = (
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micro",
    "cache_hits",
)
CALL_KEYS = ("hour", "team_id", "key_id", "actor", "prompt_name", "prompt_version", "model")
CALL_SUMS = (
    "calls",
    "ok",
    "errors",
    "rejected_429",
    "blocked",
    "held",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "cost_micro",
    "ok_latency_ms",
)
LATENCY_KEYS = ("hour", "team_id", "prompt_name", "prompt_version", "model", "bucket")
LATENCY_SUMS = ("calls",)

# What a fold and a rebuild read of each source (the names of the call log's and the ledger's columns).
LEDGER_COLUMNS = (
    "occurred_at",
    "team_id",
    "person_id",
    "key_id",
    "prompt_id",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micro",
    "cache_hit",
)
CALL_COLUMNS = (
    "created_at",
    "team_id",
    "key_id",
    "actor",
    "prompt_name",
    "prompt_version",
    "model",
    "status",
    "http_status",
    "cache_hit",
    "input_tokens",
    "output_tokens",
    "cost_micro",
    "latency_ms",
)


_generation = [0]


def generation() -> int:
    """Bumped by every rebuild in this process: cached sums of the roll-ups start afresh."""
    return _generation[0]


def hour_of(instant: datetime) -> datetime:
    """The UTC hour an instant falls in."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def latency_bucket(latency_ms: float) -> int:
    return math.floor(math.log(max(latency_ms, LATENCY_FLOOR_MS) / LATENCY_FLOOR_MS) / math.log(LATENCY_GROWTH))


def bucket_middle_ms(bucket: int) -> float:
    return LATENCY_FLOOR_MS * LATENCY_GROWTH ** (bucket + 0.5)


# ---- aggregating rows in Python -----------------------------------------------------------


def ledger_groups(rows: Iterable[Mapping[str, Any]]) -> dict[tuple, list[int]]:
    """Ledger rows summed per usage_rollup key (the sums in USAGE_SUMS order)."""
    groups: dict[tuple, list[int]] = {}
    for row in rows:
        key = (
            hour_of(row["occurred_at"]),
            row["team_id"],
            row["person_id"] or 0,
            row["key_id"] or 0,
            row["prompt_id"] or 0,
            row["model"],
        )
        sums = groups.get(key)
        if sums is None:
            sums = groups[key] = [0] * len(USAGE_SUMS)
        sums[0] += 1
        sums[1] += row["input_tokens"]
        sums[2] += row["cached_input_tokens"]
        sums[3] += row["output_tokens"]
        sums[4] += row["reasoning_tokens"]
        sums[5] += row["cost_micro"]
        sums[6] += 1 if row["cache_hit"] else 0
    return groups


def call_groups(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[tuple, list], dict[tuple, list[int]]]:
    """Call-log rows counted per call_rollup key, and answered calls per latency bucket."""
    groups: dict[tuple, list] = {}
    latencies: dict[tuple, list[int]] = {}
    for row in rows:
        hour = hour_of(row["created_at"])
        team_id, prompt, version, model = (
            row["team_id"] or 0,
            row["prompt_name"] or "",
            row["prompt_version"] or "",
            row["model"] or "",
        )
        key = (hour, team_id, row["key_id"] or 0, row["actor"] or "", prompt, version, model)
        sums = groups.get(key)
        if sums is None:
            sums = groups[key] = [0] * (len(CALL_SUMS) - 1) + [0.0]
        ok = row["status"] == "ok"
        http_status = row["http_status"]
        sums[0] += 1
        sums[1] += ok
        sums[2] += http_status >= 500
        sums[3] += http_status == 429
        sums[4] += row["status"] == "blocked"
        sums[5] += row["status"] == "held"
        sums[6] += 1 if row["cache_hit"] else 0
        sums[7] += row["input_tokens"]
        sums[8] += row["output_tokens"]
        sums[9] += row["cost_micro"]
        if ok:
            sums[10] += float(row["latency_ms"])
            bucket_key = (hour, team_id, prompt, version, model, latency_bucket(float(row["latency_ms"])))
            counted = latencies.get(bucket_key)
            if counted is None:
                latencies[bucket_key] = [1]
            else:
                counted[0] += 1
    return groups, latencies


# ---- writing ------------------------------------------------------------------------------


def add_ledger_rows(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """The usage roll-ups of these ledger rows (`LEDGER_COLUMNS`' values), added to what they hold."""
    add_groups(connection, USAGE, ledger_groups(rows))


def add_call_rows(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Every call roll-up of these call-log rows (`CALL_COLUMNS`' values), added to what they hold."""
    groups, latencies = call_groups(rows)
    add_groups(connection, CALL, groups)
    add_groups(connection, LATENCY, latencies)
    daily_rollups.add_calls(connection, groups, latencies)
    version_rollups.add_calls(connection, groups, latencies)


def add_groups(connection: Connection, table: Table, groups: Mapping[tuple, Sequence]) -> None:
    """One upsert per group, adding the sums to what the row holds; in key order (no deadlock)."""
    if not groups:
        return
    keys, sums = _SHAPES[table.name]
    parameters = [
        {**dict(zip(keys, key, strict=True)), **dict(zip(sums, values, strict=True))}
        for key, values in sorted(groups.items())
    ]
    _upsert(connection.dialect.name, table).execute(connection, parameters)


_SHAPES = {
    USAGE.name: (USAGE_KEYS, USAGE_SUMS),
    CALL.name: (CALL_KEYS, CALL_SUMS),
    LATENCY.name: (LATENCY_KEYS, LATENCY_SUMS),
}
_UPSERTS: dict[tuple[str, str], Prebuilt] = {}


def _upsert(dialect: str, table: Table) -> Prebuilt:
    # Prebuilt (core.prebuilt): every settled batch runs these, and SQLAlchemy's execution
    # layer cost more CPU than the upserts themselves.
    statement = _UPSERTS.get((dialect, table.name))
    if statement is None:
        keys, sums = _SHAPES[table.name]
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: table.c[name] + insert.excluded[name] for name in sums},
        )
        # Groups are keyed by the conflict key: one row each, so they may share one statement.
        statement = _UPSERTS[(dialect, table.name)] = Prebuilt(upsert, distinct_rows=True)
    return statement


# ---- rebuilding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuilt:
    since: datetime | None
    ledger_rows: int
    call_rows: int
    usage_groups: int
    call_groups: int


# Every roll-up table, in the order every transaction that locks them whole locks them.
LOCKED_TABLES = ", ".join(
    t.name
    for t in (
        USAGE,
        CALL,
        LATENCY,
        daily_rollups.HOURLY,
        daily_rollups.SIX_HOURLY,
        daily_rollups.DAILY,
        version_rollups.VERSION_DAILY,
    )
)


def lock(connection: Connection) -> None:
    """Hold off every fold of waiting calls (core/budgets/pending_rollups.py) until this
    transaction ends (PostgreSQL; SQLite's write transaction already excludes every other
    writer). A fold that committed before is in what the rebuild reads; the calls still
    waiting are left out of it, and added by their fold."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {LOCKED_TABLES} IN SHARE ROW EXCLUSIVE MODE"))


def not_pending(source: Table) -> Any:
    """A condition on ledger or call-log rows: their call is in the roll-ups, not waiting for a
    fold (a row with no request id never waits). In the statement that reads the rows, so that
    a call committed meanwhile is seen with its pending row or not at all."""
    return ~exists().where(PENDING.c.request_id == source.c.request_id)


def rebuild(connection: Connection, *, since: datetime | None = None, step: timedelta = timedelta(days=7)) -> Rebuilt:
    """Recompute the roll-ups from the hour of `since` (everything when None) from the ledger and
    the call log; adds to the caller's transaction (one commit: nothing half-rebuilt)."""
    lock(connection)
    _generation[0] += 1
    start = hour_of(since) if since is not None else None
    for table in (USAGE, CALL, LATENCY):
        statement = delete(table)
        if start is not None:
            statement = statement.where(table.c.hour >= start)
        connection.execute(statement)
    counts = [0, 0, 0, 0]
    for source, time_column, columns in (
        (LEDGER, "occurred_at", LEDGER_COLUMNS),
        (CALLS, "created_at", CALL_COLUMNS),
    ):
        column = source.c[time_column]
        bounds = connection.execute(select(func.min(column), func.max(column))).one()
        if bounds[0] is None:
            continue
        cursor = max(start, hour_of(bounds[0])) if start is not None else hour_of(bounds[0])
        while cursor <= bounds[1]:
            upto = cursor + step
            rows = [
                r._mapping
                for r in connection.execute(
                    select(*(source.c[c] for c in columns)).where(column >= cursor, column < upto, not_pending(source))
                )
            ]
            if source is LEDGER:
                groups = ledger_groups(rows)
                add_groups(connection, USAGE, groups)
                counts[0] += len(rows)
                counts[2] += len(groups)
            else:
                calls, latencies = call_groups(rows)
                add_groups(connection, CALL, calls)
                add_groups(connection, LATENCY, latencies)
                counts[1] += len(rows)
                counts[3] += len(calls)
            cursor = upto
    daily_rollups.rebuild(connection, since=start)
    version_rollups.rebuild(connection, since=start)
    return Rebuilt(
        since=start, ledger_rows=counts[0], call_rows=counts[1], usage_groups=counts[2], call_groups=counts[3]
    )


ROLLED_UP_TABLES = (LEDGER.name, CALLS.name)


def hours_of(connection: Connection, table: str, id_column: str, ids: Sequence[Any]) -> set[datetime]:
    """The hours the given rows of the ledger or the call log count in (before they change)."""
    source = LEDGER if table == LEDGER.name else CALLS
    column = source.c.occurred_at if source is LEDGER else source.c.created_at
    found: set[datetime] = set()
    for chunk in (list(ids[i : i + 500]) for i in range(0, len(ids), 500)):
        query = select(column).where(source.c[id_column].in_(chunk)).distinct()
        found |= {hour_of(t) for (t,) in connection.execute(query)}
    return found


def rebuild_hours(connection: Connection, table: str, hours: Iterable[datetime]) -> None:
    """Recompute the roll-ups of one source for these hours from what that source holds now."""
    lock(connection)
    _generation[0] += 1
    ordered = sorted(set(hours))
    for hour in ordered:
        end = hour + timedelta(hours=1)
        if table == LEDGER.name:
            connection.execute(delete(USAGE).where(USAGE.c.hour == hour))
            rows = connection.execute(
                select(*(LEDGER.c[c] for c in LEDGER_COLUMNS)).where(
                    LEDGER.c.occurred_at >= hour, LEDGER.c.occurred_at < end, not_pending(LEDGER)
                )
            )
            add_groups(connection, USAGE, ledger_groups(r._mapping for r in rows))
        else:
            connection.execute(delete(CALL).where(CALL.c.hour == hour))
            connection.execute(delete(LATENCY).where(LATENCY.c.hour == hour))
            rows = connection.execute(
                select(*(CALLS.c[c] for c in CALL_COLUMNS)).where(
                    CALLS.c.created_at >= hour, CALLS.c.created_at < end, not_pending(CALLS)
                )
            )
            groups, latencies = call_groups([r._mapping for r in rows])
            add_groups(connection, CALL, groups)
            add_groups(connection, LATENCY, latencies)
    if table != LEDGER.name and ordered:
        daily_rollups.rebuild(connection, hours=ordered)  # from the hours just rebuilt
        version_rollups.rebuild(connection, hours=ordered)


def rebuild_rollups(session: Session, *, actor: Actor, since: datetime | None = None) -> Rebuilt:
    """`quorum rollups rebuild`: recompute the roll-ups from `since` (all when None) in one
    audited write transaction; nothing is half-rebuilt if it fails."""
    require(actor, Permission.BUDGET_MANAGE)
    with committing(session):
        result = rebuild(session.connection(), since=since)
        record(
            session,
            actor=actor,
            action="rollups.rebuild",
            target_type="rollups",
            target_id="usage_and_calls",
            after={
                "since": since.isoformat() if since is not None else None,
                "ledger_rows": result.ledger_rows,
                "call_rows": result.call_rows,
            },
        )
    _generation[0] += 1  # committed: cached sums read before the commit are stale
    return result
