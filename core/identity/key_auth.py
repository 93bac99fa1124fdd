"""The per-call lookup of a team key: the identity behind a presented secret.

Only a key's SHA-256 is stored (core.identity.keys says why a fast hash is right for a
256-bit random key). The gateway finds the key behind each call in a short-lived in-process
copy (hash -> key, team and lifetime columns, for ``KEY_CACHE_TTL_S`` seconds), so a busy
key costs no database read per call. Revoking, rotating or changing a key's allow-list
clears that copy in the process that made the change (`forget_keys`), so there it applies to
the very next request; other processes (more gateway workers, other hosts) read the row
again within ``KEY_CACHE_TTL_S``. Expiry and grace periods are checked against the clock on
every call, cached or not.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, update
from sqlalchemy import select as sa_select

from core import clock, db
from core.db import table_of
from core.errors import Unauthenticated
from core.models.keys import ApiKey
from core.permissions import Actor

KEY_PREFIX = "qk_live_"
LAST_USE_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often
# How long a process may serve a key from its copy before reading the row again: the delay
# with which a revocation made in another process reaches this one.
KEY_CACHE_TTL_S = 5.0
# A bound on the copy (a flood of distinct valid keys cannot grow it without limit).
KEY_CACHE_MAX = 10_000


@dataclass(frozen=True)
class KeyIdentity:
    """The caller behind a valid key."""

    key_id: int
    team_id: int
    prefix: str

    @property
    def actor(self) -> Actor:
        return Actor(
            ref=f"key:{self.key_id}", display_name=f"API key {self.prefix}…", team_ids=frozenset({self.team_id})
        )


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class _Lifetime(Protocol):
    """The columns that decide a key's status: an ``ApiKey`` or a row of ``_BY_HASH``."""

    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def grace_until(self) -> datetime | None: ...


def key_status(key: _Lifetime, now: datetime) -> str:
    """active, grace, expired or revoked, at `now`."""
    if key.revoked_at is not None and key.revoked_at <= now:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    if key.grace_until is not None:
        return "grace" if key.grace_until > now else "expired"
    return "active"


def _ip_allowed(client_ip: str | None, networks: tuple[Any, ...]) -> bool:
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def authenticate(secret: str | None, *, client_ip: str | None = None, engine: Engine | None = None) -> KeyIdentity:
    """The identity behind a presented key, or Unauthenticated.

    Served from the process's copy of the key when it is younger than ``KEY_CACHE_TTL_S``
    (no database work at all); otherwise one indexed read, which refreshes the copy. A
    connection is taken from the pool only for that read, or for the throttled write of
    the key's last use."""
    engine = engine or db.get_engine()
    digest = _digest(secret)
    known = _fresh(digest, engine)
    if known is None:
        with engine.connect() as connection:
            known = _read_key(connection, engine, digest)
    now = clock.now()
    _check(known, now, client_ip)
    if _touch_due(known, now):
        # Throttled so that a busy key does not write on every call: its own short write
        # transaction (write lock first on SQLite). Noted in the copy first, so that the
        # calls arriving meanwhile do not write it too.
        known.last_used_at = now
        with engine.connect() as connection:
            connection.execution_options(quorum_write=True)
            connection.execute(_TOUCH, {"k_id": known.id, "now": now})
            connection.commit()
    return known.identity


def known_identity(secret: str | None, *, client_ip: str | None = None) -> KeyIdentity | None:
    """`authenticate`'s answer when it needs no database work at all, else None (call it then).

    For a server's event loop, which must not block: it refuses a malformed, revoked or
    expired key, or an address off the key's allow-list, from the process's copy alone, and
    so before the request's body is read. None for a key not in the copy, a stale copy, or
    a key whose last use is due to be written."""
    digest = _digest(secret)
    known = _fresh(digest, db.get_engine())
    if known is None:
        return None
    now = clock.now()
    _check(known, now, client_ip)
    return None if _touch_due(known, now) else known.identity


def _digest(secret: str | None) -> str:
    if not secret or not secret.startswith(KEY_PREFIX):
        raise Unauthenticated("Missing or malformed API key: send 'Authorization: Bearer qk_live_...'")
    return hash_key(secret)


def _fresh(digest: str, engine: Engine) -> _KnownKey | None:
    known = _known.get(digest)
    if known is None or known.engine is not engine or time.monotonic() - known.loaded > KEY_CACHE_TTL_S:
        return None
    return known


def _check(known: _KnownKey, now: datetime, client_ip: str | None) -> None:
    status = key_status(known, now)
    if status == "revoked":
        raise Unauthenticated("This API key has been revoked")
    if status == "expired":
        raise Unauthenticated("This API key has expired")
    if known.networks is not None and not _ip_allowed(client_ip, known.networks):
        raise Unauthenticated(f"This API key may not be used from {client_ip or 'an unknown address'}")


def _touch_due(known: _KnownKey, now: datetime) -> bool:
    return known.last_used_at is None or now - known.last_used_at > LAST_USE_EVERY


def forget_keys() -> None:
    """Drop this process's copy of the keys (after a key changed), so the next call reads them."""
    with _known_lock:
        _known.clear()


class _KnownKey:
    """A key as read from its row at `loaded` (monotonic), for the gateway's per-call lookup."""

    __slots__ = (
        "engine",
        "loaded",
        "id",
        "identity",
        "revoked_at",
        "expires_at",
        "grace_until",
        "networks",
        "last_used_at",
    )

    def __init__(self, engine: Engine, row: Any) -> None:
        self.engine, self.loaded = engine, time.monotonic()
        self.id: int = row.id
        self.identity = KeyIdentity(key_id=row.id, team_id=row.team_id, prefix=row.prefix)
        self.revoked_at: datetime | None = row.revoked_at
        self.expires_at: datetime | None = row.expires_at
        self.grace_until: datetime | None = row.grace_until
        # Parsed once per read, not per call; None: no allow-list.
        self.networks: tuple[Any, ...] | None = (
            tuple(ipaddress.ip_network(c) for c in row.allowed_cidrs.split(",") if c) if row.allowed_cidrs else None
        )
        self.last_used_at: datetime | None = row.last_used_at


_known: dict[str, _KnownKey] = {}
_known_lock = threading.Lock()


def _read_key(connection: Connection, engine: Engine, digest: str) -> _KnownKey:
    # A Core read of the columns it needs (no ORM object). An unknown key is not kept: a
    # stream of made-up keys must not fill the copy.
    row = connection.execute(_BY_HASH, {"h": digest}).first()
    connection.rollback()  # end the read snapshot
    if row is None:
        raise Unauthenticated("Incorrect API key provided")
    known = _KnownKey(engine, row)
    with _known_lock:
        if len(_known) >= KEY_CACHE_MAX:
            _known.clear()
        _known[digest] = known
    return known


_KEYS = table_of(ApiKey)
_BY_HASH = sa_select(
    _KEYS.c.id,
    _KEYS.c.team_id,
    _KEYS.c.prefix,
    _KEYS.c.revoked_at,
    _KEYS.c.expires_at,
    _KEYS.c.grace_until,
    _KEYS.c.allowed_cidrs,
    _KEYS.c.last_used_at,
).where(_KEYS.c.key_hash == bindparam("h"))
_TOUCH = update(_KEYS).where(_KEYS.c.id == bindparam("k_id")).values(last_used_at=bindparam("now"))
