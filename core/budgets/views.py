"""What the Budgets page and the Home page show about budgets and their alerts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from core import clock
from core.attention import AttentionItem
from core.budgets import alerts, counters, periods
from core.budgets.config import list_budgets
from core.budgets.money import format_micro
from core.models.budgets import Budget
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class BudgetRow:
    id: int
    scope: str
    target: str
    period_key: str
    cap: str
    cap_tokens: int | None
    spent: str
    reserved: str
    percent: float | None
    hard: bool
    thresholds: str
    per_request_cap: str
    webhook: str


def target_label(session: Session, budget: Budget) -> str:
    if budget.scope == "team":
        team = session.get(Team, budget.team_id)
        return team.name if team else f"team #{budget.team_id}"
    if budget.scope == "person":
        person = session.get(Person, budget.person_id)
        return person.display_name if person else f"person #{budget.person_id}"
    return f"prompt #{budget.prompt_id}"


def budget_rows(session: Session, *, actor: Actor) -> list[BudgetRow]:
    """Every budget with its current period's spent and reserved amounts."""
    require(actor, Permission.SPEND_READ)
    now = clock.now()
    rows = []
    for budget in list_budgets(session):
        key = periods.period_key(budget.period, now)
        counter = counters.read(session, budget.id, key)
        spent = counter.spent_micro if counter else _ledger_spent(session, budget, now)
        reserved = counter.reserved_micro if counter else 0
        percent = 100 * spent / budget.cap_micro if budget.cap_micro else None
        rows.append(
            BudgetRow(
                budget.id,
                budget.scope,
                target_label(session, budget),
                key,
                format_micro(budget.cap_micro) if budget.cap_micro is not None else "-",
                budget.cap_tokens,
                format_micro(spent),
                format_micro(reserved),
                percent,
                budget.hard,
                budget.thresholds,
                format_micro(budget.max_request_micro) if budget.max_request_micro is not None else "-",
                budget.webhook_url or "",
            )
        )
    return rows


def _ledger_spent(session: Session, budget: Budget, now) -> int:
    """A budget nobody has called against yet this period: what the ledger says (usually 0)."""
    from sqlalchemy import func

    from core.models.budgets import UsageRecord

    bounds = periods.period_at(budget.period, now)
    column = {"team": UsageRecord.team_id, "person": UsageRecord.person_id, "prompt": UsageRecord.prompt_id}[
        budget.scope
    ]
    target = {"team": budget.team_id, "person": budget.person_id, "prompt": budget.prompt_id}[budget.scope]
    return int(
        session.execute(
            select(func.coalesce(func.sum(UsageRecord.cost_micro), 0)).where(
                column == target, UsageRecord.occurred_at >= bounds.start, UsageRecord.occurred_at < bounds.end
            )
        ).scalar()
    )


def budget_attention(session: Session, actor: Actor) -> list[AttentionItem]:
    """Home: budgets that crossed an alert threshold this period (finance and admins)."""
    if not actor.can(Permission.BUDGET_MANAGE):
        return []
    highest: dict[int, alerts.AlertView] = {}
    for alert in alerts.list_alerts(session, current_only=True):
        if alert.budget_id not in highest or alert.threshold_pct > highest[alert.budget_id].threshold_pct:
            highest[alert.budget_id] = alert
    items = []
    for budget_id, alert in sorted(highest.items()):
        budget = session.get(Budget, budget_id)
        if budget is None:
            continue
        # What holds now, not what held when the alert fired: a raised cap (or a corrected
        # ledger) makes the alert's cause go away, and Home must say so by not showing it.
        counter = counters.read(session, budget_id, alert.period_key)
        still = [t for t in alerts.crossed(budget, counter) if t <= alert.threshold_pct] if counter else []
        if not still:
            continue
        threshold = max(still)
        cap = format_micro(budget.cap_micro) if budget.cap_micro is not None else f"{budget.cap_tokens:,} tokens"
        spent = (
            format_micro(counter.spent_micro) if budget.cap_micro is not None else f"{counter.spent_tokens:,} tokens"
        )
        items.append(
            AttentionItem(
                title=f"{target_label(session, budget)} ({budget.scope}) passed {threshold}% of its budget",
                detail=f"{spent} spent of {cap} in {alert.period_key}",
                severity="error" if threshold >= 100 else "warning",
                page="pages/budgets.py",
            )
        )
    return items
