"""Chargeback statements: one team's closed month, as finance sends it to the team.

Totals by model, prompt and person (names, never ids) come from the same breakdowns the
Spend page shows (``budgets.reports``), so the statement, the page and the ledger agree to
the micro-dollar. The budget is the team's monthly cap as it stood at the close; the
reconciliation status is that of the month's days (bypass traffic belongs to no team, so
it is reported for the organization). If the ledger's total for the team no longer equals
the one frozen at the close (a row changed behind Quorum's back), the statement says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from core.budgets import reports
from core.budgets.money import format_micro
from core.db import get_or_not_found
from core.errors import NotFound
from core.exports import MIME, Export, csv_chunks
from core.finance import close, reconcile
from core.models.finance import ClosedMonth
from core.models.identity import Team
from core.permissions import Actor, Permission, require

SECTIONS = ("model", "prompt", "person")
HEADER = ["section", "name", "calls", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd", "cost_micro"]


@dataclass(frozen=True)
class StatementLine:
    section: str
    name: str
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_micro: int


@dataclass(frozen=True)
class Statement:
    month: str
    team: str
    cost_center: str
    start: datetime
    end: datetime
    closed_at: datetime
    total_micro: int
    budget_micro: int | None
    lines: list[StatementLine]
    days: dict[str, int]  # reconciliation status -> number of days (``not reconciled`` included)
    bypass_tokens: int
    bypass_micro: int
    ledger_changed_since_close: bool

    @property
    def reconciliation(self) -> str:
        counted = ", ".join(f"{count} {status}" for status, count in sorted(self.days.items()) if count)
        return f"{counted}; {self.bypass_tokens:,} tokens bypassed Quorum" if self.bypass_tokens else counted

    def section(self, name: str) -> list[StatementLine]:
        return [line for line in self.lines if line.section == name]


def statement(session: Session, *, actor: Actor, month: str, team_id: int) -> Statement:
    """The statement of ``team_id`` for the closed ``month``."""
    require(actor, Permission.SPEND_READ)
    period = close.month_period(month)
    closed = session.get(ClosedMonth, month)
    if closed is None:
        raise NotFound(f"{month} is not closed: statements are made for closed months")
    team = get_or_not_found(session, Team, team_id, "team")
    lines = []
    for section in SECTIONS:
        frame = reports.breakdown(session, actor=actor, period=period, by=section, team_id=team_id).frame
        for row in frame.itertuples(index=False):
            values = row._asdict()
            lines.append(
                StatementLine(
                    section,
                    str(values[section]),
                    int(values["calls"]),
                    int(values["input_tokens"]),
                    int(values["cached_input_tokens"]),
                    int(values["output_tokens"]),
                    int(values["cost_micro"]),
                )
            )
    total = sum(line.cost_micro for line in lines if line.section == "model")
    frozen = close.frozen_figures(closed)
    first, last = period.start.date(), (period.end - timedelta(microseconds=1)).date()
    statuses = reconcile.day_statuses(session, actor=actor, first=first, last=last)
    days = Counter(status.status for status in statuses)
    days["not reconciled"] = (last - first).days + 1 - len(statuses)
    return Statement(
        month=month,
        team=team.name,
        cost_center=team.cost_center,
        start=period.start,
        end=period.end,
        closed_at=closed.closed_at,
        total_micro=total,
        budget_micro=(frozen.get("budgets") or {}).get(str(team_id)),
        lines=lines,
        days=dict(days),
        bypass_tokens=sum(status.bypass_tokens for status in statuses),
        bypass_micro=sum(status.bypass_micro for status in statuses),
        ledger_changed_since_close=close.ledger_totals(session, period).get(str(team_id), 0)
        != (frozen.get("ledger") or {}).get(str(team_id), 0),
    )


def statement_export(session: Session, *, actor: Actor, month: str, team_id: int) -> Export:
    """The statement as CSV: a summary block, then one row per model, prompt and person."""
    found = statement(session, actor=actor, month=month, team_id=team_id)

    def rows() -> Iterator[list[list[object]]]:
        budget = "" if found.budget_micro is None else reports.dollars(found.budget_micro)
        yield [
            ["summary", "team", "", "", "", "", found.team, ""],
            ["summary", "cost center", "", "", "", "", found.cost_center, ""],
            ["summary", "month", "", "", "", "", found.month, ""],
            ["summary", "total", "", "", "", "", reports.dollars(found.total_micro), found.total_micro],
            ["summary", "budget", "", "", "", "", budget, found.budget_micro if found.budget_micro is not None else ""],
            ["summary", "reconciliation", "", "", "", "", found.reconciliation, ""],
        ]
        if found.ledger_changed_since_close:
            yield [["summary", "warning", "", "", "", "", "the ledger changed after the close", ""]]
        yield [
            [
                line.section,
                line.name,
                line.calls,
                line.input_tokens,
                line.cached_input_tokens,
                line.output_tokens,
                reports.dollars(line.cost_micro),
                line.cost_micro,
            ]
            for line in found.lines
        ]

    safe_team = "".join(ch if ch.isalnum() else "-" for ch in found.team.lower())
    return Export(
        file_name=f"statement-{month}-{safe_team}.csv",
        mime=MIME["csv"],
        produce=lambda export: csv_chunks(export, HEADER, rows()),
    )


def describe(found: Statement) -> str:
    """One line for the command line."""
    budget = "no budget" if found.budget_micro is None else f"budget {format_micro(found.budget_micro)}"
    return f"{found.team} {found.month}: {format_micro(found.total_micro)} ({budget}); {found.reconciliation}"
