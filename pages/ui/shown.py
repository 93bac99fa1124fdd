"""The formatting layer bound to this deployment's time zone, for pages.

`core.formatting` is pure and takes the zone as an argument; pages all show times in the
configured zone (`QUORUM_TIMEZONE`), named next to each time, so they ask here.
"""

from __future__ import annotations

from datetime import datetime

from core import formatting
from core.settings import settings


def when(moment: datetime | None, *, seconds: bool = False) -> str:
    """`2026-11-27 14:05 CET`: a stored UTC instant in the configured zone, the zone named."""
    return formatting.when(moment, settings().timezone, seconds=seconds)
