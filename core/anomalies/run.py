"""Detection of the hours closed since the last run: cron-safe, idempotent, one runner at a time.

The progress (`anomaly_run.last_hour`) moves in the same transaction as the alerts it
found, so a run that dies leaves nothing half-done and the next run starts where the last
committed one ended. A lease on the same row keeps a second runner (another server, cron
beside a page view) from detecting the same hours at once; a crashed runner's lease expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core import clock, db
from core.anomalies import alerts as alert_items
from core.anomalies import notify, waiting
from core.anomalies.detectors import HOUR, Finding, data_start, load_usage, matrices, needed_hours, surges, young
from core.anomalies.drift import answer_drift
from core.anomalies.feedback_drift import feedback_drift
from core.anomalies.key_use import key_use
from core.anomalies.networks import new_networks
from core.anomalies.rare_model import rare_models
from core.anomalies.rates import rate_jumps
from core.anomalies.schema_drift import schema_drift
from core.anomalies.tuning import load_sensitivity
from core.anomalies.wording import Names
from core.budgets import pending_rollups
from core.db import changed_rows, table_of
from core.errors import Conflict
from core.models.anomalies import AnomalyRun
from core.permissions import Actor, Permission, require

RUN_ROW = table_of(AnomalyRun).c
RUN = "detect"
LEASE = timedelta(minutes=10)
# Calls settle a moment after their hour ends; an hour is detected once this much later.
SETTLE_GRACE = timedelta(minutes=2)
FIRST_RUN_HOURS = 24  # a first run looks back a day, not over all history
BATCH_HOURS = 24
MAX_HOURS = 24 * 14  # a run catches up at most two weeks


@dataclass
class RunResult:
    hours: list[datetime] = field(default_factory=list)
    opened: int = 0
    findings: int = 0
    busy: bool = False  # another runner holds the lease
    waiting: int = 0  # reviews and held requests announced for waiting too long


def last_closed_hour(now: datetime | None = None) -> datetime:
    """The start of the newest hour that has ended (plus the grace for late settles)."""
    now = (now or clock.now()) - SETTLE_GRACE
    return now.replace(minute=0, second=0, microsecond=0) - HOUR


def last_detected(session: Session) -> datetime | None:
    row = session.get(AnomalyRun, RUN)
    return None if row is None else row.last_hour


def is_due(session: Session, now: datetime | None = None) -> bool:
    """Whether an hour has closed since the last run: one primary-key read, for page views."""
    last = last_detected(session)
    return last is None or last < last_closed_hour(now)


def detect(*, actor: Actor, engine: Engine | None = None, now: datetime | None = None) -> RunResult:
    """Detect every closed hour since the last run (at most `MAX_HOURS`); returns what it did."""
    require(actor, Permission.ALERT_MANAGE)
    engine = engine or db.get_engine()
    holder = f"{actor.ref}:{uuid.uuid4().hex[:8]}"
    if not _acquire(engine, holder):
        return RunResult(busy=True)
    result = RunResult()
    try:
        with db.session(engine) as reader:
            newest = last_closed_hour(now)
            last = last_detected(reader)
        first = newest - (FIRST_RUN_HOURS - 1) * HOUR if last is None else last + HOUR
        first = max(first, newest - (MAX_HOURS - 1) * HOUR)
        hours = [first + i * HOUR for i in range(int((newest - first) / HOUR) + 1)] if first <= newest else []
        for start in range(0, len(hours), BATCH_HOURS):
            batch = hours[start : start + BATCH_HOURS]
            # Read without the write lock (on SQLite it would hold up every settle meanwhile).
            with db.session(engine) as reader:
                findings = find(reader, batch)
            with db.write_session(engine) as session:
                opened = alert_items.record_findings(session, findings, actor=actor)
                _advance(session, holder, batch[-1])
                jobs = notify.jobs_for(session, opened)
                session.commit()
            notify.enqueue(jobs)  # after the commit: never for alerts that were rolled back
            result.hours.extend(batch)
            result.findings += len(findings)
            result.opened += len(opened)
        with db.write_session(engine) as session:
            _check_lease(session, holder)
            result.waiting, jobs = waiting.announce_waiting(session, actor=actor, now=now)
            session.commit()
        notify.enqueue(jobs)
    finally:
        _release(engine, holder)
    return result


SYSTEM = Actor.system("anomalies")


def detect_if_due(*, engine: Engine | None = None) -> RunResult | None:
    """For the first page view after an hour closes: a cheap check, then a run if one is due.

    The run acts as the system, whoever's view triggered it: catching up is not a choice
    of the viewer (an auditor's view may trigger it too)."""
    engine = engine or db.get_engine()
    with db.session(engine) as session:
        if not is_due(session):
            return None
    return detect(actor=SYSTEM, engine=engine)


def find(session: Session, hours: list[datetime]) -> list[Finding]:
    """Every detector over `hours` (no writes of its own; the calls still waiting for the
    roll-ups are folded first, so an hour is read whole)."""
    pending_rollups.catch_up(session.connection())
    names = Names.load(session)
    sensitivity = load_sensitivity(session)
    start = data_start(session)
    loaded = needed_hours(hours, recent=young(start, hours))
    families = matrices(load_usage(session, loaded), loaded, start)
    keys = next((family for family in families if family.kind == "key"), None)
    key_findings = key_use(session, keys, hours, sensitivity, names, start)
    first_uses = {(f.series, f.hour) for f in key_findings if f.detector == "new_model"}
    return [
        *surges(families, hours, sensitivity, names),
        *rate_jumps(session, hours, sensitivity, names),
        *key_findings,
        *rare_models(session, hours, sensitivity, names, first_uses),
        *answer_drift(session, hours, sensitivity),
        *feedback_drift(session, hours, sensitivity),
        *new_networks(session, hours, sensitivity, names),
        *schema_drift(session, hours, sensitivity),
    ]


def _acquire(engine: Engine, holder: str) -> bool:
    now = clock.now()
    with db.write_session(engine) as session:
        taken = changed_rows(
            session.execute(
                update(table_of(AnomalyRun))
                .where(RUN_ROW.name == RUN, or_(RUN_ROW.expires_at.is_(None), RUN_ROW.expires_at < now))
                .values(holder=holder, expires_at=now + LEASE)
            )
        )
        if not taken:
            if session.get(AnomalyRun, RUN) is not None:
                return False
            session.add(AnomalyRun(name=RUN, holder=holder, expires_at=now + LEASE))
        try:
            session.commit()
        except IntegrityError:
            return False  # another runner created the row first
    return True


def _advance(session: Session, holder: str, hour: datetime) -> None:
    row = _check_lease(session, holder)
    row.last_hour = hour
    row.runs += 1
    row.expires_at = clock.now() + LEASE


def _check_lease(session: Session, holder: str) -> AnomalyRun:
    """The run's row, locked, if this runner still holds the lease (else nothing is written)."""
    row = session.get(AnomalyRun, RUN, with_for_update=True)
    if row is None or row.holder != holder:
        raise Conflict("The anomaly detection run lost its lease (it expired); the next run resumes")
    return row


def _release(engine: Engine, holder: str) -> None:
    with db.write_session(engine) as session:
        session.execute(
            update(table_of(AnomalyRun))
            .where(RUN_ROW.name == RUN, RUN_ROW.holder == holder)
            .values(holder="", expires_at=None)
        )
        session.commit()
