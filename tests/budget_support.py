"""Helpers shared by the budget tests (not fixtures: plain functions)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import func, select

from core.budgets import config, counters, periods, rollups
from core.budgets.config import BudgetInput
from core.identity import people as identity
from core.models.budgets import Budget, UsageRecord
from core.permissions import Actor
from core.settings import reset_settings

SYSTEM = Actor.system("test")


def team_id(session, name: str = "Support") -> int:
    return identity.team_by_name(session, name).id


def make_budget(session, scope_id: int, *, scope: str = "team", cap: str | None = "10", **fields) -> Budget:
    return config.set_budget(
        session=session, actor=SYSTEM, scope=scope, target_id=scope_id, data=BudgetInput(cap_usd=cap, **fields)
    )


def spend(
    session,
    team: int,
    cost_micro: int,
    at: datetime,
    *,
    model: str = "gpt-4o-mini",
    person_id: int | None = None,
    prompt_id: int | None = None,
    tokens: int = 0,
) -> None:
    """A ledger row and its roll-up as if a call had been settled earlier (no counters touched)."""
    row = UsageRecord(
        occurred_at=at,
        team_id=team,
        person_id=person_id,
        prompt_id=prompt_id,
        model=model,
        input_tokens=tokens,
        cost_micro=cost_micro,
    )
    session.add(row)
    session.flush()
    rollups.add_ledger_rows(session.connection(), [row.model_dump()])
    session.commit()


def counter(session, budget_id: int, at: datetime, period: str = "month") -> counters.Counter | None:
    session.rollback()
    return counters.read(session, budget_id, periods.period_key(period, at))


def ledger_total(session) -> int:
    session.rollback()
    return int(session.exec(select(func.coalesce(func.sum(UsageRecord.cost_micro), 0))).one())


def use_timezone(monkeypatch, name: str) -> None:
    monkeypatch.setenv("QUORUM_TIMEZONE", name)
    reset_settings()
