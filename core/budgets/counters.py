"""The per-(budget, period) counter rows and the statements that move them.

Every admission is one conditional UPDATE (`... WHERE spent + reserved + x <= cap`), so it
is atomic on PostgreSQL (row lock, condition re-checked on the latest row version) and on
SQLite (one writer at a time) alike, and stays correct across several Quorum servers.
A period's row is created on first use, race-safe (INSERT ... ON CONFLICT DO NOTHING),
starting from what the ledger already holds for that period. On PostgreSQL, the gateway's
admission of a call under one budget sends the UPDATE and the hold's INSERT as one statement
(`try_reserve_with_hold`): the hold is written only if the counter moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.budgets import periods
from core.models.budgets import Budget, BudgetHold, BudgetPeriod, UsageRecord
from core.prebuilt import Prebuilt
from core.together import Part, run_together

PERIOD = BudgetPeriod.__table__
HOLD = BudgetHold.__table__
LEDGER = UsageRecord.__table__
SWEEP_BATCH = 100


@dataclass(frozen=True)
class Counter:
    spent_micro: int
    reserved_micro: int
    spent_tokens: int
    reserved_tokens: int


def begin_write(session: Session | Connection) -> None:
    """On SQLite, start the transaction with the write lock (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes fails at once when another writer
    committed in between; taking the lock first makes concurrent callers queue instead.
    Does nothing when already in a transaction or on PostgreSQL. A plain Connection (the
    gateway's admission, without an ORM session) starts its transaction on its next statement.
    """
    if session.in_transaction():
        return
    if isinstance(session, Connection):
        session.execution_options(quorum_write=True)
        return
    session.connection(execution_options={"quorum_write": True})


def connection_of(session: Session | Connection) -> Connection:
    """The Connection a statement runs on: the session's transaction's, or the Connection itself."""
    return session if isinstance(session, Connection) else session.connection()


def read(session: Session | Connection, budget_id: int, key: str) -> Counter | None:
    row = session.execute(
        select(PERIOD.c.spent_micro, PERIOD.c.reserved_micro, PERIOD.c.spent_tokens, PERIOD.c.reserved_tokens).where(
            PERIOD.c.budget_id == budget_id, PERIOD.c.period_key == key
        )
    ).first()
    return Counter(*row) if row else None


def ensure(session: Session | Connection, budget: Budget, key: str, instant: datetime) -> None:
    """Create the period's counter if missing, with the ledger's spend so far in that period."""
    bounds = periods.period_at(budget.period, instant)
    scope_column = {"team": LEDGER.c.team_id, "person": LEDGER.c.person_id, "prompt": LEDGER.c.prompt_id}[budget.scope]
    target = {"team": budget.team_id, "person": budget.person_id, "prompt": budget.prompt_id}[budget.scope]
    totals = select(
        # Typed casts: PostgreSQL cannot infer the type of a bare parameter in a select list.
        cast(literal(budget.id), Integer),
        cast(literal(key), String),
        func.coalesce(func.sum(LEDGER.c.cost_micro), 0),
        cast(literal(0), BigInteger),
        func.coalesce(func.sum(LEDGER.c.input_tokens + LEDGER.c.output_tokens), 0),
        cast(literal(0), BigInteger),
    ).where(scope_column == target, LEDGER.c.occurred_at >= bounds.start, LEDGER.c.occurred_at < bounds.end)
    dialect_insert = postgresql.insert if connection_of(session).dialect.name == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(PERIOD)
        .from_select(
            ["budget_id", "period_key", "spent_micro", "reserved_micro", "spent_tokens", "reserved_tokens"], totals
        )
        .on_conflict_do_nothing(index_elements=["budget_id", "period_key"])
    )
    session.execute(statement)


def _reserve_statement(money_cap: bool, token_cap: bool):
    statement = (
        update(PERIOD)
        .where(PERIOD.c.budget_id == bindparam("b_id"), PERIOD.c.period_key == bindparam("b_key"))
        .values(
            reserved_micro=PERIOD.c.reserved_micro + bindparam("b_micro"),
            reserved_tokens=PERIOD.c.reserved_tokens + bindparam("b_tokens"),
        )
    )
    if money_cap:
        statement = statement.where(
            PERIOD.c.spent_micro + PERIOD.c.reserved_micro + bindparam("b_micro") <= bindparam("b_cap_micro")
        )
    if token_cap:
        statement = statement.where(
            PERIOD.c.spent_tokens + PERIOD.c.reserved_tokens + bindparam("b_tokens") <= bindparam("b_cap_tokens")
        )
    return statement


# Built once: constructing a statement costs more Python time than SQLite takes to run it.
# Prebuilt (core.prebuilt): the admission and the settle run them for every call or batch.
_RESERVE = {(m, t): Prebuilt(_reserve_statement(m, t)) for m in (False, True) for t in (False, True)}
_ADD = Prebuilt(
    update(PERIOD)
    .where(PERIOD.c.budget_id == bindparam("b_id"), PERIOD.c.period_key == bindparam("b_key"))
    .values(
        reserved_micro=PERIOD.c.reserved_micro + bindparam("d_reserved_micro"),
        reserved_tokens=PERIOD.c.reserved_tokens + bindparam("d_reserved_tokens"),
        spent_micro=PERIOD.c.spent_micro + bindparam("d_spent_micro"),
        spent_tokens=PERIOD.c.spent_tokens + bindparam("d_spent_tokens"),
    )
    .returning(PERIOD.c.spent_micro, PERIOD.c.reserved_micro, PERIOD.c.spent_tokens, PERIOD.c.reserved_tokens)
)
_TAKE_HOLDS = Prebuilt(  # every settled call without a batch-mate runs it
    delete(HOLD)
    .where(HOLD.c.reservation_id == bindparam("r_id"))
    .returning(HOLD.c.budget_id, HOLD.c.period_key, HOLD.c.amount_micro, HOLD.c.amount_tokens)
)
_TAKE_HOLDS_MANY = (
    delete(HOLD)
    .where(HOLD.c.reservation_id.in_(bindparam("r_ids", expanding=True)))
    .returning(HOLD.c.reservation_id, HOLD.c.budget_id, HOLD.c.period_key, HOLD.c.amount_micro, HOLD.c.amount_tokens)
)
# PostgreSQL's form of _TAKE_HOLDS_MANY: one array parameter, so the statement's text (and the
# server's prepared plan) does not change with the number of calls settled.
_TAKE_HOLDS_ANY = Prebuilt(
    delete(HOLD)
    .where(HOLD.c.reservation_id == any_(bindparam("r_ids", type_=postgresql.ARRAY(String))))
    .returning(HOLD.c.reservation_id, HOLD.c.budget_id, HOLD.c.period_key, HOLD.c.amount_micro, HOLD.c.amount_tokens)
)
_INSERT_HOLD = Prebuilt(insert(HOLD))
_HOLD_COLUMNS = ("reservation_id", "budget_id", "period_key", "amount_micro", "amount_tokens", "expires_at")


def _reserve_with_hold_statement(money_cap: bool, token_cap: bool):
    """The counter's conditional UPDATE and, only for the row it moved, the hold's INSERT."""
    reserved = _reserve_statement(money_cap, token_cap).returning(PERIOD.c.budget_id, PERIOD.c.period_key)
    moved = reserved.cte("reserved")
    hold = select(
        bindparam("h_reservation_id", type_=HOLD.c.reservation_id.type),
        moved.c.budget_id,
        moved.c.period_key,
        bindparam("h_micro", type_=BigInteger),
        bindparam("h_tokens", type_=BigInteger),
        bindparam("h_expires_at", type_=HOLD.c.expires_at.type),
    )
    return insert(HOLD).from_select(list(_HOLD_COLUMNS), hold)


_RESERVE_WITH_HOLD = {
    (m, t): Prebuilt(_reserve_with_hold_statement(m, t)) for m in (False, True) for t in (False, True)
}


def try_reserve(session: Session | Connection, budget: Budget, key: str, micro: int, tokens: int) -> bool:
    """Add to `reserved` if it still fits under the caps (hard budgets); False when it does not."""
    caps, params = _reserve_parameters(budget, key, micro, tokens)
    # The transaction's Connection: the ORM's execute path costs more than the UPDATE.
    return _RESERVE[caps].execute(connection_of(session), params) == 1


def _reserve_parameters(budget: Budget, key: str, micro: int, tokens: int) -> tuple[tuple[bool, bool], dict]:
    """Which caps the conditional UPDATE checks (hard budgets only), and its parameters."""
    money_cap = budget.hard and budget.cap_micro is not None
    token_cap = budget.hard and budget.cap_tokens is not None
    params = {"b_id": budget.id, "b_key": key, "b_micro": micro, "b_tokens": tokens}
    if money_cap:
        params["b_cap_micro"] = budget.cap_micro
    if token_cap:
        params["b_cap_tokens"] = budget.cap_tokens
    return (money_cap, token_cap), params


def try_reserve_with_hold(
    connection: Connection, budget: Budget, key: str, micro: int, tokens: int, reservation_id: str, expires_at: datetime
) -> bool:
    """PostgreSQL, on a Connection outside a transaction: `try_reserve` and the reservation's
    hold as one statement that commits on its own, one round trip instead of four (BEGIN, the
    hold, the counter, COMMIT). The counter row stays locked only while the server runs it.
    False, with nothing written, when the row does not exist yet or the call does not fit."""
    caps, params = _reserve_parameters(budget, key, micro, tokens)
    params.update(h_reservation_id=reservation_id, h_micro=micro, h_tokens=tokens, h_expires_at=expires_at)
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        admitted = _RESERVE_WITH_HOLD[caps].execute(connection, params) == 1
        connection.commit()  # SQLAlchemy's transaction; the server committed the statement already
    except BaseException:
        # The statement's own error goes up; closing the connection restores its isolation.
        connection.rollback()
        raise
    # Back to transactions: `_admit` may go on with this connection.
    connection.execution_options(isolation_level=connection.default_isolation_level)
    return admitted


def add(
    session: Session | Connection,
    budget_id: int,
    key: str,
    *,
    reserved_micro: int = 0,
    reserved_tokens: int = 0,
    spent_micro: int = 0,
    spent_tokens: int = 0,
) -> Counter | None:
    """Move a counter unconditionally (settling, releasing, sweeping); the counter after, None if no row."""
    rows = _ADD.fetchall(
        connection_of(session),
        {
            "b_id": budget_id,
            "b_key": key,
            "d_reserved_micro": reserved_micro,
            "d_reserved_tokens": reserved_tokens,
            "d_spent_micro": spent_micro,
            "d_spent_tokens": spent_tokens,
        },
    )
    return Counter(*rows[0]) if rows else None


def insert_holds(session: Session | Connection, rows: list[dict]) -> None:
    """Record a reservation's holds (one per budget) with one Core statement."""
    _INSERT_HOLD.execute(connection_of(session), rows)


def take_holds(session: Session | Connection, reservation_id: str) -> dict[int, tuple[str, int, int]]:
    """Delete a reservation's holds; {budget id: (period, micro, tokens)} of those this call deleted.

    Only the transaction whose DELETE removed a row gives its amount back (a sweeper
    racing us for an expired hold gets nothing back from RETURNING).
    """
    return take_holds_many(connection_of(session), [reservation_id])[reservation_id]


def take_holds_many(
    connection: Connection, reservation_ids: list[str], *, after: Part | None = None
) -> dict[str, dict[int, tuple[str, int, int]]]:
    """`take_holds` for several reservations with one DELETE: {reservation id: {budget id: (period, micro, tokens)}}.

    `after`: a statement to run first, in the same statement on PostgreSQL (core.together: the
    settle's ledger INSERT, new rows nobody else knows of; the holds are the calls' own)."""
    before = [after] if after is not None else []
    taken: dict[str, dict[int, tuple[str, int, int]]] = {}
    if len(reservation_ids) == 1:
        rows = run_together(connection, [*before, (_TAKE_HOLDS, {"r_id": reservation_ids[0]})], fetch=True)
        taken[reservation_ids[0]] = {budget_id: (key, micro, tokens) for budget_id, key, micro, tokens in rows}
        return taken
    if connection.dialect.name == "postgresql":
        rows = run_together(connection, [*before, (_TAKE_HOLDS_ANY, {"r_ids": reservation_ids})], fetch=True)
    else:
        run_together(connection, before)
        rows = connection.execute(_TAKE_HOLDS_MANY, {"r_ids": reservation_ids}).all()
    for reservation_id, budget_id, key, micro, tokens in rows:
        taken.setdefault(reservation_id, {})[budget_id] = (key, micro, tokens)
    return taken


def sweep_expired(session: Session | Connection, budget_id: int, now: datetime) -> int:
    """Give back the holds of reservations that expired (a crashed caller); returns how many.

    The holds are deleted first and the counter moved after, the order in which a settle
    takes its hold and then its counter: the opposite order deadlocks on PostgreSQL with a
    settle of a call that outlived its hold (the sweeper holding the counter and waiting for
    the hold, the settle holding the hold and waiting for the counter).
    """
    # Locked in id order, skipping those another transaction is taking (a settle, another
    # sweeper): two sweepers never wait on each other in opposite orders.
    expired = (
        session.execute(
            select(HOLD.c.id)
            .where(HOLD.c.budget_id == budget_id, HOLD.c.expires_at < now)
            .order_by(HOLD.c.id)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not expired:
        return 0
    rows = session.execute(
        delete(HOLD)
        .where(HOLD.c.id.in_(expired))
        .returning(HOLD.c.period_key, HOLD.c.amount_micro, HOLD.c.amount_tokens)
    ).all()
    given_back: dict[str, list[int]] = {}
    for row in rows:  # only the holds this DELETE removed: a settle that took one first keeps it
        totals = given_back.setdefault(row.period_key, [0, 0])
        totals[0] += row.amount_micro
        totals[1] += row.amount_tokens
    for key in sorted(given_back):
        micro, tokens = given_back[key]
        add(session, budget_id, key, reserved_micro=-micro, reserved_tokens=-tokens)
    return len(rows)
