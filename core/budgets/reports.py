"""Spend reports for finance, summed from the ledger's hourly roll-ups, to the micro-dollar.

Every figure on the Spend and Budgets pages and in their CSV exports comes from these
functions, so the dashboards cannot disagree with each other or with the ledger: the
roll-ups (`rollups.py`) are written in each call's settle transaction and rebuilt exactly
from the ledger, and `ledger_sums` reads them (see there for periods not on the hour). No
ledger row is brought into pandas: a breakdown frame has one row per group. Costs stay
integer micro-dollars in the frames (`cost_micro`); the dollar column next to it is the
same amount written out exactly (6 decimals), never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core import clock
from core.budgets import periods
from core.budgets.ledger_sums import ledger_sums
from core.budgets.money import micro_to_decimal
from core.models.budgets import Budget
from core.models.catalog import Prompt
from core.models.identity import Person, Team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require

BREAKDOWNS = {
    "model": ("model",),
    "prompt": ("prompt_id",),
    "person": ("person_id", "key_id"),
    "day": ("hour",),
    "team": ("team_id",),
}
_COLUMNS = ["calls", "input_tokens", "cached_input_tokens", "output_tokens", "cost_micro"]


def dollars(micro: int) -> str:
    """Exact dollars for tables and CSV: 1234567 -> '1.234567'."""
    return f"{micro_to_decimal(int(micro)):.6f}"


def breakdown(
    session: Session, *, actor: Actor, period: periods.Period, by: str, team_id: int | None = None
) -> Breakdown:
    """Calls, tokens and cost of the period to date per `by` (model, prompt, person, day or
    team), dearest first (days in order), with names rather than ids."""
    require(actor, Permission.SPEND_READ)
    if by not in BREAKDOWNS:
        raise ValueError(f"no breakdown by {by!r}")
    if by == "day":
        sums = by_local_day(session, period, team_id)
    else:
        sums = ledger_sums(session.connection(), start=period.start, end=period.end, by=BREAKDOWNS[by], team_id=team_id)
    label = _labeller(session, by)
    merged: dict[str, list[int]] = {}
    groups: dict[str, list[tuple]] = {}
    for key, values in sums.items():
        name = label(key)
        groups.setdefault(name, []).append(key)
        row = merged.setdefault(name, [0] * len(_COLUMNS))
        for index, column in enumerate(_COLUMNS):
            row[index] += values[column]
    frame = pd.DataFrame([[name, *values] for name, values in merged.items()], columns=[by, *_COLUMNS])
    frame = frame.sort_values(by if by == "day" else ["cost_micro", by], ascending=by == "day", kind="stable")
    frame.insert(1, "cost_usd", frame["cost_micro"].map(dollars))
    frame = frame.reset_index(drop=True).astype({"cost_micro": "int64", "calls": "int64"})
    return Breakdown(by=by, period=period, team_id=team_id, frame=frame, groups=groups)


@dataclass(frozen=True)
class Breakdown:
    """A breakdown as shown (`frame`), and the roll-up keys behind each row's name, so that a
    row can be drilled into (`ledger_pages.calls_page`)."""

    by: str
    period: periods.Period
    team_id: int | None
    frame: pd.DataFrame
    groups: dict[str, list[tuple]]

    @property
    def total_micro(self) -> int:
        return int(self.frame["cost_micro"].sum())


def by_local_day(session: Session, period: periods.Period, team_id: int | None) -> dict[tuple, dict[str, int]]:
    """The period's sums per local day, keyed by the day's first instant (UTC).

    In a zone whose midnights fall on the hour (nearly all), one grouped read of the hourly
    roll-ups; in one whose midnights do not (Asia/Kolkata), one read per day, so that each
    day's partial hours are summed from the ledger and no call lands on the wrong day."""
    days = []
    day = period.first_day
    while day <= period.last_day:
        days.append(
            (max(periods.day_end(day - timedelta(days=1)), period.start), min(periods.day_end(day), period.end))
        )
        day += timedelta(days=1)
    connection = session.connection()
    if all(start.minute == 0 and start.second == 0 for start, _end in days):
        return ledger_sums(connection, start=period.start, end=period.end, by=("hour",), team_id=team_id)
    result: dict[tuple, dict[str, int]] = {}
    for start, end in days:
        sums = ledger_sums(connection, start=start, end=end, team_id=team_id).get(())
        if sums and sums["calls"]:
            result[(start,)] = sums
    return result


def _labeller(session: Session, by: str):
    """How a breakdown names its groups: names, never bare ids."""
    if by == "model":
        return lambda key: key[0]
    if by == "day":
        zone = periods.zone()
        return lambda key: key[0].astimezone(zone).date().isoformat()
    if by == "team":
        teams = dict(session.execute(select(Team.id, Team.name)).all())
        return lambda key: teams.get(key[0], f"team #{key[0]}")
    if by == "prompt":
        prompts = dict(session.execute(select(Prompt.id, Prompt.name)).all())
        return lambda key: prompts.get(key[0], f"prompt #{key[0]}") if key[0] else "(no prompt)"
    people = dict(session.execute(select(Person.id, Person.display_name)).all())
    keys = key_names(session)

    def person(key: tuple) -> str:
        person_id, key_id = key
        if person_id:
            return people.get(person_id, f"person #{person_id}")
        return keys.get(key_id, f"team key #{key_id}") if key_id else "(no caller)"

    return person


def key_names(session: Session, ids: set[int] | None = None) -> dict[int, str]:
    """Team keys by the name they were given (`Support reporting`), or by their visible
    prefix when they have none: a reader tells keys apart by these, never by an id."""
    query = select(ApiKey.id, ApiKey.label, ApiKey.prefix)
    if ids is not None:
        if not ids:
            return {}
        query = query.where(ApiKey.id.in_(ids))  # type: ignore[union-attr]
    return {key_id: label or f"API key {prefix}…" for key_id, label, prefix in session.execute(query).all()}


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
    teams = list(session.execute(select(Team).order_by(Team.name)).scalars())
    chosen = {t.id: periods.period_at(budgets[t.id].period if t.id in budgets else "month", now) for t in teams}
    # One grouped read per kind of period (month, week, day), not one per team. A period's
    # ledger rows all started by now, so the whole period is the period to date.
    spent_by: dict[tuple[int, periods.Period], int] = {}
    for period in set(chosen.values()):
        sums = ledger_sums(session.connection(), start=period.start, end=period.end, by=("team_id",))
        for (team_id,), values in sums.items():
            spent_by[(team_id, period)] = values["cost_micro"]
    result = []
    for team in teams:
        budget = budgets.get(team.id)
        period = chosen[team.id]
        spent = spent_by.get((team.id, period), 0)
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
    zone = periods.zone()
    per_day: dict[str, int] = {}
    hourly = by_local_day(session, period, team_id)
    for (hour,), values in hourly.items():
        day = hour.astimezone(zone).date().isoformat()
        per_day[day] = per_day.get(day, 0) + values["cost_micro"]
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
