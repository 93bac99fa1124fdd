"""The networks each team key is used from, folded from settled calls: for the detector of a
key used from a network it never was (core.anomalies.networks).

A settled call that came with a team key and a network prefix (core/gateway/key_networks.py
reduces the caller's address to it at the HTTP door, so no full address is ever stored) keeps
the prefix in its pending roll-up row; the fold (`pending_rollups.py`) adds it here: one row
per (key, network) with first seen, last seen and calls. Calls with no address (a person's
playground or A/B runs, in process) or with no key have nothing to add.

Why in `budgets/`: the fold lives here, with the other roll-ups of settled calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func
from sqlalchemy.dialects import postgresql, sqlite

from core.db import table_of
from core.models.anomalies import KeyNetwork
from core.prebuilt import Prebuilt

TABLE = table_of(KeyNetwork)

# A call seen from a network: (key id, team id, network prefix, when it started).
Seen = tuple[int, int | None, str, datetime]


def network_rows(calls: Iterable[Seen]) -> list[dict[str, Any]]:
    """One row per (key, network), in key order (upserts lock in the same order)."""
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for key_id, team_id, network, at in calls:
        group = groups.get((key_id, network))
        if group is None:
            groups[(key_id, network)] = {
                "key_id": key_id,
                "team_id": team_id,
                "network": network,
                "first_seen": at,
                "last_seen": at,
                "calls": 1,
            }
        else:
            group["first_seen"] = min(group["first_seen"], at)
            group["last_seen"] = max(group["last_seen"], at)
            group["calls"] += 1
    return [groups[k] for k in sorted(groups)]


def add(connection: Connection, calls: Iterable[Seen]) -> None:
    """Add these calls to their keys' networks, in the caller's transaction."""
    rows = network_rows(calls)
    if rows:
        _upsert(connection.dialect.name).execute(connection, rows)


_UPSERTS: dict[str, Prebuilt] = {}


def _upsert(dialect: str) -> Prebuilt:
    statement = _UPSERTS.get(dialect)
    if statement is None:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TABLE)
        c = TABLE.c
        upsert = insert.on_conflict_do_update(
            index_elements=[c.key_id, c.network],
            set_={
                "calls": c.calls + insert.excluded.calls,
                # Folds from two processes may commit out of order.
                "first_seen": func.min(c.first_seen, insert.excluded.first_seen)
                if dialect == "sqlite"
                else func.least(c.first_seen, insert.excluded.first_seen),
                "last_seen": func.max(c.last_seen, insert.excluded.last_seen)
                if dialect == "sqlite"
                else func.greatest(c.last_seen, insert.excluded.last_seen),
            },
        )
        statement = _UPSERTS[dialect] = Prebuilt(upsert)
    return statement
