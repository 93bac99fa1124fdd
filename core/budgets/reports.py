"""Spend reports for finance, all summed from the ledger (usage_record), to the micro-dollar.

Every figure on the Spend and Budgets pages and in their CSV exports comes from these
functions, so the dashboards cannot disagree with each other or with the ledger. Costs
stay integer micro-dollars in the frames (`cost_micro`); the dollar column next to it is
the same amount written out exactly (6 decimals), never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core import clock
from core.budgets import periods
from core.budgets.money import micro_to_decimal
from core.models.budgets import Budget, UsageRecord
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require

LEDGER = UsageRecord.__table__
BREAKDOWNS = {"model": "model", "prompt": "prompt", "person": "person", "day": "day", "team": "team"}
_LEDGER_COLUMNS = [
    "occurred_at",
    "team_id",
    "person_id",
    "key_id",
    "prompt_id",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micro",
]


def dollars(micro: int) -> str:
    """Exact dollars for tables and CSV: 1234567 -> '1.234567'."""
    return f"{micro_to_decimal(int(micro)):.6f}"


def ledger_frame(session: Session, *, start: datetime, end: datetime, team_id: int | None = None) -> pd.DataFrame:
    """Ledger rows in [start, end) with readable team, person, prompt and local day columns."""
    query = select(*(LEDGER.c[c] for c in _LEDGER_COLUMNS)).where(
        LEDGER.c.occurred_at >= start, LEDGER.c.occurred_at < end
    )
    if team_id is not None:
        query = query.where(LEDGER.c.team_id == team_id)
    frame = pd.DataFrame(session.execute(query).all(), columns=_LEDGER_COLUMNS)
    teams = {t.id: t.name for t in session.execute(select(Team)).scalars()}
    people = {p.id: p.display_name for p in session.execute(select(Person)).scalars()}
    frame["cost_micro"] = frame["cost_micro"].astype("int64")
    frame["team"] = frame["team_id"].map(teams).fillna("?")
    frame["person"] = [
        people.get(int(p), f"person #{int(p)}") if pd.notna(p) else (f"team key #{int(k)}" if pd.notna(k) else "-")
        for p, k in zip(frame["person_id"], frame["key_id"], strict=True)
    ]
    frame["prompt"] = [f"prompt #{int(p)}" if pd.notna(p) else "(no prompt)" for p in frame["prompt_id"]]
    zone = periods.zone()
    frame["day"] = [t.astimezone(zone).date().isoformat() for t in frame["occurred_at"]]
    return frame


def breakdown(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Calls, tokens and cost per `by` (model, prompt, person, day or team), dearest first (days in order)."""
    column = BREAKDOWNS[by]
    grouped = (
        frame.groupby(column, sort=False)
        .agg(
            calls=("cost_micro", "size"),
            input_tokens=("input_tokens", "sum"),
            cached_input_tokens=("cached_input_tokens", "sum"),
            output_tokens=("output_tokens", "sum"),
            cost_micro=("cost_micro", "sum"),
        )
        .reset_index()
    )
    grouped = grouped.sort_values(
        column if by == "day" else ["cost_micro", column], ascending=by == "day", kind="stable"
    )
    grouped.insert(1, "cost_usd", grouped["cost_micro"].map(dollars))
    return grouped.reset_index(drop=True).astype({"cost_micro": "int64"})


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV of exactly the frame shown (the page passes the same frame to both)."""
    return frame.to_csv(index=False).encode("utf-8")


# ---- team overview and forecast ---------------------------------------------------------


@dataclass(frozen=True)
class TeamSpend:
    team_id: int
    team: str
    budget_id: int | None
    period: periods.Period
    spent_micro: int
    cap_micro: int | None
    hard: bool
    forecast_micro: int  # period-end spend at the run rate so far
    crosses_on: date | None  # local day the run rate reaches the cap (None: it does not)

    @property
    def percent(self) -> float | None:
        return None if not self.cap_micro else 100 * self.spent_micro / self.cap_micro


def team_overview(session: Session, *, actor: Actor, now: datetime | None = None) -> list[TeamSpend]:
    """Each team's spend in its budget's current period (calendar month without a budget)."""
    require(actor, Permission.SPEND_READ)
    now = now or clock.now()
    budgets = {b.team_id: b for b in session.execute(select(Budget).where(Budget.scope == "team")).scalars()}
    result = []
    for team in session.execute(select(Team).order_by(Team.name)).scalars():
        budget = budgets.get(team.id)
        period = periods.period_at(budget.period if budget else "month", now)
        spent = _sum(session, team.id, period.start, min(period.end, now + timedelta(microseconds=1)))
        cap = budget.cap_micro if budget else None
        forecast, crosses = forecast_period(spent, cap, period, now)
        result.append(
            TeamSpend(
                team.id,
                team.name,
                budget.id if budget else None,
                period,
                spent,
                cap,
                budget.hard if budget else False,
                forecast,
                crosses,
            )
        )
    return result


def _sum(session: Session, team_id: int, start: datetime, end: datetime) -> int:
    from sqlalchemy import func

    total = session.execute(
        select(func.coalesce(func.sum(LEDGER.c.cost_micro), 0)).where(
            LEDGER.c.team_id == team_id, LEDGER.c.occurred_at >= start, LEDGER.c.occurred_at < end
        )
    ).scalar()
    return int(total)


def forecast_period(spent: int, cap: int | None, period: periods.Period, now: datetime) -> tuple[int, date | None]:
    """Period-end spend at the run rate so far, and the local day that rate reaches the cap."""
    elapsed = max((now - period.start).total_seconds(), 3600.0)  # an hour at least: no wild first-minute rates
    length = (period.end - period.start).total_seconds()
    rate = spent / elapsed  # micro-dollars per second
    forecast = spent + round(rate * max(0.0, length - elapsed))
    if cap is None or rate <= 0:
        return forecast, None
    if spent >= cap:
        return forecast, None
    crossing = now + timedelta(seconds=(cap - spent) / rate)
    if crossing >= period.end:
        return forecast, None
    return forecast, periods.local_date(crossing)


def burndown(session: Session, *, actor: Actor, team_id: int, now: datetime | None = None) -> pd.DataFrame:
    """Per local day of the team's period: actual cumulative spend so far, then the forecast."""
    require(actor, Permission.SPEND_READ)
    now = now or clock.now()
    overview = next(t for t in team_overview(session, actor=actor, now=now) if t.team_id == team_id)
    period = overview.period
    frame = ledger_frame(session, start=period.start, end=period.end, team_id=team_id)
    per_day = frame.groupby("day")["cost_micro"].sum().to_dict()
    today = periods.local_date(now)
    rate = overview.spent_micro / max((now - period.start).total_seconds(), 3600.0)  # per second
    rows, running = [], 0
    day = period.first_day
    while day <= period.last_day:
        if day <= today:
            running += int(per_day.get(day.isoformat(), 0))
            rows.append({"day": day.isoformat(), "kind": "actual", "cumulative_micro": running})
        else:
            # Through the end of that local day, at the run rate so far.
            end_of_day = periods.day_end(day)
            rows.append(
                {
                    "day": day.isoformat(),
                    "kind": "forecast",
                    "cumulative_micro": overview.spent_micro + round(rate * (end_of_day - now).total_seconds()),
                }
            )
        day += timedelta(days=1)
    result = pd.DataFrame(rows, columns=["day", "kind", "cumulative_micro"])
    result["cumulative_usd"] = result["cumulative_micro"].map(dollars)
    return result


def period_ledger(
    session: Session, *, actor: Actor, kind: str = "month", at: datetime | None = None, team_id: int | None = None
) -> tuple[periods.Period, pd.DataFrame]:
    """The ledger rows of the period containing `at` (default now), to date."""
    require(actor, Permission.SPEND_READ)
    now = clock.now()
    period = periods.period_at(kind, at or now)
    end = min(period.end, now + timedelta(microseconds=1))
    return period, ledger_frame(session, start=period.start, end=end, team_id=team_id)


def recent_months(count: int = 4, now: datetime | None = None) -> list[periods.Period]:
    """This month and the `count - 1` before it, newest first (for a period picker)."""
    result = [periods.period_at("month", now or clock.now())]
    while len(result) < count:
        result.append(periods.period_at("month", result[-1].start - timedelta(seconds=1)))
    return result


def overview_frame(rows: list[TeamSpend]) -> pd.DataFrame:
    """The team overview as shown and exported."""
    return pd.DataFrame(
        [
            {
                "team": r.team,
                "period": r.period.key,
                "spent_usd": dollars(r.spent_micro),
                "spent_micro": r.spent_micro,
                "budget_usd": dollars(r.cap_micro) if r.cap_micro is not None else "",
                "used_pct": round(r.percent, 1) if r.percent is not None else None,
                "forecast_usd": dollars(r.forecast_micro),
                "crosses_budget_on": r.crosses_on.isoformat() if r.crosses_on else "",
                "enforcement": ("hard" if r.hard else "soft") if r.budget_id else "no budget",
            }
            for r in rows
        ],
        columns=[
            "team",
            "period",
            "spent_usd",
            "spent_micro",
            "budget_usd",
            "used_pct",
            "forecast_usd",
            "crosses_budget_on",
            "enforcement",
        ],
    )
