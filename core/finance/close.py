"""Month close: finance closes a month for every team; reopening takes a reason and two people.

A closed month is frozen: its days are not reconciled again, a price override dated inside
or before it is refused (``budgets.frozen``), and the close keeps the team budgets and the
ledger's total per team as they stood, so a statement shows the budget of the month and
says so if the ledger was changed behind Quorum's back (direct SQL) after the close.

A month may be closed once its last calls can no longer settle: a call is dated by its
start and settles at most the reservation TTL later, so the close waits that long past the
month's end, and no settle can write into a closed month.

Reopening is four-eyes, like approving a prompt: finance asks with a reason, and an admin
who is not the person who asked approves (or rejects); each step is audited.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core import clock
from core.audit.record import committing, record
from core.budgets import periods
from core.db import get_or_not_found, saved_id
from core.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationError
from core.guardrails.saved_text import refuse_secrets_in
from core.models.budgets import Budget, UsageRecord
from core.models.finance import ClosedMonth, ReopenRequest
from core.models.identity import Person
from core.permissions import Actor, Permission, require
from core.settings import settings

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MIN_REASON = 10


def month_period(month: str) -> periods.Period:
    """The budget month ``YYYY-MM`` (in the configured time zone)."""
    if not _MONTH.match(month or ""):
        raise ValidationError(f"A month is written YYYY-MM (got {month!r})")
    year, number = (int(part) for part in month.split("-"))
    middle = datetime(year, number, 15, 12, tzinfo=UTC)
    return periods.period_at("month", middle)


def is_closed(session: Session, month: str) -> bool:
    return session.get(ClosedMonth, month) is not None


def close_month(*, session: Session, actor: Actor, month: str) -> ClosedMonth:
    """Close ``month`` for every team; audited with what it froze."""
    require(actor, Permission.MONTH_CLOSE)
    period = month_period(month)
    settle_by = period.end + timedelta(seconds=settings().reservation_ttl_s)
    if clock.now() < settle_by:
        raise Conflict(
            f"{month} cannot be closed before {settle_by:%Y-%m-%d %H:%M} UTC: calls started in it may still "
            "be settling until then"
        )
    if is_closed(session, month):
        raise Conflict(f"{month} is already closed")
    frozen = {"budgets": _team_budgets(session), "ledger": ledger_totals(session, period)}
    row = ClosedMonth(
        month=month, start_at=period.start, end_at=period.end, closed_by=actor.ref, budgets_json=json.dumps(frozen)
    )
    try:
        with committing(session):
            session.add(row)
            session.flush()
            record(
                session,
                actor=actor,
                action="finance.month.close",
                target_type="closed_month",
                target_id=month,
                after={"month": month, "start": period.start, "end": period.end, **frozen},
            )
    except IntegrityError:
        raise Conflict(f"{month} is already closed") from None
    return row


def ledger_totals(session: Session, period: periods.Period) -> dict[str, int]:
    """The ledger's cost per team over the period, read from the ledger itself (team id as text)."""
    rows = session.exec(
        select(UsageRecord.team_id, func.sum(UsageRecord.cost_micro))
        .where(col(UsageRecord.occurred_at) >= period.start, col(UsageRecord.occurred_at) < period.end)
        .group_by(col(UsageRecord.team_id))
    ).all()
    return {str(team_id): int(total or 0) for team_id, total in rows}


def _team_budgets(session: Session) -> dict[str, int | None]:
    rows = session.exec(select(Budget).where(Budget.scope == "team", Budget.period == "month")).all()
    return {str(row.team_id): row.cap_micro for row in rows if row.team_id is not None}


def frozen_figures(closed: ClosedMonth) -> dict[str, dict[str, int | None]]:
    figures: dict[str, dict[str, int | None]] = json.loads(closed.budgets_json or "{}")
    return figures


# ---- reopening: two people -----------------------------------------------------------------


def request_reopen(*, session: Session, actor: Actor, month: str, reason: str) -> ReopenRequest:
    """Finance asks for ``month`` to be reopened, saying why; an admin decides."""
    require(actor, Permission.MONTH_CLOSE)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise ValidationError(f"Say why the month must be reopened (at least {MIN_REASON} characters)")
    refuse_secrets_in({"the reason": reason})
    month_period(month)  # a well-formed month, or a clear error
    if not is_closed(session, month):
        raise NotFound(f"{month} is not closed")
    if _pending(session, month) is not None:
        raise Conflict(f"A request to reopen {month} is already waiting for an admin")
    request = ReopenRequest(month=month, reason=reason[:2000], requested_by=actor.ref)
    with committing(session):
        session.add(request)
        session.flush()
        record(
            session,
            actor=actor,
            action="finance.month.reopen_request",
            target_type="closed_month",
            target_id=month,
            after={"request_id": request.id, "reason": request.reason},
        )
    return request


def decide_reopen(*, session: Session, actor: Actor, request_id: int, approve: bool) -> ReopenRequest:
    """An admin other than the requester approves (the month reopens) or rejects a request."""
    require(actor, Permission.MONTH_REOPEN_APPROVE)
    request = get_or_not_found(session, ReopenRequest, request_id, "reopen request")
    if request.status != "pending":
        raise InvalidTransition(f"The request to reopen {request.month} was already {request.status}")
    if request.requested_by == actor.ref:
        raise PermissionDenied("The person who asked to reopen a month cannot also approve it: a second person must")
    closed = session.get(ClosedMonth, request.month)
    request.status = "approved" if approve else "rejected"
    request.decided_by = actor.ref
    request.decided_at = clock.now()
    with committing(session):
        session.add(request)
        if approve and closed is not None:
            session.delete(closed)
        record(
            session,
            actor=actor,
            action="finance.month.reopen" if approve else "finance.month.reopen_rejected",
            target_type="closed_month",
            target_id=request.month,
            before={"closed_by": closed.closed_by, "closed_at": closed.closed_at} if closed else None,
            after={"request_id": saved_id(request), "requested_by": request.requested_by, "reason": request.reason},
        )
    return request


def _pending(session: Session, month: str) -> ReopenRequest | None:
    return session.exec(
        select(ReopenRequest).where(ReopenRequest.month == month, ReopenRequest.status == "pending")
    ).first()


@dataclass(frozen=True)
class MonthState:
    month: str
    closed_by: str  # a name
    closed_at: datetime
    pending_request_id: int | None
    pending_reason: str
    pending_requested_by: str  # a name, or ""


def closed_months(session: Session, *, actor: Actor) -> list[MonthState]:
    """Every closed month, newest first, with a reopen request waiting for an admin if any."""
    require(actor, Permission.SPEND_READ)
    rows = session.exec(select(ClosedMonth).order_by(col(ClosedMonth.month).desc())).all()
    states = []
    for row in rows:
        pending = _pending(session, row.month)
        states.append(
            MonthState(
                row.month,
                name_of(session, row.closed_by),
                row.closed_at,
                pending.id if pending else None,
                pending.reason if pending else "",
                name_of(session, pending.requested_by) if pending else "",
            )
        )
    return states


def name_of(session: Session, ref: str) -> str:
    """A person's name for an actor reference (``person:7``); the system's own label otherwise."""
    kind, _, rest = ref.partition(":")
    if kind == "person" and rest.isdigit():
        person = session.get(Person, int(rest))
        return person.display_name if person else "a former person"
    return f"system ({rest})" if kind == "system" else ref
