"""Anomaly alerts as work items: open -> acknowledged -> resolved (with a note), each step audited.

One incident is one alert: a finding for a series that already has an alert whose last
hour is at most `CONTINUES` before it extends that alert (its last hour, hours, peak and
sentence) instead of opening another. Detectors whose findings name a one-time change
(a new model for a key, a prompt's new version) never open a second alert for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core import clock
from core.anomalies.detectors import DETECTORS, Finding
from core.anomalies.tuning import active_mutes, is_muted
from core.attention import AttentionItem
from core.audit.record import committing, record
from core.db import get_or_not_found, table_of
from core.errors import Conflict, ValidationError
from core.models.anomalies import AnomalyAlert
from core.models.identity import Team
from core.permissions import Actor, Permission, Role, require

ALERT = table_of(AnomalyAlert).c
TEAM = table_of(Team).c
CONTINUES = timedelta(hours=2)
ONCE = {
    "new_model",
    "rare_model",
    "new_network",
    "answer_drift",
    "cost_drift",
    "feedback_drift",
    "schema_drift",
}  # the series names the change itself
OPEN_STATES = ("open", "acknowledged")
MAX_NOTE = 2000
PAGE = "pages/alerts.py"


def record_findings(session: Session, findings: Sequence[Finding], *, actor: Actor) -> list[AnomalyAlert]:
    """Open or extend the alerts of `findings` in the caller's transaction; returns the new ones.

    Findings for hours an alert already covers change nothing, so detecting an hour twice
    is harmless."""
    require(actor, Permission.ALERT_MANAGE)
    mutes = active_mutes(session)
    now = clock.now()
    opened = []
    for finding in sorted(findings, key=lambda f: f.hour):
        if is_muted(mutes, finding.series, finding.hour):
            continue
        existing = session.execute(
            select(AnomalyAlert)
            .where(ALERT.detector == finding.detector, ALERT.series == finding.series)
            .order_by(ALERT.last_hour.desc())
            .limit(1)
        ).scalar()
        if existing is not None and (finding.detector in ONCE or existing.last_hour >= finding.hour - CONTINUES):
            if finding.hour > existing.last_hour:
                existing.last_hour = finding.hour
                existing.hours += 1
                existing.observed = finding.observed
                existing.peak = max(existing.peak, finding.observed)
                existing.sentence = finding.sentence
                existing.updated_at = now
            continue
        alert = AnomalyAlert(
            detector=finding.detector,
            series=finding.series,
            team_id=finding.team_id,
            first_hour=finding.hour,
            last_hour=finding.hour,
            observed=finding.observed,
            peak=finding.observed,
            usual_low=finding.usual_low,
            usual_high=finding.usual_high,
            sentence=finding.sentence,
            created_at=now,
            updated_at=now,
        )
        session.add(alert)
        session.flush()
        record(
            session,
            actor=actor,
            action="anomaly.alert.open",
            target_type="anomaly_alert",
            target_id=alert.id or 0,
            team_id=finding.team_id or None,
            after={
                "detector": finding.detector,
                "series": finding.series,
                "hour": finding.hour,
                "sentence": finding.sentence,
            },
        )
        opened.append(alert)
    return opened


def acknowledge(session: Session, *, actor: Actor, alert_id: int, note: str = "") -> AnomalyAlert:
    """Someone is looking at it: open -> acknowledged."""
    require(actor, Permission.ALERT_MANAGE)
    with committing(session):
        alert = _locked(session, alert_id)
        if alert.state != "open":
            raise Conflict(f"Alert {alert_id} is {alert.state}; only an open alert can be acknowledged")
        alert.state = "acknowledged"
        alert.acknowledged_by = actor.ref
        alert.acknowledged_at = clock.now()
        alert.note = _note(note, required=False) or alert.note
        record(
            session,
            actor=actor,
            action="anomaly.alert.acknowledge",
            target_type="anomaly_alert",
            target_id=alert_id,
            team_id=alert.team_id or None,
            before={"state": "open"},
            after={"state": "acknowledged", "note": alert.note},
        )
    return alert


def resolve(session: Session, *, actor: Actor, alert_id: int, note: str) -> AnomalyAlert:
    """Done with it, saying what it was: open or acknowledged -> resolved."""
    require(actor, Permission.ALERT_MANAGE)
    text = _note(note, required=True)
    with committing(session):
        alert = _locked(session, alert_id)
        if alert.state == "resolved":
            raise Conflict(f"Alert {alert_id} is already resolved")
        before = alert.state
        alert.state = "resolved"
        alert.resolved_by = actor.ref
        alert.resolved_at = clock.now()
        alert.note = text
        record(
            session,
            actor=actor,
            action="anomaly.alert.resolve",
            target_type="anomaly_alert",
            target_id=alert_id,
            team_id=alert.team_id or None,
            before={"state": before},
            after={"state": "resolved", "note": text},
        )
    return alert


def _locked(session: Session, alert_id: int) -> AnomalyAlert:
    alert = session.execute(select(AnomalyAlert).where(ALERT.id == alert_id).with_for_update()).scalar()
    if alert is None:
        return get_or_not_found(session, AnomalyAlert, alert_id, "Anomaly alert")  # raises NotFound
    found: AnomalyAlert = alert
    return found


def _note(note: str, *, required: bool) -> str:
    text = (note or "").strip()
    if required and not text:
        raise ValidationError("Say what it was: resolving an alert needs a note")
    if len(text) > MAX_NOTE:
        raise ValidationError(f"The note is longer than {MAX_NOTE} characters")
    if "\x00" in text:
        raise ValidationError("The note cannot contain NUL characters")
    return text


# ---- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertView:
    id: int
    detector: str
    label: str
    series: str
    team_id: int  # 0: no team
    team: str
    first_hour: datetime
    last_hour: datetime
    hours: int
    observed: float
    usual_low: float
    usual_high: float
    unit: str
    sentence: str
    state: str
    note: str


def list_alerts(
    session: Session, *, actor: Actor, states: Sequence[str] = OPEN_STATES, limit: int = 200
) -> list[AlertView]:
    """Alerts in the given states, newest incident first."""
    require(actor, Permission.ALERT_READ)
    teams = _team_names(session)
    rows = session.execute(
        select(AnomalyAlert)
        .where(ALERT.state.in_(list(states)))
        .order_by(ALERT.last_hour.desc(), ALERT.id.desc())
        .limit(limit)
    ).scalars()
    return [_view(row, teams) for row in rows]


def get_alert(session: Session, *, actor: Actor, alert_id: int) -> AlertView:
    require(actor, Permission.ALERT_READ)
    row = get_or_not_found(session, AnomalyAlert, alert_id, "Anomaly alert")
    teams = _team_names(session)
    return _view(row, teams)


def _team_names(session: Session) -> dict[int, str]:
    return {team_id: name for team_id, name in session.execute(select(TEAM.id, TEAM.name))}


def _view(row: AnomalyAlert, teams: dict[int, str]) -> AlertView:
    spec = DETECTORS.get(row.detector)
    return AlertView(
        id=row.id or 0,
        detector=row.detector,
        label=spec.label if spec else row.detector,
        series=row.series,
        team_id=row.team_id,
        team=teams.get(row.team_id, "") if row.team_id else "",
        first_hour=row.first_hour,
        last_hour=row.last_hour,
        hours=row.hours,
        observed=row.observed,
        usual_low=row.usual_low,
        usual_high=row.usual_high,
        unit=spec.unit if spec else "",
        sentence=row.sentence,
        state=row.state,
        note=row.note,
    )


# Which role's Home shows which alerts: finance the spend, governance leads the behaviour,
# admins the keys (and everything, since they configure the detectors).
_CONCERNS = {
    Role.FINANCE: {name for name, spec in DETECTORS.items() if spec.concerns == "finance"},
    Role.GOVERNANCE_LEAD: {name for name, spec in DETECTORS.items() if spec.concerns == "governance_lead"},
    Role.ADMIN: {name for name, spec in DETECTORS.items() if spec.concerns == "admin"},
}


def concerned_detectors(actor: Actor) -> set[str]:
    if actor.is_system:
        return set(DETECTORS)
    return set().union(*(_CONCERNS.get(role, set()) for role in actor.roles))


def open_for(session: Session, actor: Actor, role: Role | None = None) -> list[AttentionItem]:
    """The open alerts that concern `actor`'s roles (or only `role`, for that role's section of
    Home), as attention items."""
    if not actor.can(Permission.ALERT_READ):
        return []
    wanted = concerned_detectors(actor)
    if role is not None:
        wanted &= _CONCERNS.get(role, set())
    return [
        AttentionItem(
            title=f"{view.label}{f' ({view.team})' if view.team else ''}",
            detail=view.sentence,
            severity="warning",
            page=PAGE,
        )
        for view in list_alerts(session, actor=actor, states=("open",), limit=50)
        if view.detector in wanted
    ]


def behaviour_for(session: Session, actor: Actor) -> list[AttentionItem]:
    """The open behaviour alerts (rates, drift) a governance lead acts on: Home's alerts provider."""
    return open_for(session, actor, Role.GOVERNANCE_LEAD)
