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
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from core import clock
from core.models.gateway import CacheEntry

DEFAULT_TTL_S = 300
_DELIVERY_ONLY = {"stream", "stream_options", "user"}


def request_hash(kind: str, body: dict[str, Any]) -> str:
    key = {k: v for k, v in body.items() if k not in _DELIVERY_ONLY}
    canonical = json.dumps([kind, key], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(session: Session, *, team_id: int, key: str) -> CacheEntry | None:
    entry = session.exec(select(CacheEntry).where(CacheEntry.team_id == team_id,
                                                  CacheEntry.request_hash == key)).first()
    if entry is None or entry.expires_at <= clock.now():
        return None
    return entry


def count_hit(session: Session, entry_id: int) -> None:
    session.connection().execute(update(CacheEntry.__table__).where(col(CacheEntry.id) == entry_id).values(hits=CacheEntry.__table__.c.hits + 1))


def store(session: Session, *, team_id: int, key: str, model: str, response: dict[str, Any], ttl_s: int) -> None:
    """Add or replace the entry (inside the caller's transaction)."""
    if ttl_s <= 0:
        return
    now = clock.now()
    connection = session.connection()
    dialect = connection.dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    values = {"team_id": team_id, "request_hash": key, "model": model, "response_json": json.dumps(response),
              "created_at": now, "expires_at": now + timedelta(seconds=ttl_s), "hits": 0}
    # One statement, no ORM bookkeeping: an upsert also settles a race between two identical calls.
    statement = insert(CacheEntry.__table__).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["team_id", "request_hash"],
        set_={k: statement.excluded[k] for k in ("model", "response_json", "created_at", "expires_at", "hits")})
    connection.execute(statement)


def purge_expired(session: Session) -> int:
    result = session.execute(delete(CacheEntry).where(col(CacheEntry.expires_at) <= clock.now()))
    session.commit()
    return result.rowcount or 0
