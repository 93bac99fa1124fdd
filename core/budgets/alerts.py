"""Budget alerts: exactly one per budget, threshold and period, stored, shown and sent.

`check` runs inside the settling transaction: a unique constraint (budget, period,
threshold) plus INSERT ... ON CONFLICT DO NOTHING makes the first settle that crosses a
threshold the only one that records it, however many callers cross it at once. An
alert's webhook is sent only after that transaction commits, from a background thread
with retries, so a slow or dead receiver never delays a call.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core import clock, formatting
from core.background import Sender, post_json
from core.budgets import counters, periods
from core.budgets.money import micro_to_decimal
from core.models.budgets import BudgetAlert

log = logging.getLogger(__name__)
ALERT = BudgetAlert.__table__
_PENDING = "quorum_budget_webhooks"
_NOTICES = "quorum_budget_notices"
# Who else hears of a recorded alert (the team and finance webhooks), named by string: that
# context sits above budgets, and is handed only a summary after the commit.
ANNOUNCE = "core.anomalies.notify:announce_budget_alert"
# Seconds to wait before each retry; tests shorten it.
RETRY_DELAYS: list[float] = [0.5, 2.0, 8.0]
WEBHOOK_TIMEOUT = 5.0


def crossed(budget: Any, counter: counters.Counter) -> list[int]:
    """The thresholds (percent) that the spent amounts have reached, in micro-dollars or tokens."""
    result = []
    for threshold in (int(t) for t in budget.thresholds.split(",") if t):
        by_money = budget.cap_micro is not None and counter.spent_micro * 100 >= threshold * budget.cap_micro
        by_tokens = budget.cap_tokens is not None and counter.spent_tokens * 100 >= threshold * budget.cap_tokens
        if by_money or by_tokens:
            result.append(threshold)
    return result


def check(session: Session, budget: Any, key: str, counter: counters.Counter | None = None) -> list[int]:
    """Record the alerts newly due for `budget` in period `key`; returns the new thresholds.

    `counter`: the period's counter as this transaction just left it (saves a read)."""
    counter = counter or counters.read(session, budget.id, key)
    if counter is None:
        return []
    due = crossed(budget, counter)
    if not due:
        return []
    existing = set(
        session.execute(
            select(ALERT.c.threshold_pct).where(ALERT.c.budget_id == budget.id, ALERT.c.period_key == key)
        ).scalars()
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new = []
    for threshold in (t for t in due if t not in existing):
        statement = (
            insert(ALERT)
            .values(
                budget_id=budget.id,
                period_key=key,
                threshold_pct=threshold,
                spent_micro=counter.spent_micro,
                spent_tokens=counter.spent_tokens,
                created_at=clock.now(),
                webhook_status="pending" if budget.webhook_url else "none",
                webhook_attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["budget_id", "period_key", "threshold_pct"])
            .returning(ALERT.c.id)
        )
        alert_id = session.execute(statement).scalar()
        if alert_id is None:
            continue  # another caller recorded it first
        new.append(threshold)
        session.info.setdefault(_NOTICES, []).append(_notice(session, budget, key, threshold, counter, alert_id))
        if budget.webhook_url:
            payload = _payload(budget, key, threshold, counter, alert_id)
            url = session.get_bind().url.render_as_string(hide_password=False)
            session.info.setdefault(_PENDING, []).append((budget.webhook_url, payload, alert_id, url))
    return new


def _notice(
    session: Session, budget: Any, key: str, threshold: int, counter: counters.Counter, alert_id: int
) -> tuple[str, dict[str, Any]]:
    notice = {
        "alert_id": alert_id,
        "budget_id": budget.id,
        "scope": budget.scope_key,
        "team_id": budget.team_id,
        "period": key,
        "threshold_pct": threshold,
        "spent_micro": counter.spent_micro,
        "cap_micro": budget.cap_micro,
    }
    return session.get_bind().url.render_as_string(hide_password=False), notice


def _payload(budget: Any, key: str, threshold: int, counter: counters.Counter, alert_id: int) -> dict[str, Any]:
    # Ids only: a webhook receiver learns no names or e-mails.
    return {
        "type": "budget.alert",
        "alert_id": alert_id,
        "budget_id": budget.id,
        "scope": budget.scope_key,
        "period": key,
        "threshold_pct": threshold,
        "spent_usd": str(micro_to_decimal(counter.spent_micro)),
        "spent_micro": counter.spent_micro,
        "cap_usd": None if budget.cap_micro is None else str(micro_to_decimal(budget.cap_micro)),
        "cap_micro": budget.cap_micro,
        "spent_tokens": counter.spent_tokens,
        "cap_tokens": budget.cap_tokens,
        "hard": budget.hard,
        "sent_at": clock.now().isoformat(),
    }


# ---- delivery --------------------------------------------------------------------------


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    for job in session.info.pop(_PENDING, []):
        _sender.put(job)
    # Handed to the sender too (url None): importing the announcer is no work for the call.
    for db_url, notice in session.info.pop(_NOTICES, []):
        _sender.put((None, notice, notice["alert_id"], db_url))


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_NOTICES, None)


def _send(job: tuple[str | None, dict[str, Any], int, str]) -> None:
    url, payload, alert_id, db_url = job
    if url is None:
        _announce(db_url, payload)
        return
    attempts, delivered = deliver(url, payload)
    _record_delivery(db_url, alert_id, attempts, delivered)


_sender: Sender[tuple[str | None, dict[str, Any], int, str]] = Sender("budget-webhooks", _send)


def _announce(db_url: str, notice: dict[str, Any]) -> None:
    module, _, name = ANNOUNCE.partition(":")
    getattr(importlib.import_module(module), name)(db_url, notice)


def deliver(url: str, payload: dict[str, Any]) -> tuple[int, bool]:
    """POST the payload as JSON, retrying with backoff; (attempts made, delivered?)."""
    return post_json(url, payload, delays=RETRY_DELAYS, timeout=WEBHOOK_TIMEOUT)


def _record_delivery(db_url: str, alert_id: int, attempts: int, delivered: bool) -> None:
    from core import db  # late: keeps this module importable without a configured database

    with db.write_session(db.get_engine(db_url)) as session:
        session.execute(
            update(ALERT)
            .where(ALERT.c.id == alert_id)
            .values(webhook_status="delivered" if delivered else "failed", webhook_attempts=attempts)
        )
        session.commit()


def wait_for_webhooks(timeout: float = 30.0) -> bool:
    """Block until every queued webhook was tried (tests, and a clean shutdown)."""
    return _sender.wait(timeout)


# ---- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertView:
    id: int
    budget_id: int
    period_key: str
    threshold_pct: int
    spent: str
    created_at: datetime
    webhook_status: str
    webhook_attempts: int


def list_alerts(session: Session, *, current_only: bool = False) -> list[AlertView]:
    """Stored alerts, newest first; with `current_only`, those of each budget's current period."""
    from core.models.budgets import Budget

    rows = session.execute(select(ALERT).order_by(ALERT.c.id.desc())).all()
    if current_only:
        now = clock.now()
        keys = {b.id: periods.period_key(b.period, now) for b in session.execute(select(Budget)).scalars()}
        rows = [r for r in rows if keys.get(r.budget_id) == r.period_key]
    return [
        AlertView(
            r.id,
            r.budget_id,
            r.period_key,
            r.threshold_pct,
            formatting.money(r.spent_micro),
            r.created_at,
            r.webhook_status,
            r.webhook_attempts,
        )
        for r in rows
    ]
