"""What the Budgets, Spend and Home pages show about budgets, spend and alerts: money to
the cent, readable column titles and names, never ids (the CSV exports keep the exact
micro-dollar frames of `reports`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlmodel import Session, select

from core import clock, formatting
from core.attention import AttentionItem
from core.budgets import alerts, counters, periods
from core.budgets.config import list_budgets
from core.budgets.ledger_sums import ledger_sums
from core.budgets.reports import Breakdown, TeamSpend
from core.models.budgets import Budget
from core.models.catalog import Prompt
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
    prompt = session.get(Prompt, budget.prompt_id)
    return prompt.name if prompt else f"prompt #{budget.prompt_id}"


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
                formatting.money(budget.cap_micro),
                budget.cap_tokens,
                formatting.money(spent),
                formatting.money(reserved),
                percent,
                budget.hard,
                budget.thresholds,
                formatting.money(budget.max_request_micro),
                budget.webhook_url or "",
            )
        )
    return rows


def prompt_choices(session: Session, *, actor: Actor) -> dict[int, str]:
    """The prompts a budget can cover, by name (with the owning team), for the budget form."""
    require(actor, Permission.BUDGET_MANAGE)
    teams = dict(session.exec(select(Team.id, Team.name)).all())
    prompts = session.exec(select(Prompt.id, Prompt.name, Prompt.team_id).order_by(Prompt.name)).all()
    return {pid: f"{name} ({teams.get(team_id, 'no team')})" for pid, name, team_id in prompts if pid is not None}


def overview_table(rows: list[TeamSpend]) -> pd.DataFrame:
    """Each team's period to date as a person reads it (the Spend page's first table)."""
    return pd.DataFrame(
        [
            {
                "Team": r.team,
                "Period": r.period.key,
                "Spent": formatting.money(r.spent_micro),
                "Budget": formatting.money(r.cap_micro),
                "Used": formatting.percent(r.percent / 100 if r.percent is not None else None),
                "Forecast at period end": formatting.money(r.forecast_micro),
                "Crosses budget on": r.crosses_on.isoformat() if r.crosses_on else formatting.MISSING,
                "Enforcement": ("hard" if r.hard else "soft") if r.budget_id else "no budget",
            }
            for r in rows
        ],
        columns=[
            "Team",
            "Period",
            "Spent",
            "Budget",
            "Used",
            "Forecast at period end",
            "Crosses budget on",
            "Enforcement",
        ],
    )


def nearest_its_limit(rows: list[TeamSpend]) -> TeamSpend | None:
    """The team whose spend is the largest share of its budget (the burn-down opens on it);
    without any budget, the team that spent most."""
    if not rows:
        return None
    capped = [r for r in rows if r.percent is not None]
    if capped:
        return max(capped, key=lambda r: (r.percent or 0.0, r.spent_micro))
    return max(rows, key=lambda r: r.spent_micro)


_BREAKDOWN_TITLES = {
    "calls": "Calls",
    "input_tokens": "Input tokens",
    "cached_input_tokens": "Cached input tokens",
    "output_tokens": "Output tokens",
}


def breakdown_table(breakdown: Breakdown) -> pd.DataFrame:
    """A breakdown as a person reads it: the group's name, cost to the cent, token counts."""
    frame = breakdown.frame
    shown = pd.DataFrame({formatting.column_title(breakdown.by): frame[breakdown.by].astype(str)})
    shown["Cost"] = frame["cost_micro"].map(formatting.money)
    for column, title in _BREAKDOWN_TITLES.items():
        shown[title] = frame[column].astype("int64")
    return shown


def _ledger_spent(session: Session, budget: Budget, now) -> int:
    """A budget nobody has called against yet this period: what the ledger says (usually 0),
    read from its roll-ups."""
    bounds = periods.period_at(budget.period, now)
    column = {"team": "team_id", "person": "person_id", "prompt": "prompt_id"}[budget.scope]
    target = {"team": budget.team_id, "person": budget.person_id, "prompt": budget.prompt_id}[budget.scope]
    sums = ledger_sums(session.connection(), start=bounds.start, end=bounds.end, by=(column,))
    return sums.get((target,), {}).get("cost_micro", 0)


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
        in_money = budget.cap_micro is not None
        cap = formatting.money(budget.cap_micro) if in_money else f"{formatting.tokens(budget.cap_tokens)} tokens"
        used = formatting.tokens(counter.spent_tokens)
        spent = formatting.money(counter.spent_micro) if in_money else f"{used} tokens"
        items.append(
            AttentionItem(
                title=f"{target_label(session, budget)} ({budget.scope}) passed {threshold}% of its budget",
                detail=f"{spent} spent of {cap} in {alert.period_key}",
                severity="error" if threshold >= 100 else "warning",
                page="pages/budgets.py",
            )
        )
    return items
