"""Budget reservations: admit a call only if its worst case fits every budget it counts against.

The gateway's sequence for one call::

    held = reserve(session=s, team_id=..., model=..., messages=..., max_tokens=...)  # commits
    ... upstream call with max_tokens=held.max_tokens ...
    record = settlement.settle(session=s, reservation=held, usage=usage, latency_ms=..., request_id=...)
    audit.record(s, ...); s.add(stored_payload)   # the gateway's own rows
    s.commit()                                     # ledger row, counters, alerts, audit: together

or, when the upstream call fails, ``settlement.release(session=s, reservation=held); s.commit()``
(core/budgets/settlement.py).

`reserve` commits its own short transaction (the admission must be visible to every other
caller at once). `settle` and `release` add their changes to the caller's transaction and
never commit, so the ledger row, the audit event and the stored payload of a call are
written together or not at all. Reservations of a process that died before settling
expire after `ttl` and stop counting: the next `reserve` on the same budget sweeps them.

These functions are steps of the one data flow, not people's actions: the gateway has
already checked the caller's permission, and the audit event is the gateway's to write
with the settled call.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session

from core import clock
from core.budgets import counters, hot_cache, periods
from core.budgets.config import BudgetRule as Budget
from core.budgets.config import TeamPolicy, applicable_budgets, team_policy
from core.budgets.money import format_micro
from core.budgets.prices import price_book
from core.budgets.pricing import Price, PriceBook, worst_case_cost_micro
from core.budgets.tokens import chat_input_tokens_upper_bound
from core.errors import BudgetExceeded, PermissionDenied, ValidationError

DEFAULT_TTL = timedelta(minutes=10)
# Fewer output tokens than this are not worth a call: refuse rather than lower further.
MIN_LOWERED_MAX_TOKENS = 16
_LOWERING_ATTEMPTS = 3


@dataclass(frozen=True)
class Reservation:
    """What `reserve` granted; hand it to `settle` or `release`."""

    id: str
    team_id: int
    person_id: int | None
    key_id: int | None
    prompt_id: int | None
    prompt_version_id: int | None
    model: str
    started_at: datetime
    input_tokens_upper_bound: int
    max_tokens: int  # granted: may be lower than asked when the team allows lowering
    requested_max_tokens: int
    worst_case_micro: int
    worst_case_tokens: int
    budget_periods: tuple[tuple[int, str], ...]  # (budget id, period key) held

    @property
    def lowered(self) -> bool:
        return self.max_tokens < self.requested_max_tokens


def reserve(
    *,
    session: Session | Connection,
    team_id: int,
    model: str,
    max_tokens: int,
    messages: Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
    input_tokens_upper_bound: int | None = None,
    person_id: int | None = None,
    key_id: int | None = None,
    prompt_id: int | None = None,
    prompt_version_id: int | None = None,
    ttl: timedelta = DEFAULT_TTL,
    no_output: bool = False,
    within: Callable[[Connection, int], None] | None = None,
) -> Reservation:
    """Hold the call's worst-case cost in every applicable budget, or raise (nothing held).

    ``no_output``: the call produces no output tokens (embeddings); ``max_tokens`` is ignored.
    ``within(connection, granted_max_tokens)``: work done in the admission's transaction,
    after the call is admitted (the gateway's rate-limit count and response-cache lookup ride
    along instead of opening transactions of their own); it runs once, also when no budget
    applies, and what it writes commits with the admission; an error it raises refuses the
    call with nothing held.
    ``session``: an ORM session, or a plain Connection (the gateway's admission: the cached
    settings are read without either, and the admission's statements are Core statements,
    so a Connection spares the session's bookkeeping on every call).
    Raises PermissionDenied (model not allowed for the team), NotFound (no price for the
    model: fail closed), BudgetExceeded (does not fit), ValidationError (bad input).
    """
    if no_output:  # embeddings: input tokens only
        max_tokens = 0
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise ValidationError(f"max_tokens must be a whole number above 0 (got {max_tokens!r})")
    if input_tokens_upper_bound is None:
        if messages is None:
            raise ValidationError("reserve needs the messages or an input token bound")
        input_tokens_upper_bound = chat_input_tokens_upper_bound(
            messages=messages, tools=tools, response_format=response_format
        )
    now = clock.now()
    try:
        policy = current_team_policy(session, team_id)
        book = current_price_book(session)
        # Kept although the gateway refuses a model earlier (adapters.BudgetsGate.check_model):
        # reserve is the budgets context's own guard for every caller, as every state change
        # checks its permission itself. It reads the same short-lived copy as the gateway's
        # check, not a row locked by the admission below, so it is not the more current one.
        if policy.allowed_models and book.resolve_model(model) not in {
            book.resolve_model(m) for m in policy.allowed_models
        }:
            raise PermissionDenied(f"The team may not use model {model!r}; allowed: {', '.join(policy.allowed_models)}")
        price = book.price_at(model, now)
        budgets = current_budgets(session, team_id=team_id, person_id=person_id, prompt_id=prompt_id)
    finally:
        if session.in_transaction():
            session.rollback()  # end a read snapshot (cache miss): the admission below starts fresh

    def worst(tokens_out: int) -> int:
        return worst_case_cost_micro(price, input_tokens_upper_bound, tokens_out)

    granted = max_tokens
    for budget in budgets:
        if budget.max_request_micro is not None and worst(granted) > budget.max_request_micro:
            if not policy.lower_max_tokens:
                raise BudgetExceeded(
                    f"The call could cost up to {format_micro(worst(granted))}, above the per-request cap of "
                    f"{format_micro(budget.max_request_micro)} ({_label(budget)}); lower max_tokens"
                )
            granted = _affordable(price, input_tokens_upper_bound, budget.max_request_micro, None, granted)

    reservation_id = str(uuid.uuid4())
    if not budgets and within is not None:
        try:
            within(counters.connection_of(session), granted)
            session.commit()  # what ``within`` wrote (the gateway's rate-limit count) stands
        except BaseException:
            session.rollback()
            raise
    for _attempt in range(_LOWERING_ATTEMPTS):
        admitted_read = (lambda connection, tokens=granted: within(connection, tokens)) if within else None
        refusal = _admit(
            session,
            budgets,
            reservation_id,
            now,
            ttl,
            worst(granted),
            input_tokens_upper_bound + granted,
            before_commit=admitted_read,
        )
        if refusal is None:
            break
        budget, left = refusal
        lowered = (
            _affordable(price, input_tokens_upper_bound, _left_micro(budget, left), _left_tokens(budget, left), granted)
            if policy.lower_max_tokens
            else 0
        )
        if lowered < MIN_LOWERED_MAX_TOKENS or lowered >= granted:
            raise BudgetExceeded(
                _refusal_message(budget, left, worst(granted)), resets_at=periods.period_at(budget.period, now).end
            )
        granted = lowered
    else:
        raise BudgetExceeded(
            f"The budget is too busy to admit this call now ({_label(budget)}); try again", resets_at=now
        )

    return Reservation(
        id=reservation_id,
        team_id=team_id,
        person_id=person_id,
        key_id=key_id,
        prompt_id=prompt_id,
        prompt_version_id=prompt_version_id,
        model=model,
        started_at=now,
        input_tokens_upper_bound=input_tokens_upper_bound,
        max_tokens=granted,
        requested_max_tokens=max_tokens,
        worst_case_micro=worst(granted),
        worst_case_tokens=input_tokens_upper_bound + granted,
        budget_periods=tuple((b.id, periods.period_key(b.period, now)) for b in budgets),
    )


def _admit(
    session: Session | Connection,
    budgets: list[Budget],
    reservation_id: str,
    now: datetime,
    ttl: timedelta,
    micro: int,
    tokens: int,
    before_commit: Callable[[Connection], None] | None = None,
) -> tuple[Budget, counters.Counter] | None:
    """One transaction: hold `micro`/`tokens` in every budget, or in none (returns the refusing one).

    The common case is one conditional UPDATE per budget and one INSERT of the holds, then
    `before_commit` (a read on the transaction's connection) once all budgets admitted; the
    gateway's commonest one on PostgreSQL (one budget, nothing else to write) is a single
    statement that commits on its own (`_one_statement_admits`).
    Expired holds only make admission stricter, so they are swept when an admission is
    refused and otherwise at most every `SWEEP_EVERY` (or `ttl`, when shorter) per budget.
    """
    if not budgets:
        return None
    every = min(SWEEP_EVERY, ttl)
    if _one_statement_admits(session, budgets, reservation_id, now, every, ttl, micro, tokens, before_commit):
        return None
    sweep_all = False
    while True:
        try:
            counters.begin_write(session)
            # Expired holds first, before any counter row is locked: a settle takes its hold and
            # then its counter, and the same order here cannot deadlock with it on PostgreSQL.
            swept = {b.id: _sweep_if_due(session, b.id, now, every=every, force=sweep_all) for b in budgets}
            keys = [periods.period_key(budget.period, now) for budget in budgets]
            # The holds before the counters: a counter row stays locked from its update to the
            # commit, and every admission and write-back of the team waits for it (PostgreSQL).
            counters.insert_holds(
                session,
                [
                    {
                        "reservation_id": reservation_id,
                        "budget_id": budget.id,
                        "period_key": key,
                        "amount_micro": micro,
                        "amount_tokens": tokens,
                        "expires_at": now + ttl,
                    }
                    for budget, key in zip(budgets, keys, strict=True)
                ],
            )
            for index, (budget, key) in enumerate(zip(budgets, keys, strict=True)):  # id order: locked alike
                if not counters.try_reserve(session, budget, key, micro, tokens):
                    # Room held by expired reservations, no row yet (a new period), or one another
                    # caller created after our UPDATE began: sweep, make sure the row exists, and
                    # decide on a second UPDATE, which sees it.
                    if not swept[budget.id]:
                        if index:  # earlier budgets' counters are locked: start over, sweeping first
                            session.rollback()
                            sweep_all = True
                            break
                        counters.sweep_expired(session, budget.id, now)
                    if counters.read(session, budget.id, key) is None:
                        counters.ensure(session, budget, key, now)
                    if not counters.try_reserve(session, budget, key, micro, tokens):
                        left = counters.read(session, budget.id, key)
                        session.rollback()
                        return budget, left
            else:
                if before_commit is not None:
                    before_commit(counters.connection_of(session))
                session.commit()
                return None
        except BaseException:
            session.rollback()
            raise


def _one_statement_admits(
    session: Session | Connection,
    budgets: list[Budget],
    reservation_id: str,
    now: datetime,
    every: timedelta,
    ttl: timedelta,
    micro: int,
    tokens: int,
    before_commit: Callable[[Connection], None] | None,
) -> bool:
    """The gateway's common case on PostgreSQL in one statement (`counters.try_reserve_with_hold`):
    one budget, nothing else to write with it, no sweep due. False when that case does not
    apply or the statement did not admit; nothing was written then, and `_admit` decides."""
    if len(budgets) != 1 or before_commit is not None or not isinstance(session, Connection):
        return False
    if session.dialect.name != "postgresql" or session.in_transaction():
        return False
    budget = budgets[0]
    last = _last_sweep.get(budget.id)
    if last is None or not last <= now < last + every:
        return False  # a sweep is due: `_admit` sweeps first
    key = periods.period_key(budget.period, now)
    return counters.try_reserve_with_hold(session, budget, key, micro, tokens, reservation_id, now + ttl)


SWEEP_EVERY = timedelta(seconds=30)
_last_sweep: dict[int, datetime] = {}


def _sweep_if_due(
    session: Session | Connection,
    budget_id: int,
    now: datetime,
    *,
    every: timedelta = SWEEP_EVERY,
    force: bool = False,
) -> bool:
    # No hold can expire sooner than its ttl after it was made: a short ttl is swept as often.
    last = _last_sweep.get(budget_id)
    if not force and last is not None and last <= now < last + every:
        return False
    counters.sweep_expired(session, budget_id, now)
    _last_sweep[budget_id] = now
    return True


# ---- the settings every call reads, cached (see hot_cache) ----------------------------------


# `session` None (or a plain Connection): the configured database's, read through a session
# of its own only when the cached value must be loaded.


def current_team_policy(session: Session | Connection | None, team_id: int) -> TeamPolicy:
    return hot_cache.cached(session, ("policy", team_id), lambda s: team_policy(s, team_id))


def current_price_book(session: Session | Connection | None = None) -> PriceBook:
    """The price book with the database overrides (cached for a few seconds)."""
    return hot_cache.cached(session, ("prices",), price_book)


def current_budgets(
    session: Session | Connection | None, *, team_id: int, person_id: int | None, prompt_id: int | None
) -> list[Budget]:
    return hot_cache.cached(
        session,
        ("budgets", team_id, person_id, prompt_id),
        lambda s: applicable_budgets(s, team_id=team_id, person_id=person_id, prompt_id=prompt_id),
    )


def _affordable(price: Price, input_bound: int, left_micro: int | None, left_tokens: int | None, cap: int) -> int:
    """The most output tokens whose worst case fits `left_micro` and `left_tokens` (at most `cap`)."""
    best = cap
    if left_micro is not None:
        out_price = price.output_micro_per_1m or 0
        room = left_micro * 1_000_000 - input_bound * price.input_micro_per_1m
        if room < 0:
            return 0
        if out_price:
            best = min(best, room // out_price)
    if left_tokens is not None:
        best = min(best, left_tokens - input_bound)
    return max(0, best)


def _left_micro(budget: Budget, counter: counters.Counter | None) -> int | None:
    if budget.cap_micro is None:
        return None
    used = counter.spent_micro + counter.reserved_micro if counter else 0
    return max(0, budget.cap_micro - used)


def _left_tokens(budget: Budget, counter: counters.Counter | None) -> int | None:
    if budget.cap_tokens is None:
        return None
    used = counter.spent_tokens + counter.reserved_tokens if counter else 0
    return max(0, budget.cap_tokens - used)


def _label(budget: Budget) -> str:
    return f"{budget.scope} budget {budget.scope_key}"


def _refusal_message(budget: Budget, counter: counters.Counter | None, worst: int) -> str:
    parts = []
    left_micro, left_tokens = _left_micro(budget, counter), _left_tokens(budget, counter)
    if left_micro is not None:
        parts.append(f"{format_micro(left_micro)} left of {format_micro(budget.cap_micro)}")
    if left_tokens is not None:
        parts.append(f"{left_tokens:,} tokens left of {budget.cap_tokens:,}")
    return (
        f"Over budget: the call could cost up to {format_micro(worst)}, but the {_label(budget)} "
        f"has {' and '.join(parts)} this {budget.period}"
    )
