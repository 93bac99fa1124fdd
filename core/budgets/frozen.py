"""Closed months: the ledger, prices and reconciliation of a month finance has closed stay as
they are. Budgets read this (a price override dated inside or before a closed month is
refused); ``core.finance.close`` writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, func, select

from core.errors import Conflict
from core.models.finance import ClosedMonth


def closed_month_overlapping(session: Session, start: datetime, end: datetime) -> ClosedMonth | None:
    """A closed month sharing an instant with [start, end), if any."""
    return session.exec(
        select(ClosedMonth).where(col(ClosedMonth.start_at) < end, col(ClosedMonth.end_at) > start)
    ).first()


def frozen_until(session: Session) -> datetime | None:
    """The end of the latest closed month: a price dated before it would change a closed month."""
    return session.exec(select(func.max(ClosedMonth.end_at))).one()


def refuse_if_closed(session: Session, start: datetime, end: datetime, what: str) -> None:
    closed = closed_month_overlapping(session, start, end)
    if closed is not None:
        raise Conflict(f"{closed.month} is closed: {what} would change it; ask finance to reopen it first")
