"""Team names for metric labels and log lines, read once per team and process.

A label carries the name people know a team by, never its id; a settled call knows only
the id. Names change rarely (a rename shows up in new series after a restart or `forget()`).
"""

from __future__ import annotations

import threading

from sqlalchemy import text

from core import db
from core.settings import settings

# By database and id: a process that switches databases (tests, a restore) reads names again.
_names: dict[tuple[str, int], str] = {}
_lock = threading.Lock()


def team_name(team_id: int | None) -> str:
    """The team's name, or "" for a call without a team (or one deleted since)."""
    if team_id is None:
        return ""
    key = (settings().database_url, team_id)
    found = _names.get(key)
    if found is not None:
        return found
    with db.get_engine().connect() as connection:
        name = connection.execute(text("SELECT name FROM team WHERE id = :id"), {"id": team_id}).scalar()
    with _lock:
        _names[key] = found = str(name) if name is not None else f"team {team_id}"
    return found


def forget() -> None:
    """Read the names again (tests; a team renamed)."""
    with _lock:
        _names.clear()
