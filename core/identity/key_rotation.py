"""Admins' Home: team API keys due for rotation (the 90-day rule) or about to expire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from core import clock
from core.identity.keys import AGE_WARNING_DAYS, list_keys
from core.identity.people import list_teams
from core.permissions import Actor


@dataclass(frozen=True)
class DueKey:
    team: str
    name: str  # "<label> (qk_live_ab12…)"
    age_days: int
    expires_at: datetime | None
    days_left: int  # before rotation is due or the key expires, whichever comes first; < 0: overdue
    reason: str  # "rotation due in 5 days", "rotation overdue by 3 days", "expires in 2 days"


def keys_due(session: Session, *, actor: Actor, within_days: int = 14) -> list[DueKey]:
    """Working keys that reach 90 days of age, or their expiry, within `within_days`; the
    most urgent first. Keys already revoked or expired are left out: they open nothing."""
    now = clock.now()
    teams = {t.id: t.name for t in list_teams(session)}
    due = []
    for key in list_keys(session, actor=actor):
        if key.status not in ("active", "grace"):
            continue
        rotate_in = AGE_WARNING_DAYS - key.age_days
        expires_in = (key.expires_at - now).days if key.expires_at is not None else None
        if expires_in is not None and expires_in < rotate_in:
            days_left, reason = expires_in, "expires today" if expires_in == 0 else f"expires in {expires_in} days"
        else:
            days_left, reason = rotate_in, _rotation(rotate_in)
        if days_left > within_days:
            continue
        label = f"{key.label} " if key.label else ""
        name = f"{label}({key.prefix}…)"
        due.append(
            DueKey(teams.get(key.team_id, "a removed team"), name, key.age_days, key.expires_at, days_left, reason)
        )
    return sorted(due, key=lambda k: (k.days_left, k.team, k.name))


def _rotation(days: int) -> str:
    if days < 0:
        return f"rotation overdue by {-days} day{'s' if days < -1 else ''}"
    if days == 0:
        return "rotation due today"
    return f"rotation due in {days} day{'s' if days > 1 else ''}"
