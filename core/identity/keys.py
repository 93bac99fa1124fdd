"""Team API keys: how applications authenticate to the gateway without the OpenAI key.

A key is 32 random bytes (256 bits) shown once at creation as ``qk_live_<43 chars>``.
Only its SHA-256 is stored. A slow password hash (bcrypt, argon2) protects low-entropy
secrets against guessing; a 256-bit random key cannot be guessed, so a fast hash loses
nothing, and it lets the gateway find a key with one indexed lookup on every call
instead of comparing a slow hash against every stored key.

Here keys are created, rotated, revoked, restricted and listed; each change clears this
process's copy of the keys. The per-call lookup is core.identity.key_auth. Rotation issues a
new key and lets the old one work until its grace period ends.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.db import get_or_not_found, saved_id
from core.errors import ValidationError
from core.guardrails.saved_text import refuse_secrets
from core.identity.key_auth import KEY_PREFIX, forget_keys, hash_key, key_status
from core.identity.people import get_team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require

VISIBLE_CHARS = 6  # random characters shown after the prefix, enough to tell keys apart
AGE_WARNING_DAYS = 90
MAX_EXPIRY_DAYS = 3650


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
    if key_status(old, now) not in ("active",):
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
        status=key_status(key, now),
        age_days=(now - key.created_at).days,
    )
