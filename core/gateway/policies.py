"""Each team's guardrail policy, stored in the database and read on every call.

Reads are served from an in-process copy for a few seconds (the hot path should not pay
a query for a setting that changes a few times a year); an edit in this process clears
that copy at once, another process sees it within ``POLICY_TTL_S``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core import clock
from core.audit.record import committing, record
from core.errors import ValidationError
from core.gateway.rate_limit_rules import RateLimits, parse_limits
from core.guardrails import GuardrailPolicy
from core.identity.people import get_team
from core.models.gateway import TeamGuardrailPolicy
from core.permissions import Actor, Permission, require

POLICY_TTL_S = 5.0
DEFAULT_POLICY: dict[str, Any] = {"pii_action": "redact", "moderation": "block"}

# Gateway settings kept in the same stored policy, beside the guardrails:
#   cache: "deterministic" answers only temperature-0 or seeded chat (and embeddings) from
#          the response cache; "all" also sampled ones; "off" never.
#   moderation_provider: where the moderation verdict comes from (core.gateway.moderation).
CACHE_MODES = ("deterministic", "all", "off")
MODERATION_PROVIDERS = ("upstream", "upstream_or_local", "local")
DEFAULT_SETTINGS: dict[str, str] = {"cache": "deterministic", "moderation_provider": "upstream"}
#   rate_limits: requests and tokens per window, per key, team and person (rate_limit_rules).
RATE_LIMITS = "rate_limits"


@dataclass(frozen=True)
class GatewaySettings:
    cache: str = "deterministic"
    moderation_provider: str = "upstream"
    rate_limits: RateLimits = RateLimits()


_cache: dict[int, tuple[float, GuardrailPolicy, GatewaySettings]] = {}
_lock = threading.Lock()


def team_policy(session: Session, team_id: int) -> GuardrailPolicy:
    """The team's policy (defaults when none is stored), from the short-lived copy if fresh."""
    return _cached(team_id, session)[1]


def team_settings(team_id: int, session: Session | None = None) -> GatewaySettings:
    """The team's cache and moderation-source settings (a session is opened only on a miss)."""
    return _cached(team_id, session)[2]


def for_call(team_id: int) -> tuple[GuardrailPolicy, GatewaySettings]:
    """The team's guardrails and gateway settings as one snapshot, read once at the start of
    a call so that every stage of it applies the same policy (a session is opened only on a miss)."""
    _, policy, settings = _cached(team_id, None)
    return policy, settings


def _cached(team_id: int, session: Session | None) -> tuple[float, GuardrailPolicy, GatewaySettings]:
    now = time.monotonic()
    cached = _cache.get(team_id)
    if cached and now - cached[0] < POLICY_TTL_S:
        return cached
    if session is None:
        from core import db

        with db.session() as own:
            stored = stored_policy_dict(own, team_id)
    else:
        stored = stored_policy_dict(session, team_id)
    guardrails = {k: v for k, v in stored.items() if k not in DEFAULT_SETTINGS and k != RATE_LIMITS}
    settings = GatewaySettings(
        **{k: stored.get(k, v) for k, v in DEFAULT_SETTINGS.items()},
        rate_limits=RateLimits.from_stored(stored.get(RATE_LIMITS)),
    )
    entry = (now, GuardrailPolicy.from_dict(guardrails), settings)
    with _lock:
        _cache[team_id] = entry
    return entry


def stored_policy_dict(session: Session, team_id: int) -> dict[str, Any]:
    row = session.get(TeamGuardrailPolicy, team_id)
    return json.loads(row.policy_json) if row else dict(DEFAULT_POLICY)


def set_team_policy(
    *,
    session: Session,
    actor: Actor,
    team_id: int,
    pii_action: str | dict[str, str],
    moderation: str,
    cache: str | None = None,
    moderation_provider: str | None = None,
) -> GuardrailPolicy:
    """Change a team's guardrails (admins). ``pii_action`` is one action or a per-kind mapping.

    ``cache`` and ``moderation_provider``: None keeps what is stored (or the default)."""
    require(actor, Permission.TEAM_MANAGE)
    get_team(session, team_id)
    before = stored_policy_dict(session, team_id)
    data = {"pii_action": pii_action, "moderation": moderation}
    for name, value, allowed in (
        ("cache", cache, CACHE_MODES),
        ("moderation_provider", moderation_provider, MODERATION_PROVIDERS),
    ):
        value = value if value is not None else before.get(name, DEFAULT_SETTINGS[name])
        if value not in allowed:
            raise ValidationError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
        data[name] = value
    if before.get(RATE_LIMITS):
        data[RATE_LIMITS] = before[RATE_LIMITS]  # set on their own (set_rate_limits)
    try:
        policy = GuardrailPolicy.from_dict({"pii_action": pii_action, "moderation": moderation})
    except TypeError as exc:
        raise ValidationError(f"Invalid guardrail policy: {exc}") from None
    row = session.get(TeamGuardrailPolicy, team_id) or TeamGuardrailPolicy(
        team_id=team_id, policy_json="{}", updated_by=actor.ref
    )
    with committing(session):
        row.policy_json = json.dumps(data, sort_keys=True)
        row.updated_at, row.updated_by = clock.now(), actor.ref
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="team.guardrails.set",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before=before,
            after=data,
        )
    forget(team_id)
    return policy


def set_rate_limits(*, session: Session, actor: Actor, team_id: int, limits: dict[str, Any]) -> RateLimits:
    """Change a team's rate limits (admins): ``{"key"|"team"|"person": {"requests": n, "tokens": n}}``,
    a missing or None value for no limit. Every process applies them within ``POLICY_TTL_S``."""
    require(actor, Permission.TEAM_MANAGE)
    checked = parse_limits(limits)
    get_team(session, team_id)
    before = stored_policy_dict(session, team_id)
    data = {**before, RATE_LIMITS: checked.as_dict()}
    if not data[RATE_LIMITS]:
        del data[RATE_LIMITS]
    row = session.get(TeamGuardrailPolicy, team_id) or TeamGuardrailPolicy(
        team_id=team_id, policy_json="{}", updated_by=actor.ref
    )
    with committing(session):
        row.policy_json = json.dumps(data, sort_keys=True)
        row.updated_at, row.updated_by = clock.now(), actor.ref
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="team.rate_limits.set",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before={RATE_LIMITS: before.get(RATE_LIMITS, {})},
            after={RATE_LIMITS: checked.as_dict()},
        )
    forget(team_id)
    return checked


def forget(team_id: int | None = None) -> None:
    """Drop the in-process copy (one team, or all)."""
    with _lock:
        if team_id is None:
            _cache.clear()
        else:
            _cache.pop(team_id, None)
