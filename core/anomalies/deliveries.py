"""How each post to a team's or a role's webhook ended, kept so that an admin can see a
receiver that stopped answering instead of finding out from a missed incident.

The background sender writes one row per webhook setting after a post's last attempt (never
on a call's path): the kind of notice and the ids it was about, the URL masked, the attempts,
and "delivered" or "failed" with the last HTTP status or the exception's class (its message
may quote the URL, so it is not kept). Never the body: its text is the notice itself.

Retention: the newest `KEEP_PER_TARGET` rows of each setting. A count rather than an age,
because what an admin asks is "what happened to the last few posts to this URL": a quiet
role webhook that failed its one post two months ago still shows that, and an alert storm
cannot grow the table past settings × `KEEP_PER_TARGET` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import db
from core.background import Outcome
from core.db import table_of
from core.models.anomalies import AlertWebhook, WebhookDelivery
from core.models.identity import Team
from core.permissions import Actor, Permission, require

KEEP_PER_TARGET = 100
DELIVERY = table_of(WebhookDelivery).c
HOOK = table_of(AlertWebhook).c
TEAM = table_of(Team).c
# The notices the webhooks carry, in words.
KINDS = {
    "anomaly.alert": "anomaly alert",
    "budget.alert": "budget threshold",
    "review.waiting": "review waiting",
    "held.waiting": "held request waiting",
}
Setting = tuple[str, str]  # (scope, ref) of an `alert_webhook` row


def about(body: dict[str, Any]) -> str:
    """What a notice was about, by id or name (never its sentence)."""
    kind = body.get("type")
    if kind == "anomaly.alert":
        return f"alert #{body.get('alert_id')} ({body.get('detector')}, {body.get('series')})"
    if kind == "budget.alert":
        return f"budget alert #{body.get('alert_id')} ({body.get('threshold_pct')}%, period {body.get('period')})"
    if kind == "review.waiting":
        return f"prompt {body.get('prompt')} version {body.get('version')}"
    if kind == "held.waiting":
        return f"held request {body.get('held_id')}"
    return ""


def record(
    engine: Engine,
    *,
    settings: Sequence[Setting],
    url_masked: str,
    body: dict[str, Any],
    outcome: Outcome,
    started_at: datetime,
    finished_at: datetime,
) -> None:
    """Store how one post ended, once per setting that names its URL, and keep each of those
    settings' newest `KEEP_PER_TARGET` rows. Its own short transaction, on the sender's thread."""
    kind = str(body.get("type", ""))[:40]
    subject = about(body)[:200]
    with db.write_session(engine) as session:
        for scope, ref in settings:
            session.add(
                WebhookDelivery(
                    scope=scope,
                    ref=ref,
                    url_masked=url_masked[:300],
                    kind=kind,
                    about=subject,
                    attempts=outcome.attempts,
                    status="delivered" if outcome.delivered else "failed",
                    http_status=outcome.status,
                    error=outcome.error[:80],
                    started_at=started_at,
                    finished_at=finished_at,
                )
            )
        session.flush()
        for scope, ref in settings:
            _prune(session, scope, ref)
        session.commit()


def _prune(session: Session, scope: str, ref: str) -> None:
    oldest_kept = session.execute(
        select(DELIVERY.id)
        .where(DELIVERY.scope == scope, DELIVERY.ref == ref)
        .order_by(DELIVERY.id.desc())
        .offset(KEEP_PER_TARGET - 1)
        .limit(1)
    ).scalar()
    if oldest_kept is not None:
        session.execute(
            delete(table_of(WebhookDelivery)).where(
                DELIVERY.scope == scope, DELIVERY.ref == ref, DELIVERY.id < oldest_kept
            )
        )


# ---- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    finished_at: datetime
    kind: str  # in words
    about: str
    status: str  # delivered | failed
    detail: str  # "HTTP 503", "ConnectError", "" when delivered
    attempts: int
    url_masked: str


@dataclass(frozen=True)
class TargetDeliveries:
    """One webhook setting's newest deliveries, newest first."""

    scope: str
    ref: str
    name: str  # "team Support", "role finance"
    configured: bool  # False once the setting was removed (its history is still kept)
    deliveries: list[DeliveryView]

    @property
    def failing(self) -> bool:
        """Its newest post failed: the receiver did not take the last notice."""
        return bool(self.deliveries) and self.deliveries[0].status == "failed"


def list_deliveries(session: Session, *, actor: Actor, per_target: int = 10) -> list[TargetDeliveries]:
    """Every webhook setting (and every removed one with history) with its newest
    `per_target` deliveries. Admins only: the URLs, even masked, say where notices go."""
    require(actor, Permission.ALERT_CONFIGURE)
    per_target = max(1, min(per_target, KEEP_PER_TARGET))
    configured = {(scope, ref) for scope, ref in session.execute(select(HOOK.scope, HOOK.ref))}
    with_history = {(scope, ref) for scope, ref in session.execute(select(DELIVERY.scope, DELIVERY.ref).distinct())}
    teams = {str(team_id): name for team_id, name in session.execute(select(TEAM.id, TEAM.name))}
    result = []
    for scope, ref in sorted(configured | with_history):
        rows = session.execute(
            select(WebhookDelivery)
            .where(DELIVERY.scope == scope, DELIVERY.ref == ref)
            .order_by(DELIVERY.id.desc())
            .limit(per_target)
        ).scalars()
        name = f"team {teams.get(ref, f'#{ref} (removed)')}" if scope == "team" else f"role {ref}"
        result.append(TargetDeliveries(scope, ref, name, (scope, ref) in configured, [_view(row) for row in rows]))
    return result


def _view(row: WebhookDelivery) -> DeliveryView:
    if row.status == "delivered":
        detail = ""
    elif row.http_status is not None:
        detail = f"HTTP {row.http_status}"
    else:
        detail = row.error or "no answer"
    return DeliveryView(
        finished_at=row.finished_at,
        kind=KINDS.get(row.kind, row.kind),
        about=row.about,
        status=row.status,
        detail=detail,
        attempts=row.attempts,
        url_masked=row.url_masked,
    )
