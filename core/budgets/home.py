"""Finance's Home: each team's spend this month against its monthly budget, and the top
movers, the teams and keys whose spend grew most against the same days of last month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from core import clock
from core.attention import AttentionItem
from core.budgets import periods
from core.budgets.config import list_budgets
from core.budgets.ledger_sums import ceil_hour, ledger_sums
from core.db import saved_id
from core.models.identity import Team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class TeamMonth:
    team: str
    spent_micro: int
    budget_micro: int | None  # the team's monthly money cap; None: no monthly budget

    @property
    def used(self) -> float | None:
        """Spent as a fraction of the budget (1.0 = all of it)."""
        return self.spent_micro / self.budget_micro if self.budget_micro else None


@dataclass(frozen=True)
class Mover:
    kind: str  # "Team" or "API key"
    name: str  # a team's name, or "<label> (qk_live_ab12…) of <team>"
    now_micro: int  # this month so far
    before_micro: int  # the same days of last month

    @property
    def growth_micro(self) -> int:
        return self.now_micro - self.before_micro


@dataclass(frozen=True)
class MonthToDate:
    period_key: str  # "2026-11"
    start: datetime
    through: datetime  # spend counted up to this instant (the end of the current hour)
    days: int  # days of the month counted, today included
    teams: list[TeamMonth]
    movers: list[Mover]

    @property
    def spent_micro(self) -> int:
        return sum(t.spent_micro for t in self.teams)

    @property
    def budget_micro(self) -> int:
        return sum(t.budget_micro or 0 for t in self.teams)


def month_to_date(session: Session, *, actor: Actor, movers: int = 5) -> MonthToDate:
    """This month's spend per team with its monthly budget, and the `movers` biggest risers."""
    require(actor, Permission.SPEND_READ)
    now = clock.now()
    month = periods.period_at("month", now)
    # Whole hours, so that repeated reads share the ledger's cached sums.
    through = min(ceil_hour(now), month.end)
    previous = periods.period_at("month", month.start - timedelta(microseconds=1))
    previous_through = min(previous.start + (through - month.start), previous.end)
    connection = session.connection()

    def spend(start: datetime, end: datetime, by: str) -> dict[int, int]:
        sums = ledger_sums(connection, start=start, end=end, by=(by,))
        return {int(key[0] or 0): row.get("cost_micro", 0) for key, row in sums.items()}

    teams = {saved_id(t): t.name for t in session.exec(select(Team))}
    team_now = spend(month.start, through, "team_id")
    team_before = spend(previous.start, previous_through, "team_id")
    caps = {
        b.team_id: b.cap_micro
        for b in list_budgets(session)
        if b.scope == "team" and b.period == "month" and b.cap_micro is not None
    }
    rows = [TeamMonth(name, team_now.get(team_id, 0), caps.get(team_id)) for team_id, name in teams.items()]
    rows.sort(key=lambda r: (-(r.used or 0), -r.spent_micro, r.team))

    key_now = spend(month.start, through, "key_id")
    key_before = spend(previous.start, previous_through, "key_id")
    candidates = [Mover("Team", name, team_now.get(i, 0), team_before.get(i, 0)) for i, name in teams.items()]
    candidates += [
        Mover("API key", name, key_now.get(key_id, 0), key_before.get(key_id, 0))
        for key_id, name in _key_names(session, teams, set(key_now) | set(key_before)).items()
    ]
    risers = sorted((m for m in candidates if m.growth_micro > 0), key=lambda m: (-m.growth_micro, m.name))
    days = (periods.local_date(through - timedelta(microseconds=1)) - month.first_day).days + 1
    return MonthToDate(month.key, month.start, through, days, rows, risers[:movers])


def _key_names(session: Session, teams: dict[int, str], key_ids: set[int]) -> dict[int, str]:
    """A key as people tell it apart: its label, its visible prefix and its team."""
    wanted = key_ids - {0}
    if not wanted:
        return {}
    names = {}
    for key in session.exec(select(ApiKey).where(ApiKey.id.in_(wanted))):  # type: ignore[union-attr]
        label = f"{key.label} " if key.label else ""
        names[saved_id(key)] = f"{label}({key.prefix}…) of {teams.get(key.team_id, 'a removed team')}"
    return names


def teams_without_budget(session: Session, actor: Actor) -> list[AttentionItem]:
    """Admins: teams whose calls no team budget limits."""
    if not actor.can(Permission.TEAM_MANAGE):
        return []
    limited = {b.team_id for b in list_budgets(session) if b.scope == "team"}
    unlimited = sorted(t.name for t in session.exec(select(Team)) if t.id not in limited)
    if not unlimited:
        return []
    return [
        AttentionItem(
            f"No budget on {', '.join(unlimited)}",
            "Calls of a team without a team budget are never refused for cost; set one under Budgets & prices.",
            severity="warning",
            page="pages/budgets.py",
        )
    ]
