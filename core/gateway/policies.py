"""Each team's guardrail policy, stored in the database and read on every call.

Reads are served from an in-process copy for a few seconds (the hot path should not pay
a query for a setting that changes a few times a year); an edit in this process clears
that copy at once, another process sees it within ``POLICY_TTL_S``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlmodel import Session

from core import clock
from core.audit import committing, record
from core.errors import ValidationError
from core.guardrails import GuardrailPolicy
from core.identity import get_team
from core.models.gateway import TeamGuardrailPolicy
from core.permissions import Actor, Permission, require

POLICY_TTL_S = 5.0
DEFAULT_POLICY: dict[str, Any] = {"pii_action": "redact", "moderation": "block"}

_cache: dict[int, tuple[float, GuardrailPolicy]] = {}
_lock = threading.Lock()


def team_policy(session: Session, team_id: int) -> GuardrailPolicy:
    """The team's policy (defaults when none is stored), from the short-lived copy if fresh."""
    now = time.monotonic()
    cached = _cache.get(team_id)
    if cached and now - cached[0] < POLICY_TTL_S:
        return cached[1]
    policy = GuardrailPolicy.from_dict(stored_policy_dict(session, team_id))
    with _lock:
        _cache[team_id] = (now, policy)
    return policy


def stored_policy_dict(session: Session, team_id: int) -> dict[str, Any]:
    row = session.get(TeamGuardrailPolicy, team_id)
    return json.loads(row.policy_json) if row else dict(DEFAULT_POLICY)


def set_team_policy(*, session: Session, actor: Actor, team_id: int, pii_action: str | dict[str, str],
                    moderation: str) -> GuardrailPolicy:
    """Change a team's guardrails (admins). ``pii_action`` is one action or a per-kind mapping."""
    require(actor, Permission.TEAM_MANAGE)
    get_team(session, team_id)
    data = {"pii_action": pii_action, "moderation": moderation}
    try:
        policy = GuardrailPolicy.from_dict(data)
    except TypeError as exc:
        raise ValidationError(f"Invalid guardrail policy: {exc}") from None
    before = stored_policy_dict(session, team_id)
    row = session.get(TeamGuardrailPolicy, team_id) or TeamGuardrailPolicy(team_id=team_id, policy_json="{}",
                                                                          updated_by=actor.ref)
    with committing(session):
        row.policy_json = json.dumps(data, sort_keys=True)
        row.updated_at, row.updated_by = clock.now(), actor.ref
        session.add(row)
        session.flush()
        record(session, actor=actor, action="team.guardrails.set", target_type="team", target_id=team_id,
               team_id=team_id, before=before, after=data)
    forget(team_id)
    return policy


def forget(team_id: int | None = None) -> None:
    """Drop the in-process copy (one team, or all)."""
    with _lock:
        if team_id is None:
            _cache.clear()
        else:
            _cache.pop(team_id, None)
