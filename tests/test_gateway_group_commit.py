"""Group commit of the gateway's write-back, attacked with many callers at once.

Calls that finish together share one write transaction; these tests check what a caller
and an auditor would notice: an answer is never ahead of its rows, one call's failure
never costs another call its rows, a hard budget is never overspent nor a call refused
that fits, and the audit chain has no gap or fork afterwards. A slow extra writer in the
write-back makes batches form however fast the machine is.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from core import db
from core.audit import verify as audit_verify
from core.budgets import config as budget_config
from core.budgets import counters, periods, reservations
from core.budgets.pricing import worst_case_cost_micro
from core.budgets.tokens import chat_input_tokens_upper_bound
from core.errors import BudgetExceeded
from core.gateway import policies, settle, writeback
from core.gateway.pipeline import Caller, GatewayRequest
from core.identity.people import team_by_name
from core.models.audit import AuditEvent
from core.models.budgets import BudgetHold, UsageRecord
from core.models.gateway import GatewayCall
from core.permissions import Actor
from tests.gateway_support import RecordingTransport, make_gateway

ADMIN = Actor.system("t")
MODEL = "gpt-4o-mini"


def _setup(session, directory, cap_usd: str | None = None):
    policies.forget()
    team = team_by_name(session, "Support").id
    policies.set_team_policy(session=session, actor=ADMIN, team_id=team, pii_action="redact", moderation="off")
    budget = None
    if cap_usd is not None:
        budget = budget_config.set_budget(
            session=session, actor=ADMIN, scope="team", target_id=team, data=budget_config.BudgetInput(cap_usd=cap_usd)
        )
    caller = Caller(actor=directory.by_email("tom.becker@example.com"), team_id=team)
    return make_gateway(RecordingTransport()), caller, team, budget


def _request(index: int, max_tokens: int = 100) -> GatewayRequest:
    # Sampled (no temperature 0): never answered from the cache, every call reaches the model.
    return GatewayRequest(
        kind="chat",
        body={"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"Question {index}"}]},
    )


def _slow_writer(seconds: float, seen: list[list[str]]):
    def slow(session, calls):
        seen.append([c.row["request_id"] for c in calls])
        time.sleep(seconds)  # while this batch holds the write lock, the next callers queue

    return slow


def _run(threads: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def one(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as error:  # noqa: BLE001 - collected for the test to look at
            errors.append(error)

    pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    return errors


def _rows_of(request_id: str) -> tuple[int, int, int]:
    """(call rows, ledger rows, audit events) committed for the request, read on a connection of its own."""
    with db.get_engine().connect() as connection:
        return (
            connection.execute(
                select(func.count()).select_from(GatewayCall).where(GatewayCall.request_id == request_id)
            ).scalar_one(),
            connection.execute(
                select(func.count()).select_from(UsageRecord).where(UsageRecord.request_id == request_id)
            ).scalar_one(),
            connection.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "gateway.call", AuditEvent.target_id == request_id)
            ).scalar_one(),
        )


def _head_updates(engine):
    """Counts the statements that move the hot rows every writer takes turns on: the audit
    head, and a budget's counter settled (an admission only adds to what is reserved)."""
    seen = {"advance": 0, "settle_counter": 0}

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE audit_head SET seq"):
            seen["advance"] += 1
        elif statement.startswith("UPDATE budget_period SET spent_micro"):
            seen["settle_counter"] += 1

    event.listen(engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(engine, "before_cursor_execute", count)


def test_every_answer_finds_its_call_row_ledger_row_and_audit_event_and_batches_share_one_head_update(
    directory, session, monkeypatch
):
    gateway, caller, _team, _budget = _setup(session, directory, cap_usd="1000")
    batches: list[list[str]] = []
    monkeypatch.setattr(writeback, "WRITERS", [*writeback.WRITERS, _slow_writer(0.02, batches)])
    found: dict[str, tuple[int, int, int]] = {}
    heads, stop_counting = _head_updates(db.get_engine())

    def work(index: int) -> None:
        answer = gateway.call(caller=caller, request=_request(index))
        found[answer.request_id] = _rows_of(answer.request_id)  # the moment the answer is back

    try:
        errors = _run(24, work)
    finally:
        stop_counting()
    assert errors == []
    assert len(found) == 24 and set(found.values()) == {(1, 1, 1)}
    # Calls did share transactions, and each transaction moved the audit head once.
    assert max(len(b) for b in batches) > 1 and len(batches) < 24
    assert heads["advance"] == len(batches)
    assert heads["settle_counter"] == len(batches)  # one team budget: one counter row per batch
    verdict = audit_verify.verify_chain(session=session, actor=ADMIN)
    assert verdict.ok, verdict.problems
    session.rollback()
    seqs = session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, no duplicate


def test_a_call_whose_write_back_fails_takes_no_other_calls_rows_with_it(directory, session, monkeypatch):
    gateway, caller, team, budget = _setup(session, directory, cap_usd="1000")
    batches: list[list[str]] = []
    doomed: list[str] = []

    def failing(session_, calls):
        # The last call of the first shared batch is the bad one, then and whenever it is written again.
        if not doomed and len(calls) > 1:
            doomed.append(calls[-1].row["request_id"])
        if doomed and any(c.row["request_id"] == doomed[0] for c in calls):
            raise RuntimeError("the disk is full")

    monkeypatch.setattr(writeback, "WRITERS", [*writeback.WRITERS, _slow_writer(0.02, batches), failing])
    answered: dict[int, str] = {}

    def work(index: int) -> None:
        answered[index] = gateway.call(caller=caller, request=_request(index)).request_id

    errors = _run(16, work)
    # The failing call alone gets the error, and only its own.
    assert [str(e) for e in errors] == ["the disk is full"]
    assert len(answered) == 15
    # It was written together with other calls first, then alone (and failed alone).
    bad = doomed[0]
    assert len(next(b for b in batches if bad in b)) > 1
    assert bad not in answered.values()
    for request_id in answered.values():
        assert _rows_of(request_id) == (1, 1, 1)
    assert _rows_of(bad) == (0, 0, 0)
    # Every other call of its first batch was committed once, not twice and not lost.
    session.rollback()
    request_ids = session.execute(select(GatewayCall.request_id)).scalars().all()
    assert sorted(request_ids) == sorted(answered.values())
    # Its reservation was given back, and the counter agrees with the ledger to the micro-dollar.
    assert session.execute(select(BudgetHold)).scalars().all() == []
    key = periods.period_key(budget.period, datetime.now(UTC))
    row = counters.read(session, budget.id, key)
    spent = session.execute(select(func.coalesce(func.sum(UsageRecord.cost_micro), 0))).scalar_one()
    assert row.reserved_micro == 0 and row.spent_micro == spent > 0
    assert audit_verify.verify_chain(session=session, actor=ADMIN).ok


def _worst_case(session) -> int:
    price = reservations.current_price_book(session).price_at(MODEL, datetime.now(UTC))
    bound = chat_input_tokens_upper_bound(messages=_request(10).body["messages"])
    return worst_case_cost_micro(price, bound, 100)


@pytest.mark.parametrize("room", ["all", "some"])
def test_many_threads_at_a_hard_limit_never_overspend_nor_refuse_a_call_that_fits(directory, session, room):
    """64 callers at once against one team's hard budget, calls settled in shared batches.

    "all": the cap holds every caller's worst case exactly, so a single refusal is a false one.
    "some": room for 8 worst cases and a micro-dollar short of a 9th; calls cost less than
    their worst case, so more may run as others settle, but never fewer than 8 (a refusal
    means the spent and held money left no room, and each call holds at most its worst case).
    """
    callers = 64
    _gateway, _caller, _team, _budget = _setup(session, directory)
    worst = _worst_case(session)
    cap = callers * worst if room == "all" else 9 * worst - 1
    gateway, caller, _team, budget = _setup(session, directory, cap_usd=f"{cap / 1e6:.6f}")
    assert budget.cap_micro == cap
    admitted: list[str] = []
    refused: list[str] = []

    def work(index: int) -> None:
        # Same length for every caller, so every worst case is the same.
        try:
            admitted.append(gateway.call(caller=caller, request=_request(10 + index)).request_id)
        except BudgetExceeded:
            refused.append(str(index))

    errors = _run(callers, work)
    assert errors == []
    assert len(admitted) + len(refused) == callers
    if room == "all":
        assert refused == []
    else:
        assert len(admitted) >= 8 and refused
    session.rollback()
    spent = session.execute(select(func.coalesce(func.sum(UsageRecord.cost_micro), 0))).scalar_one()
    row = counters.read(session, budget.id, periods.period_key(budget.period, datetime.now(UTC)))
    assert spent <= cap  # no overspend
    assert row.spent_micro == spent and row.reserved_micro == 0
    assert session.execute(select(BudgetHold)).scalars().all() == []
    assert session.execute(select(func.count()).select_from(UsageRecord)).scalar_one() == len(admitted)
    assert audit_verify.verify_chain(session=session, actor=ADMIN).ok


def test_a_lone_call_is_written_at_once_not_after_a_wait(directory, session):
    gateway, caller, _team, _budget = _setup(session, directory, cap_usd="1000")
    batcher = settle._group_commit(db.get_engine())
    before = batcher.batches
    started = time.perf_counter()
    answer = gateway.call(caller=caller, request=_request(1))
    # A batch driven by a timer would wait for it; this one waits for nothing (the bound is
    # loose for a machine busy with other work).
    assert time.perf_counter() - started < 5.0
    assert _rows_of(answer.request_id) == (1, 1, 1)
    assert batcher.batches == before + 1
