"""Outgoing webhooks for anomaly alerts, budget alerts and work waiting too long: one URL
per team and per role.

The body is JSON with a Slack-compatible `text` (the alert's sentence) and ids: what and
where, never a prompt or an answer. Sending happens after the detection's transaction
commits, from a background thread with retries and backoff, so a slow or dead receiver
delays nothing; that thread records how each post ended (`deliveries`). A URL is not a
secret but a token inside one is: it is stored (admins only set it, audited with the URL
masked) and shown masked everywhere, its delivery records included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import clock, db
from core.anomalies import deliveries
from core.anomalies.deliveries import Setting
from core.anomalies.detectors import DETECTORS
from core.audit.record import committing, record
from core.background import Outcome, Sender, post_with_retries
from core.errors import ValidationError
from core.formatting import money
from core.models.anomalies import AlertWebhook, AnomalyAlert
from core.models.identity import Team
from core.permissions import Actor, Permission, parse_role, require

log = logging.getLogger(__name__)
# Seconds before each retry; tests shorten them.
RETRY_DELAYS: list[float] = [1.0, 5.0, 30.0]
TIMEOUT = 5.0
PAGE = "pages/alerts.py"


def mask(url: str) -> str:
    """Scheme and host only: "https://hooks.slack.com/…" (the path may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def set_webhook(session: Session, *, actor: Actor, scope: str, ref: str, url: str) -> None:
    """Set (or with an empty `url`, remove) the webhook of a team (`ref` its id) or a role (`ref` its name)."""
    require(actor, Permission.ALERT_CONFIGURE)
    if scope == "team":
        if not ref.isdigit() or session.get(Team, int(ref)) is None:
            raise ValidationError(f"No team with id {ref!r}")
    elif scope == "role":
        ref = parse_role(ref).value
    else:
        raise ValidationError("A webhook belongs to a team or a role")
    url = url.strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
            raise ValidationError("A webhook URL starts with http:// or https:// and names a host")
    with committing(session):
        row = session.get(AlertWebhook, (scope, ref))
        before = None if row is None else {"url": mask(row.url)}
        if not url:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(AlertWebhook(scope=scope, ref=ref, url=url, updated_by=actor.ref, updated_at=clock.now()))
        else:
            row.url, row.updated_by, row.updated_at = url, actor.ref, clock.now()
        record(
            session,
            actor=actor,
            action="anomaly.webhook.set",
            target_type="alert_webhook",
            target_id=f"{scope}:{ref}",
            team_id=int(ref) if scope == "team" else None,
            before=before,
            after={"url": mask(url)} if url else None,
        )


@dataclass(frozen=True)
class WebhookView:
    scope: str
    ref: str
    url_masked: str


def list_webhooks(session: Session, *, actor: Actor) -> list[WebhookView]:
    require(actor, Permission.ALERT_READ)
    rows = session.execute(select(AlertWebhook).order_by(AlertWebhook.scope, AlertWebhook.ref)).scalars()
    return [WebhookView(row.scope, row.ref, mask(row.url)) for row in rows]


@dataclass(frozen=True)
class Target:
    """A URL to post to, and the settings ((scope, ref) of `alert_webhook`) that name it."""

    url: str
    settings: tuple[Setting, ...]


@dataclass(frozen=True)
class Job:
    """One post for the sender: where, what, which settings its delivery record goes to, and
    the database that record is written in."""

    target: Target
    body: dict[str, Any]
    db_url: str


def load_hooks(session: Session) -> dict[Setting, str]:
    return {(row.scope, row.ref): row.url for row in session.execute(select(AlertWebhook)).scalars()}


def targets(hooks: dict[Setting, str], team_id: int | None, role: str) -> list[Target]:
    """A team's webhook and a role's, each URL once (one post serves both when they share it)."""
    named: dict[str, list[Setting]] = {}
    for setting in ([("team", str(team_id))] if team_id else []) + [("role", role)]:
        url = hooks.get(setting)
        if url:
            named.setdefault(url, []).append(setting)
    return [Target(url, tuple(settings)) for url, settings in sorted(named.items())]


def database_of(session: Session) -> str:
    """The database URL the sender records deliveries in (in memory only: it may hold a password)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=False)


def jobs_for(session: Session, alerts: Sequence[AnomalyAlert]) -> list[Job]:
    """The posts that announce `alerts`: to their team's webhook and their role's."""
    if not alerts:
        return []
    hooks = load_hooks(session)
    database = database_of(session)
    jobs: list[Job] = []
    for alert in alerts:
        spec = DETECTORS.get(alert.detector)
        body = {
            "type": "anomaly.alert",
            "text": f"{spec.label if spec else alert.detector}: {alert.sentence}",
            "alert_id": alert.id,
            "detector": alert.detector,
            "series": alert.series,
            "team_id": alert.team_id or None,
            "hour": alert.last_hour.isoformat(),
            "page": PAGE,
        }
        jobs.extend(
            Job(target, body, database) for target in targets(hooks, alert.team_id, spec.concerns if spec else "")
        )
    return jobs


# ---- budget alerts ---------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetNotice:
    """A budget threshold just recorded; who to tell is looked up by the sender, off the call path."""

    db_url: str
    notice: dict[str, Any]


def announce_budget_alert(db_url: str, notice: dict[str, Any]) -> None:
    """Called (by name, from `core.budgets.alerts`) after a settle that recorded a budget
    alert commits: queues it for the team's webhook and finance's, and returns at once."""
    _sender.put(BudgetNotice(db_url, notice))


def budget_jobs(session: Session, notice: dict[str, Any]) -> list[Job]:
    team_id = notice.get("team_id")
    team = session.get(Team, team_id) if team_id else None
    owner = f" of team {team.name}" if team is not None else ""
    cap = f" of {money(notice['cap_micro'])}" if notice.get("cap_micro") is not None else ""
    body = {
        "type": "budget.alert",
        "text": (
            f"Budget `{notice['scope']}`{owner} reached {notice['threshold_pct']}% in period "
            f"{notice['period']}: {money(notice['spent_micro'])} spent{cap}."
        ),
        **notice,
        "team": team.name if team is not None else "",
        "page": "pages/budgets.py",
    }
    database = database_of(session)
    return [Job(target, body, database) for target in targets(load_hooks(session), team_id, "finance")]


# ---- delivery --------------------------------------------------------------------------


def enqueue(jobs: Sequence[Job]) -> None:
    """Hand the jobs to the background sender; returns at once."""
    for job in jobs:
        _sender.put(job)


def _send(item: Job | BudgetNotice) -> None:
    for job in _resolve(item):
        started = clock.now()
        outcome = deliver(job.target.url, job.body)
        if not outcome.delivered:
            log.warning("alert webhook to %s failed after %d attempts", mask(job.target.url), outcome.attempts)
        try:
            deliveries.record(
                db.get_engine(job.db_url),
                settings=job.target.settings,
                url_masked=mask(job.target.url),
                body=job.body,
                outcome=outcome,
                started_at=started,
                finished_at=clock.now(),
            )
        except Exception:  # noqa: BLE001 - a record that cannot be written must not stop the next post
            log.exception("recording a webhook delivery to %s failed", mask(job.target.url))


def _resolve(item: Job | BudgetNotice) -> list[Job]:
    if not isinstance(item, BudgetNotice):
        return [item]
    with db.session(db.get_engine(item.db_url)) as session:
        return budget_jobs(session, item.notice)


_sender: Sender[Job | BudgetNotice] = Sender("alert-webhooks", _send)


def deliver(url: str, body: dict[str, Any]) -> Outcome:
    """POST `body` as JSON, retrying with backoff."""
    return post_with_retries(url, body, delays=RETRY_DELAYS, timeout=TIMEOUT)


def wait_for_webhooks(timeout: float = 30.0) -> bool:
    """Block until every queued webhook was tried (tests, and a clean shutdown)."""
    return _sender.wait(timeout)
