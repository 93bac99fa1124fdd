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
from sqlalchemy.exc import IntegrityError
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
    session.execute(update(CacheEntry).where(col(CacheEntry.id) == entry_id).values(hits=CacheEntry.hits + 1))


def store(session: Session, *, team_id: int, key: str, model: str, response: dict[str, Any], ttl_s: int) -> None:
    """Add or replace the entry (inside the caller's transaction)."""
    if ttl_s <= 0:
        return
    now = clock.now()
    session.execute(delete(CacheEntry).where(col(CacheEntry.team_id) == team_id, col(CacheEntry.request_hash) == key))
    try:
        with session.begin_nested():
            session.add(CacheEntry(team_id=team_id, request_hash=key, model=model,
                                   response_json=json.dumps(response), created_at=now,
                                   expires_at=now + timedelta(seconds=ttl_s)))
    except IntegrityError:
        pass  # a concurrent identical call stored it first: same answer, nothing to do


def purge_expired(session: Session) -> int:
    result = session.execute(delete(CacheEntry).where(col(CacheEntry.expires_at) <= clock.now()))
    session.commit()
    return result.rowcount or 0
