"""Team API keys: how applications authenticate to the gateway without the OpenAI key.

A key is 32 random bytes (256 bits) shown once at creation as ``qk_live_<43 chars>``.
Only its SHA-256 is stored. A slow password hash (bcrypt, argon2) protects low-entropy
secrets against guessing; a 256-bit random key cannot be guessed, so a fast hash loses
nothing, and it lets the gateway find a key with one indexed lookup on every call
instead of comparing a slow hash against every stored key.

The gateway finds the key behind each call in a short-lived in-process copy (hash ->
key, team and lifetime columns, for ``KEY_CACHE_TTL_S`` seconds), so a busy key costs no
database read per call. Revoking, rotating or changing a key's allow-list clears that copy
in the process that made the change, so there it applies to the very next request; other
processes (more gateway workers, other hosts) read the row again within
``KEY_CACHE_TTL_S``. Expiry and grace periods are checked against the clock on every call,
cached or not. Rotation issues a new key and lets the old one work until its grace
period ends.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core import clock, db
from core.audit.record import committing, record
from core.db import get_or_not_found, saved_id, table_of
from core.errors import Unauthenticated, ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.identity.people import get_team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require

KEY_PREFIX = "qk_live_"
VISIBLE_CHARS = 6  # random characters shown after the prefix, enough to tell keys apart
AGE_WARNING_DAYS = 90
LAST_USE_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often
MAX_EXPIRY_DAYS = 3650
# How long a process may serve a key from its copy before reading the row again: the delay
# with which a revocation made in another process reaches this one.
KEY_CACHE_TTL_S = 5.0
# A bound on the copy (a flood of distinct valid keys cannot grow it without limit).
KEY_CACHE_MAX = 10_000


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``secret`` is shown once and never again."""

    key_id: int
    team_id: int
    prefix: str
    secret: str = ""

    def __repr__(self) -> str:  # never print the secret by accident
        return f"CreatedKey(key_id={self.key_id}, team_id={self.team_id}, prefix={self.prefix!r})"


@dataclass(frozen=True)
class KeyView:
    id: int
    team_id: int
    label: str
    prefix: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    grace_until: datetime | None
    allowed_cidrs: tuple[str, ...]
    status: str  # active | grace | expired | revoked
    age_days: int

    @property
    def age_warning(self) -> str | None:
        if self.status in ("active", "grace") and self.age_days > AGE_WARNING_DAYS:
            return f"{self.age_days} days old: rotate it (keys should be replaced every {AGE_WARNING_DAYS} days)"
        return None


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


def parse_cidrs(cidrs: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Validate an allow-list ("10.0.0.0/8, 192.168.1.7") into normalised CIDRs."""
    if cidrs is None:
        return ()
    items = cidrs.replace("\n", ",").split(",") if isinstance(cidrs, str) else list(cidrs)
    result = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValidationError(f"{item!r} is not an IP address or CIDR range (e.g. 10.0.0.0/8)") from None
    return tuple(dict.fromkeys(result))


# ---- changing --------------------------------------------------------------------------


def create_key(
    *,
    session: Session,
    actor: Actor,
    team_id: int,
    label: str = "",
    expires_days: int | None = None,
    allowed_cidrs: str | list[str] | None = None,
) -> CreatedKey:
    require(actor, Permission.KEY_MANAGE)
    get_team(session, team_id)
    label = " ".join((label or "").split())
    refuse_secrets(label, field="the key's name")
    label = label[:80]
    if expires_days is not None and not (1 <= expires_days <= MAX_EXPIRY_DAYS):
        raise ValidationError(f"Expiry must be between 1 and {MAX_EXPIRY_DAYS} days")
    cidrs = parse_cidrs(allowed_cidrs)
    with committing(session):
        created = _insert_key(session, actor, team_id, label, expires_days, cidrs)
        record(
            session,
            actor=actor,
            action="key.create",
            target_type="api_key",
            target_id=created.key_id,
            team_id=team_id,
            after=_event_view(_key(session, created.key_id)),
        )
    return created


def revoke_key(*, session: Session, actor: Actor, key_id: int) -> None:
    require(actor, Permission.KEY_MANAGE)
    key = _key(session, key_id)
    if key.revoked_at is not None:
        raise ValidationError("This key is already revoked")
    with committing(session):
        key.revoked_at = clock.now()
        session.add(key)
        session.flush()
        record(
            session,
            actor=actor,
            action="key.revoke",
            target_type="api_key",
            target_id=saved_id(key),
            team_id=key.team_id,
            after={"revoked_at": key.revoked_at},
        )
    forget_keys()  # refused from the next request on, in this process


def rotate_key(*, session: Session, actor: Actor, key_id: int, grace_hours: int = 24) -> CreatedKey:
    """A new key for the same team and settings; the old one works for ``grace_hours`` more."""
    require(actor, Permission.KEY_MANAGE)
    old = _key(session, key_id)
    now = clock.now()
    if _status(old, now) not in ("active",):
        raise ValidationError("Only an active key can be rotated (this one is revoked, expired or already rotated)")
    if not (0 <= grace_hours <= 24 * 30):
        raise ValidationError("The grace period must be between 0 hours and 30 days")
    expires_days = None
    if old.expires_at is not None:
        expires_days = max(1, (old.expires_at - old.created_at).days)
    with committing(session):
        created = _insert_key(session, actor, old.team_id, old.label, expires_days, parse_cidrs(old.allowed_cidrs))
        old.grace_until = now + timedelta(hours=grace_hours)
        old.replaced_by_id = created.key_id
        session.add(old)
        session.flush()
        record(
            session,
            actor=actor,
            action="key.rotate",
            target_type="api_key",
            target_id=saved_id(old),
            team_id=old.team_id,
            after={"new_key_id": created.key_id, "grace_until": old.grace_until},
        )
    forget_keys()
    return created


def set_allowed_cidrs(*, session: Session, actor: Actor, key_id: int, allowed_cidrs: str | list[str]) -> None:
    require(actor, Permission.KEY_MANAGE)
    key = _key(session, key_id)
    cidrs = parse_cidrs(allowed_cidrs)
    before = parse_cidrs(key.allowed_cidrs)
    with committing(session):
        key.allowed_cidrs = ",".join(cidrs)
        session.add(key)
        session.flush()
        record(
            session,
            actor=actor,
            action="key.cidrs.set",
            target_type="api_key",
            target_id=saved_id(key),
            team_id=key.team_id,
            before={"allowed_cidrs": before},
            after={"allowed_cidrs": cidrs},
        )
    forget_keys()


# ---- reading ---------------------------------------------------------------------------


def list_keys(session: Session, *, actor: Actor, team_id: int | None = None) -> list[KeyView]:
    require(actor, Permission.KEY_MANAGE)
    query = select(ApiKey).order_by(col(ApiKey.team_id), col(ApiKey.id).desc())
    if team_id is not None:
        query = query.where(ApiKey.team_id == team_id)
    now = clock.now()
    return [_view(k, now) for k in session.exec(query)]


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
    status = _status(known, now)
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


# ---- helpers ---------------------------------------------------------------------------


def _insert_key(
    session: Session, actor: Actor, team_id: int, label: str, expires_days: int | None, cidrs: tuple[str, ...]
) -> CreatedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    key = ApiKey(
        team_id=team_id,
        label=label,
        prefix=secret[: len(KEY_PREFIX) + VISIBLE_CHARS],
        key_hash=hash_key(secret),
        created_by=actor.ref,
        created_at=now,
        expires_at=now + timedelta(days=expires_days) if expires_days else None,
        allowed_cidrs=",".join(cidrs),
    )
    session.add(key)
    session.flush()
    return CreatedKey(key_id=saved_id(key), team_id=team_id, prefix=key.prefix, secret=secret)


def _key(session: Session, key_id: int) -> ApiKey:
    return get_or_not_found(session, ApiKey, key_id, "API key")


class _Lifetime(Protocol):
    """The columns that decide a key's status: an ``ApiKey`` or a row of ``_BY_HASH``."""

    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def grace_until(self) -> datetime | None: ...


def _status(key: _Lifetime, now: datetime) -> str:
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


def _event_view(key: ApiKey) -> dict[str, Any]:
    # No key material: neither the hash nor the visible prefix goes into the audit trail.
    return {"label": key.label, "expires_at": key.expires_at, "allowed_cidrs": parse_cidrs(key.allowed_cidrs)}


def _view(key: ApiKey, now: datetime) -> KeyView:
    return KeyView(
        id=saved_id(key),
        team_id=key.team_id,
        label=key.label,
        prefix=key.prefix,
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
        grace_until=key.grace_until,
        allowed_cidrs=parse_cidrs(key.allowed_cidrs),
        status=_status(key, now),
        age_days=(now - key.created_at).days,
    )
