"""The formatting layer bound to this deployment's time zone, for pages.

`core.formatting` is pure and takes the zone as an argument; pages all show times in the
configured zone (`QUORUM_TIMEZONE`), named next to each time, so they ask here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from core import db, formatting
from core.audit import query as audit_query
from core.settings import settings


def when(moment: datetime | None, *, seconds: bool = False) -> str:
    """`2026-11-27 14:05 CET`: a stored UTC instant in the configured zone, the zone named."""
    return formatting.when(moment, settings().timezone, seconds=seconds)


def names_of(refs: Iterable[str | None]) -> Callable[[str | None], str]:
    """A reader of actor refs (`person:3`) as the people's names; other refs (`system:cli`)
    stay as written, a missing one reads `—`."""
    with db.session_scope() as session:
        names = audit_query.actor_names(session, {ref for ref in refs if ref})

    def name(ref: str | None) -> str:
        return names.get(ref, ref) if ref else formatting.MISSING

    return name
