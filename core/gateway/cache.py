"""The response cache: exact match on model, messages and parameters, per team.

The key is the SHA-256 of the canonical JSON of the request as it goes upstream (after
redaction), so two requests hit the same entry only when they would send the same bytes.
Entries are stored per team and looked up with the team in the key: an answer never
crosses teams, even for an identical request. Parameters that change only the delivery,
not the answer (stream, stream_options), are left out of the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from core import clock
from core.gateway.request_shape import cap_output
from core.models.gateway import CacheEntry

DEFAULT_TTL_S = 300
_DELIVERY_ONLY = {"stream", "stream_options", "user"}


def request_hash(kind: str, body: dict[str, Any]) -> str:
    key = {k: v for k, v in body.items() if k not in _DELIVERY_ONLY}
    canonical = json.dumps([kind, key], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


ENTRY = CacheEntry.__table__
# Built once: building a statement costs more Python time than SQLite takes to run it.
_LOOKUP = sa_select(ENTRY.c.id, ENTRY.c.response_json, ENTRY.c.expires_at).where(
    ENTRY.c.team_id == bindparam("t"), ENTRY.c.request_hash == bindparam("k")
)
_COUNT_HIT = update(ENTRY).where(ENTRY.c.id == bindparam("e_id")).values(hits=ENTRY.c.hits + 1)


@dataclass(frozen=True)
class Hit:
    id: int
    response_json: str


def lookup(session: Session | Connection, *, team_id: int, key: str) -> Hit | None:
    """The live entry for the request (id and stored answer), or None; one Core SELECT."""
    row = session.execute(_LOOKUP, {"t": team_id, "k": key}).first()
    if row is None or _aware(row.expires_at) <= clock.now():
        return None
    return Hit(id=row.id, response_json=row.response_json)


class AdmissionLookup:
    """The lookup made inside the budget admission's transaction (one transaction per call
    instead of two), for the request capped to the output the reservation granted."""

    def __init__(self, *, kind: str, team_id: int, body: dict[str, Any]) -> None:
        self.kind, self.team_id, self.body = kind, team_id, body
        self.key: str | None = None
        self.hit: Hit | None = None

    def __call__(self, connection: Connection, granted_max_tokens: int | None) -> None:
        self.key = request_hash(self.kind, cap_output(self.body, granted_max_tokens, self.kind))
        self.hit = lookup(connection, team_id=self.team_id, key=self.key)


def _aware(value):
    # Core reads through the column type (UtcDateTime), so this is already aware; SQLite
    # text from another driver path would not be.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def count_hit(session: Session | Connection, entry_id: int) -> None:
    session.execute(_COUNT_HIT, {"e_id": entry_id})


def _upsert(dialect_insert):
    statement = dialect_insert(ENTRY)
    return statement.on_conflict_do_update(
        index_elements=["team_id", "request_hash"],
        set_={k: statement.excluded[k] for k in ("model", "response_json", "created_at", "expires_at", "hits")},
    )


_UPSERT = {"sqlite": _upsert(sqlite_insert), "postgresql": _upsert(postgresql_insert)}


def store(
    session: Session | Connection,
    *,
    team_id: int,
    key: str,
    model: str,
    response: dict[str, Any] | None = None,
    ttl_s: int,
    response_json: str | None = None,
) -> None:
    """Add or replace the entry (inside the caller's transaction).

    ``response_json``: the answer already serialized (the caller stores the same text as the
    call's payload), so it is not dumped twice."""
    if ttl_s <= 0:
        return
    now = clock.now()
    values = {
        "team_id": team_id,
        "request_hash": key,
        "model": model,
        "response_json": response_json if response_json is not None else json.dumps(response),
        "created_at": now,
        "expires_at": now + timedelta(seconds=ttl_s),
        "hits": 0,
    }
    # One statement, no ORM bookkeeping: an upsert also settles a race between two identical calls.
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    session.execute(_UPSERT[dialect.name], values)


def purge_expired(session: Session) -> int:
    result = session.execute(delete(CacheEntry).where(col(CacheEntry.expires_at) <= clock.now()))
    session.commit()
    return result.rowcount or 0


def cacheable(kind: str, mode: str, body: dict[str, Any]) -> bool:
    """Whether a team's cache ``mode`` lets this answer be served from (and stored in) the cache.

    ``deterministic`` (the default): embeddings and moderations, chat at temperature 0 or with
    a seed, and Responses at temperature 0; a sampled answer served again would hide that a
    second call gives another answer."""
    if mode == "off":
        return False
    if mode == "all" or kind in ("embeddings", "moderations"):
        return True
    return body.get("temperature") == 0 or (kind == "chat" and body.get("seed") is not None)
