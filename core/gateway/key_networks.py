"""The networks each team key is used from, for the detector of a key used from a network
it never was (core.anomalies.networks).

Only the network prefix is kept (IPv4 /24, IPv6 /48), never the full address: a client's
address is personal data, and the prefix is all the detector needs (a new office, cloud
region or country shows up as a new prefix; a laptop's next DHCP lease does not). The HTTP
door reduces the address to its prefix before the call starts (`network_of`), so the full
address reaches neither the call's state nor the database.

The write-back writer (`write_key_networks`) upserts one row per (key, network) of a batch:
first seen, last seen, calls. Calls with no address (a person's playground or A/B runs,
in process) or with no key are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.db import table_of
from core.models.anomalies import KeyNetwork
from core.prebuilt import Prebuilt

TABLE = table_of(KeyNetwork)
IPV4_PREFIX = 24
IPV6_PREFIX = 48


def network_of(address: str | None) -> str | None:
    """The address's network prefix ("203.0.113.0/24", "2001:db8:1::/48"), or None when it is
    missing or not an IP address."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    mapped = getattr(parsed, "ipv4_mapped", None)  # ::ffff:a.b.c.d is an IPv4 caller
    if mapped is not None:
        parsed = mapped
    if parsed.version == 4:
        a, b, c, _ = parsed.packed
        return f"{a}.{b}.{c}.0/{IPV4_PREFIX}"
    # The address with its host bits cleared, written as ipaddress writes it (about 3x
    # cheaper than building an ip_network on every call).
    host_bits = 128 - IPV6_PREFIX
    return f"{ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)}/{IPV6_PREFIX}"


def network_rows(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per (key, network) of the batch, in key order (upserts lock in the same order)."""
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for call in calls:
        network, row = call.network, call.row
        key_id = row["key_id"]
        if network is None or key_id is None:
            continue
        at: datetime = row["created_at"]
        group = groups.get((key_id, network))
        if group is None:
            groups[(key_id, network)] = {
                "key_id": key_id,
                "team_id": row["team_id"],
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
                # Batches from two processes may commit out of order.
                "first_seen": func.min(c.first_seen, insert.excluded.first_seen)
                if dialect == "sqlite"
                else func.least(c.first_seen, insert.excluded.first_seen),
                "last_seen": func.max(c.last_seen, insert.excluded.last_seen)
                if dialect == "sqlite"
                else func.greatest(c.last_seen, insert.excluded.last_seen),
            },
        )
        statement = _UPSERTS[dialect] = Prebuilt(upsert)  # every settled batch runs it (core/prebuilt.py)
    return statement


def write_key_networks(session: Session, calls: Sequence[Any]) -> None:
    rows = network_rows(calls)
    if rows:
        connection = session.connection()
        _upsert(connection.dialect.name).execute(connection, rows)
