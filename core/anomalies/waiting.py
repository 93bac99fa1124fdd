"""Work waiting too long, announced to the team and role webhooks once each: a prompt
version in review longer than `QUORUM_REVIEW_WAIT_ALERT_H` hours, and a held request
undecided longer than `QUORUM_HELD_WAIT_ALERT_MIN` minutes.

Found by the detection run; what was announced is stored (`waiting_notice`) in the same
transaction as its audit event, so a second run announces nothing again. The messages say
what and where (names, ages, a page), never a prompt's text or a held request's payload.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlmodel import Session

from core import clock
from core.anomalies.notify import Job, database_of, load_hooks, targets
from core.audit.record import record
from core.catalog.store import IN_REVIEW
from core.db import table_of
from core.gateway.held import PENDING
from core.models.anomalies import WaitingNotice
from core.models.catalog import Prompt, PromptVersion
from core.models.gateway import HeldRequest
from core.models.identity import Team
from core.permissions import Actor, Permission, require
from core.settings import settings

VERSION = table_of(PromptVersion).c
PROMPT = table_of(Prompt).c
HELD = table_of(HeldRequest).c
NOTICE = table_of(WaitingNotice).c
TEAM = table_of(Team).c
# At most this many of each kind per run (a backlog is announced over the next runs, not at once).
PER_RUN = 50
ROLE = "governance_lead"  # the role that reviews versions and decides held requests


def announce_waiting(session: Session, *, actor: Actor, now: datetime | None = None) -> tuple[int, list[Job]]:
    """Record, in the caller's transaction, the reviews and held requests newly waiting too
    long; returns how many, and the webhook jobs that announce them (send after the commit)."""
    require(actor, Permission.ALERT_MANAGE)
    now = now or clock.now()
    config = settings()
    reviews = _reviews(session, now - timedelta(hours=config.review_wait_alert_h))
    held = _held(session, now - timedelta(minutes=config.held_wait_alert_min))
    if not reviews and not held:
        return 0, []
    for kind, rows in (("review", reviews), ("held", held)):
        session.add_all(WaitingNotice(kind=kind, ref=row.id, notified_at=now) for row in rows)
    record(
        session,
        actor=actor,
        action="anomaly.waiting.notify",
        target_type="waiting_notice",
        target_id=now.isoformat(),
        after={"reviews": [row.id for row in reviews], "held": [row.public_id for row in held]},
    )
    session.flush()
    teams = {team_id: name for team_id, name in session.execute(select(TEAM.id, TEAM.name))}
    hooks = load_hooks(session)
    database = database_of(session)
    jobs: list[Job] = []
    for row in reviews:
        hours = (now - row.since).total_seconds() / 3600
        team = teams.get(row.team_id, "")
        body = {
            "type": "review.waiting",
            "text": f"Prompt `{row.prompt}` version {row.number} (team {team}) has waited {hours:.0f} h for review.",
            "prompt": row.prompt,
            "version": row.number,
            "team_id": row.team_id,
            "team": team,
            "waiting_hours": round(hours, 1),
            "page": "pages/review_queue.py",
        }
        jobs.extend(Job(target, body, database) for target in targets(hooks, row.team_id, ROLE))
    for hold in held:
        minutes = (now - hold.created_at).total_seconds() / 60
        team = teams.get(hold.team_id, "")
        body = {
            "type": "held.waiting",
            "text": (
                f"A request of team {team} held by `{hold.rule}` ({hold.kind}) has waited "
                f"{minutes:.0f} min for a decision."
            ),
            "held_id": hold.public_id,
            "team_id": hold.team_id,
            "team": team,
            "rule": hold.rule,
            "waiting_minutes": round(minutes),
            "page": "pages/held_requests.py",
        }
        jobs.extend(Job(target, body, database) for target in targets(hooks, hold.team_id, ROLE))
    return len(reviews) + len(held), jobs


def _reviews(session: Session, before: datetime) -> list[Row[Any]]:
    announced = select(NOTICE.ref).where(NOTICE.kind == "review")
    return list(
        session.execute(
            select(
                VERSION.id,
                VERSION.number,
                VERSION.state_changed_at.label("since"),
                PROMPT.name.label("prompt"),
                PROMPT.team_id,
            )
            .join(table_of(Prompt), PROMPT.id == VERSION.prompt_id)
            .where(VERSION.state == IN_REVIEW, VERSION.state_changed_at <= before, VERSION.id.not_in(announced))
            .order_by(VERSION.state_changed_at)
            .limit(PER_RUN)
        ).all()
    )


def _held(session: Session, before: datetime) -> list[Row[Any]]:
    announced = select(NOTICE.ref).where(NOTICE.kind == "held")
    return list(
        session.execute(
            select(HELD.id, HELD.public_id, HELD.team_id, HELD.kind, HELD.rule, HELD.created_at)
            .where(HELD.status == PENDING, HELD.created_at <= before, HELD.id.not_in(announced))
            .order_by(HELD.created_at)
            .limit(PER_RUN)
        ).all()
    )
