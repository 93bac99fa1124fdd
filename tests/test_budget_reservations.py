"""Reservations: concurrent callers never overspend, and never get refused while it still fits."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlmodel import func, select

from core import clock, db
from core.budgets import config, reservations, settlement
from core.budgets.pricing import Usage
from core.budgets.reservations import BudgetExceeded
from core.errors import NotFound, PermissionDenied, ValidationError
from core.models.budgets import BudgetAlert, BudgetHold, UsageRecord
from tests.budget_support import SYSTEM, counter, ledger_total, make_budget, spend, team_id
from tests.conftest import ON_POSTGRES

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# gpt-4o-mini: $0.15 in, $0.60 out per 1M -> 1,000 in + 1,000 out costs 150 + 600 micro-dollars.
WORST = 750
CALL = {"model": "gpt-4o-mini", "input_tokens_upper_bound": 1000, "max_tokens": 1000}
FULL_USAGE = Usage(input_tokens=1000, output_tokens=1000)


@pytest.fixture
def fixed_clock():
    clock.set_clock(lambda: NOW)
    return NOW


def reserve(session, team, *, through="session", **extra):
    """Admit a call through an ORM session, or as the gateway does ("connection": a plain
    pooled Connection, which on PostgreSQL admits one budget with a single statement)."""
    if through == "connection":
        session.commit()  # the session's read snapshot ends, as the gateway's own work never spans one
        with db.get_engine().connect() as connection:
            return reservations.reserve(session=connection, team_id=team, **{**CALL, **extra})
    return reservations.reserve(session=session, team_id=team, **{**CALL, **extra})


THROUGH = pytest.mark.parametrize("through", ["session", "connection"])


def settle(session, held, usage=FULL_USAGE):
    record = settlement.settle(session=session, reservation=held, usage=usage)
    session.commit()
    return record


@THROUGH
@pytest.mark.parametrize("callers,fits", [(32, 12), (40, 31)])
def test_concurrent_callers_near_the_limit_get_exactly_what_fits(
    session, directory, fixed_clock, callers, fits, through
):
    support = team_id(session)
    budget = make_budget(session, support, cap="1")  # $1 = 1,000,000 micro
    spend(session, support, 1_000_000 - fits * WORST, NOW - timedelta(days=3))
    admitted, refused, errors = [], [], []
    barrier = threading.Barrier(callers)

    def caller():
        own = db.session()
        try:
            barrier.wait()
            held = reserve(own, support, through=through)
            settle(own, held)
            admitted.append(held.id)
        except BudgetExceeded as refusal:
            refused.append(str(refusal))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))
        finally:
            own.close()

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(admitted) == fits and len(refused) == callers - fits
    assert "Over budget" in refused[0] and "$0.000000 left of $1.000000" in refused[0]
    row = counter(session, budget.id, NOW)
    assert row.spent_micro == 1_000_000 and row.reserved_micro == 0
    assert ledger_total(session) == 1_000_000
    alerts = session.exec(select(BudgetAlert.threshold_pct).where(BudgetAlert.budget_id == budget.id)).all()
    assert sorted(alerts) == [50, 80, 100]


@THROUGH
def test_reservations_hold_until_settled_and_a_release_gives_them_back(session, directory, fixed_clock, through):
    support = team_id(session)
    budget = make_budget(session, support, cap="0.0015")  # exactly two worst cases
    first, second = reserve(session, support, through=through), reserve(session, support, through=through)
    with pytest.raises(BudgetExceeded):
        reserve(session, support, through=through)
    assert session.exec(select(func.count()).select_from(BudgetHold)).one() == 2  # the refused one holds nothing
    settlement.release(session=session, reservation=second)
    session.commit()
    assert counter(session, budget.id, NOW).reserved_micro == WORST
    third = reserve(session, support, through=through)
    # Settling for less than the worst case frees the difference at once.
    settle(session, first, Usage(input_tokens=100, output_tokens=10))
    row = counter(session, budget.id, NOW)
    assert (row.spent_micro, row.reserved_micro) == (15 + 6, WORST)
    settle(session, third)
    assert ledger_total(session) == 21 + WORST


@THROUGH
def test_a_crashed_callers_reservation_expires_and_stops_counting(session, directory, through):
    moment = [NOW]
    clock.set_clock(lambda: moment[0])
    support = team_id(session)
    budget = make_budget(session, support, cap="0.00075")  # one worst case
    reserve(session, support, ttl=timedelta(minutes=5), through=through)  # never settled: the process "crashed"
    with pytest.raises(BudgetExceeded):
        reserve(session, support, through=through)
    moment[0] = NOW + timedelta(minutes=6)
    held = reserve(session, support, through=through)
    assert counter(session, budget.id, NOW).reserved_micro == WORST
    assert session.exec(select(func.count()).select_from(BudgetHold)).one() == 1
    settle(session, held)
    assert counter(session, budget.id, NOW).spent_micro == WORST


def test_a_settle_after_expiry_still_counts_the_cost(session, directory):
    moment = [NOW]
    clock.set_clock(lambda: moment[0])
    support = team_id(session)
    budget = make_budget(session, support, cap="1")
    slow = reserve(session, support, ttl=timedelta(seconds=1))
    moment[0] = NOW + timedelta(minutes=1)
    other = reserve(session, support)  # sweeps the slow call's hold
    settle(session, slow)
    settle(session, other)
    row = counter(session, budget.id, NOW)
    assert (row.spent_micro, row.reserved_micro) == (2 * WORST, 0)


def test_calls_settled_together_move_the_counter_once_and_count_one_whose_hold_expired(session, directory):
    moment = [NOW]
    clock.set_clock(lambda: moment[0])
    support = team_id(session)
    budget = make_budget(session, support, cap="1")
    slow = reserve(session, support, ttl=timedelta(seconds=1))
    moment[0] = NOW + timedelta(minutes=1)
    first, second = reserve(session, support), reserve(session, support)  # the first sweeps the slow hold
    assert counter(session, budget.id, NOW).reserved_micro == 2 * WORST
    updates = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE budget_period"):
            updates.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        rows = settlement.settle_many(
            session=session,
            settlements=[
                settlement.Settlement(first, FULL_USAGE, request_id="req-1"),
                settlement.Settlement(slow, FULL_USAGE, request_id="req-slow"),
                settlement.Settlement(second, Usage(input_tokens=1000, output_tokens=0), request_id="req-2"),
            ],
        )
        session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [r["request_id"] for r in rows] == ["req-1", "req-slow", "req-2"]
    assert len(updates) == 1  # one counter row, moved once for the three calls
    row = counter(session, budget.id, NOW)
    assert (row.spent_micro, row.reserved_micro) == (2 * WORST + 150, 0)
    assert ledger_total(session) == 2 * WORST + 150
    assert session.exec(select(BudgetHold)).all() == []


def test_settle_joins_the_callers_transaction(session, directory, fixed_clock):
    support = team_id(session)
    budget = make_budget(session, support, cap="1")
    held = reserve(session, support)
    settlement.settle(session=session, reservation=held, usage=FULL_USAGE, request_id="req-1")
    session.rollback()  # e.g. the gateway's audit write failed
    assert ledger_total(session) == 0
    assert counter(session, budget.id, NOW).spent_micro == 0
    settle(session, held)
    assert session.exec(select(UsageRecord.cost_micro)).all() == [WORST]


def test_the_person_budget_refuses_and_the_team_budget_keeps_nothing(session, directory, fixed_clock):
    support = team_id(session)
    tom = directory.by_email("tom.becker@example.com").person_id
    team_budget = make_budget(session, support, cap="1")
    make_budget(session, tom, scope="person", cap="0.0005")
    with pytest.raises(BudgetExceeded, match="person budget person:"):
        reserve(session, support, person_id=tom)
    row = counter(session, team_budget.id, NOW)
    assert row is None or row.reserved_micro == 0
    held = reserve(session, support, person_id=tom, max_tokens=100)  # 150 + 60 micro fits
    assert len(held.budget_periods) == 2


def test_the_prompt_budget_counts_calls_of_that_prompt_only(session, directory, fixed_clock):
    support = team_id(session)
    make_budget(session, 42, scope="prompt", cap="0.00075")
    settle(session, reserve(session, support, prompt_id=42))
    with pytest.raises(BudgetExceeded, match="prompt budget prompt:42"):
        reserve(session, support, prompt_id=42)
    reserve(session, support, prompt_id=7)


@THROUGH
def test_token_caps_are_enforced_like_money(session, directory, fixed_clock, through):
    support = team_id(session)
    make_budget(session, support, cap=None, cap_tokens=5000)
    settle(session, reserve(session, support, through=through))
    settle(session, reserve(session, support, through=through))
    with pytest.raises(BudgetExceeded, match="1,000 tokens left of 5,000"):
        reserve(session, support, through=through)


@THROUGH
def test_each_new_period_starts_its_counter_at_its_first_admission(session, directory, through):
    moment = [NOW]
    clock.set_clock(lambda: moment[0])
    support = team_id(session)
    budget = make_budget(session, support, cap="0.0015")
    settle(session, reserve(session, support, through=through))
    settle(session, reserve(session, support, through=through))
    with pytest.raises(BudgetExceeded):
        reserve(session, support, through=through)
    moment[0] = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)  # a month budget: the next period
    held = reserve(session, support, through=through)
    assert held.budget_periods == ((budget.id, "2026-12"),)
    assert counter(session, budget.id, moment[0]).reserved_micro == WORST
    assert counter(session, budget.id, NOW).spent_micro == 2 * WORST


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's single-statement admission")
def test_the_gateways_admission_of_one_budget_is_one_statement_on_postgresql(session, directory, fixed_clock):
    support = team_id(session)
    budget = make_budget(session, support, cap="1")
    reserve(session, support, through="connection")  # the first one sweeps expired holds first
    sent = []
    engine = db.get_engine()

    def record(_connection, _cursor, statement, *_rest):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        held = reserve(session, support, through="connection")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(sent) == 1 and "budget_hold" in sent[0] and "budget_period" in sent[0]
    holds = session.exec(select(BudgetHold).where(BudgetHold.reservation_id == held.id)).all()
    assert [(h.budget_id, h.amount_micro) for h in holds] == [(budget.id, WORST)]
    assert counter(session, budget.id, NOW).reserved_micro == 2 * WORST


def test_max_tokens_is_lowered_when_the_team_allows_it(session, directory, fixed_clock):
    support = team_id(session)
    budget = make_budget(session, support, cap="0.0005")  # 500 micro: input bound 150, leaves 350
    with pytest.raises(BudgetExceeded):
        reserve(session, support)
    config.set_team_policy(session=session, actor=SYSTEM, team_id=support, allowed_models=[], lower_max_tokens=True)
    held = reserve(session, support)
    assert held.lowered and held.max_tokens == 583  # floor(350e6 / 600_000)
    assert held.worst_case_micro <= 500
    assert counter(session, budget.id, NOW).reserved_micro == held.worst_case_micro


def test_the_per_request_cap_refuses_an_expensive_call(session, directory, fixed_clock):
    support = team_id(session)
    make_budget(session, support, cap="100", max_request_usd="0.0005")
    with pytest.raises(BudgetExceeded, match="above the per-request cap of \\$0.000500"):
        reserve(session, support)
    assert reserve(session, support, max_tokens=500).max_tokens == 500


def test_a_soft_budget_admits_past_its_cap_and_alerts(session, directory, fixed_clock):
    support = team_id(session)
    budget = make_budget(session, support, cap="0.00075", hard=False)
    settle(session, reserve(session, support))
    settle(session, reserve(session, support))
    assert counter(session, budget.id, NOW).spent_micro == 2 * WORST
    assert sorted(session.exec(select(BudgetAlert.threshold_pct)).all()) == [50, 80, 100]


def test_a_model_outside_the_teams_allow_list_is_refused(session, directory, fixed_clock):
    support = team_id(session)
    config.set_team_policy(
        session=session, actor=SYSTEM, team_id=support, allowed_models=["gpt-4.1-mini"], lower_max_tokens=False
    )
    with pytest.raises(PermissionDenied, match="may not use model 'gpt-4o-mini'; allowed: gpt-4.1-mini"):
        reserve(session, support)
    reserve(session, support, model="gpt-4.1-mini-2025-04-14")  # a snapshot of an allowed model


def test_a_model_with_no_price_is_refused_naming_it(session, directory, fixed_clock):
    support = team_id(session)
    with pytest.raises(NotFound, match="No price for model 'gpt-7-turbo'"):
        reserve(session, support, model="gpt-7-turbo")
    assert session.exec(select(func.count()).select_from(BudgetHold)).one() == 0


def test_bad_requests_are_refused_clearly(session, directory, fixed_clock):
    support = team_id(session)
    with pytest.raises(ValidationError, match="max_tokens must be a whole number above 0"):
        reserve(session, support, max_tokens=0)
    with pytest.raises(ValidationError, match="messages or an input token bound"):
        reservations.reserve(session=session, team_id=support, model="gpt-4o-mini", max_tokens=10)


def test_messages_are_bounded_offline(session, directory, fixed_clock):
    support = team_id(session)
    held = reservations.reserve(
        session=session,
        team_id=support,
        model="gpt-4o-mini",
        max_tokens=10,
        messages=[{"role": "user", "content": "Hello there"}],
    )
    assert 11 < held.input_tokens_upper_bound < 100
