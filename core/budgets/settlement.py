"""Settle or release what `reservations.reserve` granted: the call's actual cost replaces its
reservation on every counter row it held, and its ledger row is written.

Both add to the caller's transaction and never commit (the gateway's write-back commits
them with the call row and the audit event). Calls that finish together settle together:
one UPDATE per counter row for all of them, in the order admissions lock the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from core.budgets import alerts, counters
from core.budgets.config import BudgetRule as Budget
from core.budgets.pricing import Usage, cost_micro
from core.budgets.reservations import Reservation, current_budgets, current_price_book
from core.models.budgets import UsageRecord
from core.prebuilt import Prebuilt
from core.together import Part

LEDGER = UsageRecord.__table__
_INSERT_LEDGER = insert(LEDGER).returning(LEDGER.c.id)
# No RETURNING when the caller has no use for the id; prebuilt: it runs for every settled batch.
_INSERT_LEDGER_PLAIN = Prebuilt(insert(LEDGER))


@dataclass(frozen=True)
class Settlement:
    """One finished call for `settle_many`: its reservation, what it used and how it ended."""

    reservation: Reservation
    usage: Usage
    latency_ms: int = 0
    status: str = "ok"
    cache_hit: bool = False
    request_id: str | None = None


def settle(
    *,
    session: Session,
    reservation: Reservation,
    usage: Usage,
    latency_ms: int = 0,
    status: str = "ok",
    cache_hit: bool = False,
    request_id: str | None = None,
    as_record: bool = True,
) -> UsageRecord | dict[str, Any]:
    """Replace the reservation by the call's actual cost and write its ledger row (returned).

    Adds to the caller's transaction and does not commit: the caller adds its audit event
    and stored payload and commits them together (or rolls everything back).
    The price is the one in effect when the call started. ``as_record=False`` returns the
    ledger row's column values instead of building an ORM object.
    """
    settlement = Settlement(reservation, usage, latency_ms, status, cache_hit, request_id)
    if not as_record:
        return settle_many(session=session, settlements=[settlement])[0]
    # Write lock first (SQLite): a read before it would make the later writes fail when
    # another caller commits in between. A caller that already read in this transaction
    # should use a `db.write_session()`.
    counters.begin_write(session)
    values = _ledger_values(session, settlement)
    _settle_counters(session, [(reservation, values["cost_micro"], _tokens(settlement))])
    row_id = session.connection().execute(_INSERT_LEDGER, values).scalar_one()
    return UsageRecord(id=row_id, **values)


def settle_many(*, session: Session, settlements: Sequence[Settlement]) -> list[dict[str, Any]]:
    """`settle` for calls that finish together, in the caller's one transaction; their ledger rows' values.

    Each counter row they count against is updated once for all of them (these are the rows
    every call of a team takes turns on), in (budget, period) order like an admission, and
    the ledger rows are written with one INSERT. Does not commit.
    """
    if not settlements:
        return []
    counters.begin_write(session)
    rows = [_ledger_values(session, s) for s in settlements]
    # On the transaction's Connection, prebuilt: the ORM's and Core's layers cost more than the
    # write here. Before the counters (their rows are locked from their update to the commit),
    # in one statement with the DELETE of the calls' holds on PostgreSQL (core.together).
    _settle_counters(
        session,
        [(s.reservation, row["cost_micro"], _tokens(s)) for s, row in zip(settlements, rows, strict=True)],
        after=(_INSERT_LEDGER_PLAIN, rows),
    )
    return rows


def _tokens(settlement: Settlement) -> int:
    return 0 if settlement.cache_hit else settlement.usage.input_tokens + settlement.usage.output_tokens


def _ledger_values(session: Session, settlement: Settlement) -> dict[str, Any]:
    reservation, usage = settlement.reservation, settlement.usage
    cost = (
        0
        if settlement.cache_hit
        else cost_micro(current_price_book(session).price_at(reservation.model, reservation.started_at), usage)
    )
    return dict(
        occurred_at=reservation.started_at,
        team_id=reservation.team_id,
        person_id=reservation.person_id,
        key_id=reservation.key_id,
        prompt_id=reservation.prompt_id,
        prompt_version_id=reservation.prompt_version_id,
        model=reservation.model,
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_micro=cost,
        latency_ms=max(0, int(settlement.latency_ms)),
        status=settlement.status[:20],
        cache_hit=settlement.cache_hit,
        request_id=settlement.request_id,
    )


def release(*, session: Session, reservation: Reservation) -> None:
    """Give the reservation back (the call failed before costing anything); caller commits."""
    counters.begin_write(session)
    _settle_counters(session, [(reservation, 0, 0)])


def _settle_counters(
    session: Session, spent: Sequence[tuple[Reservation, int, int]], *, after: Part | None = None
) -> None:
    """Give back each reservation's holds and count what its call spent: one UPDATE per counter row.

    `spent`: (reservation, micro, tokens) per call. The moves of every call on one
    (budget, period) row are summed first, then applied in (budget, period) order, the
    order admissions lock them in.
    """
    taken = counters.take_holds_many(
        session.connection(), [reservation.id for reservation, _m, _t in spent], after=after
    )
    moves: dict[tuple[int, str], list[int]] = {}  # reserved micro, reserved tokens, spent micro, spent tokens
    late: dict[tuple[int, str], Reservation] = {}  # rows counted without a hold: may have to be created
    for reservation, spent_micro, spent_tokens in spent:
        holds = taken.get(reservation.id, {})
        for budget_id, key in reservation.budget_periods:
            hold = holds.get(budget_id)
            if hold is None:
                if not (spent_micro or spent_tokens):
                    continue
                # The hold expired and was swept (a very slow call): still count what it cost.
                late.setdefault((budget_id, key), reservation)
            move = moves.setdefault((budget_id, key), [0, 0, 0, 0])
            if hold is not None:
                move[0] -= hold[1]
                move[1] -= hold[2]
            move[2] += spent_micro
            move[3] += spent_tokens
    budgets: dict[tuple[int, int | None, int | None], dict[int, Budget]] = {}

    def budget_of(reservation: Reservation, budget_id: int) -> Budget | None:
        scope = (reservation.team_id, reservation.person_id, reservation.prompt_id)
        if scope not in budgets:
            budgets[scope] = {
                b.id: b
                for b in current_budgets(
                    session,
                    team_id=reservation.team_id,
                    person_id=reservation.person_id,
                    prompt_id=reservation.prompt_id,
                )
            }
        return budgets[scope].get(budget_id)

    any_reservation = {key: reservation for reservation, _m, _t in spent for key in reservation.budget_periods}
    for (budget_id, key), (reserved_micro, reserved_tokens, spent_micro, spent_tokens) in sorted(moves.items()):
        reservation = late.get((budget_id, key))
        if reservation is not None:
            budget = budget_of(reservation, budget_id)
            if budget is None and not (reserved_micro or reserved_tokens):
                continue  # only late spend, on a budget that no longer applies: nothing to count it in
            if budget is not None and counters.read(session, budget_id, key) is None:
                counters.ensure(session, budget, key, reservation.started_at)
        counter = counters.add(
            session.connection(),
            budget_id,
            key,
            reserved_micro=reserved_micro,
            reserved_tokens=reserved_tokens,
            spent_micro=spent_micro,
            spent_tokens=spent_tokens,
        )
        if counter is not None and (spent_micro or spent_tokens):
            budget = budget_of(any_reservation[budget_id, key], budget_id)
            if budget is not None:
                alerts.check(session, budget, key, counter=counter)
