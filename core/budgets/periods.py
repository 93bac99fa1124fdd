"""Budget periods in the configured time zone: a key per period, so budgets roll over by themselves.

Spend is stored per (budget, period key); a new month simply has a new key, so there is
no reset job that could fail to run. Keys and bounds are computed from the UTC instant
in `settings().timezone` (e.g. 2026-11-30T23:30Z is already 2026-12 in Europe/Berlin).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.errors import ValidationError
from core.settings import settings

PERIODS = ("month", "week", "day")
PERIOD_LABELS = {"month": "Calendar month", "week": "Week (Monday to Sunday)", "day": "Day"}


@dataclass(frozen=True)
class Period:
    kind: str
    key: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    first_day: date  # local dates
    last_day: date


def zone() -> ZoneInfo:
    return ZoneInfo(settings().timezone)


def check_period(kind: str) -> str:
    if kind not in PERIODS:
        raise ValidationError(f"Unknown budget period {kind!r}; choose one of: {', '.join(PERIODS)}")
    return kind


def local_date(instant: datetime) -> date:
    if instant.tzinfo is None:
        raise ValidationError("A budget period needs a timezone-aware instant")
    return instant.astimezone(zone()).date()


def period_at(kind: str, instant: datetime) -> Period:
    """The period of kind `kind` that contains `instant`, in the configured zone."""
    check_period(kind)
    day = local_date(instant)
    if kind == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        key = f"{first.year:04d}-{first.month:02d}"
    elif kind == "week":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
        iso = first.isocalendar()
        key = f"{iso.year:04d}-W{iso.week:02d}"
    else:
        first, following = day, day + timedelta(days=1)
        key = day.isoformat()
    return Period(kind, key, _start_of(first), _start_of(following), first, following - timedelta(days=1))


def period_key(kind: str, instant: datetime) -> str:
    return period_at(kind, instant).key


def _start_of(day: date) -> datetime:
    """The UTC instant at which local `day` begins (DST-aware through zoneinfo)."""
    return datetime.combine(day, time(0), tzinfo=zone()).astimezone(UTC)


def day_end(day: date) -> datetime:
    """The UTC instant at which local `day` ends."""
    return _start_of(day + timedelta(days=1))
