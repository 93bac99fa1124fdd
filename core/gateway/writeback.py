"""What settled calls write back, and the writers that write it for a whole batch at once.

A `SettledCall` is everything one finished call leaves, as plain column values built
before any lock is taken. `write_back(session, calls)` hands the batch to each writer of
`WRITERS` in turn, inside one transaction that the caller commits; a writer takes the
whole list and writes it with as few statements as it can (an executemany INSERT, one
UPDATE per hot row). Another writer joins the write-back by adding itself to `WRITERS`:
it gets the same list, and reads what it needs from each call's `row` (the call-log row:
team, key, model, status, tokens, cost, times).

The order is the order a lone call always wrote in, and every writer sorts what it
locks, so two batches (in two processes on PostgreSQL) lock rows in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from core.audit.record import record_rows
from core.budgets import pending_rollups
from core.budgets.usage import Usage
from core.gateway import cache
from core.gateway.catches import write_catches
from core.gateway.ports import BudgetGate, CallOutcome, Reservation
from core.gateway.schema_checks import write_schema_checks
from core.models.gateway import GatewayCall, HeldRequest, StoredPayload
from core.prebuilt import Prebuilt
from core.retention.payloads import minimized_payload
from core.retention.rules import payload_mode_of, payload_mode_read, payload_storage_mode
from core.together import run_together


@dataclass(frozen=True)
class CacheWrite:
    """An answer to keep in the response cache (a successful call that may be cached)."""

    team_id: int
    key: str
    model: str
    response_json: str | None
    ttl_s: int


@dataclass(frozen=True)
class BudgetSettle:
    """The budget's part: replace the call's hold by what it cost (and its ledger row)."""

    gate: BudgetGate
    reservation: Reservation
    usage: Usage
    outcome: CallOutcome


@dataclass(frozen=True)
class SettledCall:
    """One finished call's write-back; nothing in it is read from or written to the database yet."""

    row: dict[str, Any]  # the gateway_call row's column values
    event: dict[str, Any]  # the `gateway.call` audit event, prepared (core.audit.record.prepare_event)
    request_json: str | None = None  # the payload to store (as the team's retention allows)
    response_json: str | None = None
    hold: HeldRequest | None = None
    cache_hit_id: int | None = None
    cache_write: CacheWrite | None = None
    budget: BudgetSettle | None = None
    network: str | None = None  # the caller's network prefix (core.gateway.key_networks)
    schema_valid: bool | None = None  # the answer against its prompt version's JSON schema


Writer = Callable[[Session, Sequence[SettledCall]], None]

# Prebuilt: run for every batch, where SQLAlchemy's execution layer cost more than the INSERT.
_INSERT_CALL = Prebuilt(insert(GatewayCall.__table__))
_INSERT_PAYLOAD = Prebuilt(insert(StoredPayload.__table__))


# The payload modes `write_calls` read for `write_payloads` (session.info, this transaction only).
_PAYLOAD_MODES = "quorum_writeback_payload_modes"


def write_calls(session: Session, calls: Sequence[SettledCall]) -> None:
    """The call-log rows and the calls' pending roll-up rows (core/budgets/pending_rollups.py:
    a fold adds the calls to the roll-ups and their keys' networks later, many at once); and
    when the batch's payloads are all one team's (as they mostly are), that team's payload
    mode read in the same statement (core.together: a read of a row this transaction does
    not write) for `write_payloads`."""
    connection = session.connection()
    inserts = [
        (_INSERT_CALL, [c.row for c in calls]),
        pending_rollups.pend(
            [(c.row["request_id"], c.network if c.row["key_id"] is not None else None) for c in calls]
        ),
    ]
    teams = {c.row["team_id"] for c in calls if c.request_json is not None}
    if len(teams) != 1 or None in teams:
        run_together(connection, inserts)
        return
    (team_id,) = teams
    found = run_together(connection, [*inserts, payload_mode_read(team_id)], fetch=True)
    session.info[_PAYLOAD_MODES] = {team_id: payload_mode_of(found)}


def write_payloads(session: Session, calls: Sequence[SettledCall]) -> None:
    """The stored payloads, minimized as each team's retention says (read once per team, committed value)."""
    connection = session.connection()
    modes: dict[int | None, str] = session.info.pop(_PAYLOAD_MODES, None) or {}
    rows = []
    for call in calls:
        if call.request_json is None:
            continue
        team_id = call.row["team_id"]
        if team_id not in modes:
            modes[team_id] = payload_storage_mode(connection, team_id)
        stored = minimized_payload(
            modes[team_id], call.request_json, call.response_json, needed_for_hold=call.hold is not None
        )
        if stored is not None:
            rows.append(
                {
                    "request_id": call.row["request_id"],
                    "team_id": team_id,
                    "created_at": call.row["created_at"],
                    "request_json": stored[0],
                    "response_json": stored[1],
                }
            )
    if rows:
        _INSERT_PAYLOAD.execute(connection, rows)


def write_holds(session: Session, calls: Sequence[SettledCall]) -> None:
    for call in calls:
        if call.hold is not None:
            session.add(call.hold)


def write_cache(session: Session, calls: Sequence[SettledCall]) -> None:
    connection = session.connection()
    for entry_id in sorted(c.cache_hit_id for c in calls if c.cache_hit_id is not None):
        cache.count_hit(connection, entry_id)
    # Sorted, and the last answer for a key wins (two identical calls in one batch).
    stores = {(c.cache_write.team_id, c.cache_write.key): c.cache_write for c in calls if c.cache_write is not None}
    for _team_key, entry in sorted(stores.items()):
        cache.store(
            connection,
            team_id=entry.team_id,
            key=entry.key,
            model=entry.model,
            response_json=entry.response_json,
            ttl_s=entry.ttl_s,
        )


def write_budgets(session: Session, calls: Sequence[SettledCall]) -> None:
    """Each budget gate settles its calls together: one update per counter row, one ledger INSERT."""
    by_gate: dict[int, tuple[BudgetGate, list[tuple[Reservation, Usage, CallOutcome]]]] = {}
    for call in calls:
        if call.budget is not None:
            gate = call.budget.gate
            by_gate.setdefault(id(gate), (gate, []))[1].append(
                (call.budget.reservation, call.budget.usage, call.budget.outcome)
            )
    for gate, settled in by_gate.values():
        many = getattr(gate, "settle_many", None)
        if many is not None:
            many(session, settled)
        else:  # a gate of its own (tests, extensions) that settles one call at a time
            for reservation, usage, outcome in settled:
                gate.settle(session, reservation, usage, outcome)


def write_audit(session: Session, calls: Sequence[SettledCall]) -> None:
    """One chained `gateway.call` event per call, in batch order: one update of the audit head for all."""
    record_rows(session, [c.event for c in calls])


# The write-back, in order. The rows every call of a team updates come last, so that they
# are locked for the fewest statements before the commit: the team's budget counters (which
# every admission of the team updates too) and then the audit head (every call's). On
# PostgreSQL an admission waits for a batch that holds its team's counter row.
WRITERS: list[Writer] = [
    write_calls,
    write_payloads,
    write_holds,
    write_catches,
    write_cache,
    write_schema_checks,
    write_budgets,
    write_audit,
]


def write_back(session: Session, calls: Sequence[SettledCall]) -> None:
    """Every writer's part of `calls`, in the session's transaction (the caller commits)."""
    for writer in WRITERS:
        writer(session, calls)
