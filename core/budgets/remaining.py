"""How much a caller may still spend: the least that any hard budget it counts against has left.

Used before a batch of calls (an experiment) to refuse the whole batch up front when its
worst case cannot fit, instead of failing half-way. Spent and reserved amounts both count,
as in `reservations.reserve`; a period without a counter row yet counts the ledger.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from core import clock
from core.budgets import counters, periods
from core.budgets.config import BudgetRule, applicable_budgets
from core.models.budgets import UsageRecord

LEDGER = UsageRecord.__table__


def remaining_micro(
    session: Session,
    *,
    team_id: int,
    person_id: int | None = None,
    prompt_id: int | None = None,
    now: datetime | None = None,
) -> int | None:
    """Micro-dollars left before a hard budget refuses; None when no hard money cap applies."""
    now = now or clock.now()
    lefts = []
    for budget in applicable_budgets(session, team_id=team_id, person_id=person_id, prompt_id=prompt_id):
        if not budget.hard or budget.cap_micro is None:
            continue
        counter = counters.read(session, budget.id, periods.period_key(budget.period, now))
        used = counter.spent_micro + counter.reserved_micro if counter else _ledger_spent(session, budget, now)
        lefts.append(max(0, budget.cap_micro - used))
    return min(lefts) if lefts else None


def _ledger_spent(session: Session, budget: BudgetRule, now: datetime) -> int:
    bounds = periods.period_at(budget.period, now)
    column = {"team": LEDGER.c.team_id, "person": LEDGER.c.person_id, "prompt": LEDGER.c.prompt_id}[budget.scope]
    target = {"team": budget.team_id, "person": budget.person_id, "prompt": budget.prompt_id}[budget.scope]
    total = session.execute(
        select(func.coalesce(func.sum(LEDGER.c.cost_micro), 0)).where(
            column == target, LEDGER.c.occurred_at >= bounds.start, LEDGER.c.occurred_at < bounds.end
        )
    ).scalar()
    return int(total)
