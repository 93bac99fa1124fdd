"""What admins tune: each detector's sensitivity per team, and series muted for a while."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from core import clock
from core.anomalies.detectors import DETECTORS, Sensitivity
from core.audit.record import committing, record
from core.errors import ValidationError
from core.models.anomalies import AnomalyMute, AnomalySensitivity
from core.permissions import Actor, Permission, require

FACTOR_RANGE = (0.25, 10.0)
LONGEST_MUTE = timedelta(days=90)


def load_sensitivity(session: Session) -> Sensitivity:
    rows = session.execute(select(AnomalySensitivity)).scalars()
    return Sensitivity({(row.detector, row.team_id): row.factor for row in rows})


def set_sensitivity(session: Session, *, actor: Actor, detector: str, team_id: int = 0, factor: float) -> None:
    """Multiply `detector`'s thresholds by `factor` for a team (0: every team without its own).

    Below 1 fires more readily, above 1 less; 1 is the default."""
    require(actor, Permission.ALERT_CONFIGURE)
    if detector not in DETECTORS:
        raise ValidationError(f"Unknown detector {detector!r}; known: {', '.join(DETECTORS)}")
    low, high = FACTOR_RANGE
    if not low <= factor <= high:
        raise ValidationError(f"A sensitivity factor is between {low} and {high}")
    with committing(session):
        row = session.get(AnomalySensitivity, (detector, team_id))
        before = None if row is None else {"factor": row.factor}
        if row is None:
            row = AnomalySensitivity(detector=detector, team_id=team_id, updated_at=clock.now())
            session.add(row)
        row.factor = float(factor)
        row.updated_by = actor.ref
        row.updated_at = clock.now()
        record(
            session,
            actor=actor,
            action="anomaly.sensitivity.set",
            target_type="anomaly_detector",
            target_id=detector,
            team_id=team_id or None,
            before=before,
            after={"factor": float(factor)},
        )


def mute(session: Session, *, actor: Actor, series: str, until: datetime, reason: str = "") -> None:
    """No alert for `series` (and the series under it, e.g. "key:12" covers "key:12:model:x") until `until`."""
    require(actor, Permission.ALERT_MANAGE)
    series = series.strip()
    if not series or len(series) > 200 or "\x00" in series:
        raise ValidationError("Name the series to mute, e.g. key:12 or team:3")
    if until.tzinfo is None:
        raise ValidationError("A mute ends at a UTC time")
    now = clock.now()
    if not now < until <= now + LONGEST_MUTE:
        raise ValidationError(f"A mute ends in the future, at most {LONGEST_MUTE.days} days from now")
    with committing(session):
        row = session.get(AnomalyMute, series)
        before = None if row is None else {"until": row.until}
        if row is None:
            row = AnomalyMute(series=series, until=until)
            session.add(row)
        row.until = until
        row.reason = reason.strip()[:500]
        row.muted_by = actor.ref
        record(
            session,
            actor=actor,
            action="anomaly.series.mute",
            target_type="anomaly_series",
            target_id=series,
            before=before,
            after={"until": until, "reason": row.reason},
        )


def active_mutes(session: Session) -> dict[str, datetime]:
    return {row.series: row.until for row in session.execute(select(AnomalyMute)).scalars()}


def is_muted(mutes: dict[str, datetime], series: str, hour: datetime) -> bool:
    """Whether a mute on the series or one above it covers `hour`."""
    parts = series.split(":")
    for end in range(len(parts), 0, -1):
        until = mutes.get(":".join(parts[:end]))
        if until is not None and hour < until:
            return True
    return False
