"""The gateway's admission runs on a pooled Connection with the settings from the process's
short-lived copy: no ORM session on a warm call, and still every refusal a budget owes."""

from __future__ import annotations

import pytest
import sqlmodel

from core import db
from core.budgets import config as budget_config
from core.budgets import counters, hot_cache, periods
from core.errors import BudgetExceeded
from core.gateway import policies
from core.gateway.adapters import BudgetsGate
from core.gateway.errors import ModelNotAllowed
from core.gateway.ports import BudgetRequest
from core.identity.people import team_by_name
from core.permissions import Actor

ADMIN = Actor.system("t")
MODEL = "gpt-4o-mini"


def _request(team: int, index: int, max_tokens: int = 100) -> BudgetRequest:
    return BudgetRequest(
        request_id=f"req-{index}",
        kind="chat",
        team_id=team,
        model=MODEL,
        input_tokens_upper_bound=50,
        max_output_tokens=max_tokens,
    )


@pytest.fixture
def team(session, directory):
    policies.forget()
    hot_cache.invalidate()
    return team_by_name(session, "Support").id


def _sessions_opened(monkeypatch) -> list[int]:
    opened: list[int] = []
    original = sqlmodel.Session.__init__

    def counting(self, *args, **kwargs):
        opened.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(sqlmodel.Session, "__init__", counting)
    return opened


def test_a_warm_admission_opens_no_orm_session_and_holds_the_worst_case(session, team, monkeypatch):
    budget = budget_config.set_budget(
        session=session, actor=ADMIN, scope="team", target_id=team, data=budget_config.BudgetInput(cap_usd="100")
    )
    gate = BudgetsGate()
    gate.release(gate.reserve(_request(team, 0)), "warm-up")  # settings read once, kept
    opened = _sessions_opened(monkeypatch)
    held = gate.reserve(_request(team, 1))
    assert opened == []
    session.rollback()
    row = counters.read(session, budget.id, periods.period_key(budget.period, held.held.started_at))
    assert row.reserved_micro == held.held.worst_case_micro > 0


def test_an_admission_reads_changed_settings_through_a_session_of_its_own(session, team):
    gate = BudgetsGate()
    gate.release(gate.reserve(_request(team, 0)), "warm-up")
    budget_config.set_budget(
        session=session, actor=ADMIN, scope="team", target_id=team, data=budget_config.BudgetInput(cap_usd="0.000001")
    )  # invalidates the copy in this process: the next admission reads the new budget
    with pytest.raises(BudgetExceeded, match="Over budget"):
        gate.reserve(_request(team, 1))
    budget_config.set_team_policy(session=session, actor=ADMIN, team_id=team, allowed_models=["gpt-4o"])
    with pytest.raises(ModelNotAllowed):
        gate.reserve(_request(team, 2))
    with db.get_engine().connect() as connection:
        assert not connection.in_transaction()  # nothing left open on the pooled connection


def test_a_cold_admission_reads_its_settings_through_the_connection_it_holds(db_url, team):
    """Many admissions that miss the cache at once must not each ask the pool for a second
    connection while holding their first: with a pool of one, a miss still completes."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import QueuePool

    engine = create_engine(db_url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        hot_cache.invalidate()
        with engine.connect() as connection:  # the pool's only connection
            loaded = hot_cache.cached(
                connection, ("probe", db_url), lambda s: s.exec(sqlmodel.text("SELECT 41 + 1")).one()[0]
            )
            assert loaded == 42
            assert connection.execute(text("SELECT 1")).scalar() == 1  # still usable after
    finally:
        engine.dispose()
