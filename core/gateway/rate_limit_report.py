"""What Observability shows of rate limits: each limited scope's use of the current window
against its limit, and the calls a limit refused (429), by team and key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlmodel import Session

from core import clock
from core.gateway.policies import RATE_LIMITS
from core.gateway.rate_limit_rules import SCOPES, RateLimits
from core.gateway.rate_limits import WINDOWS, window_start
from core.models.gateway import RATE_LIMITED_SQL, GatewayCall, TeamGuardrailPolicy
from core.models.identity import Person, Team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require
from core.settings import settings

PEOPLE = "people (playground, A/B runs)"


@dataclass(frozen=True)
class WindowUse:
    """One limited key, team or person in the current window."""

    team: str
    scope: str  # key | team | person
    subject: str  # the key's name, the person's name, or the team's
    requests: int
    requests_limit: int | None
    tokens: int
    tokens_limit: int | None


@dataclass
class Refusals:
    """The calls a rate limit refused for one team and key (or the team's people)."""

    team: str
    key: str
    requests: int = 0  # refused on the requests limit
    tokens: int = 0  # refused on the tokens limit
    last_at: datetime | None = None


@dataclass(frozen=True)
class RateLimitOverview:
    window_s: int
    resets_in_s: float
    uses: list[WindowUse] = field(default_factory=list)
    refusals: list[Refusals] = field(default_factory=list)


def rate_limit_overview(session: Session, *, actor: Actor, days: int = 1) -> RateLimitOverview:
    """Current use against every team's limits, and the 429s of the last ``days`` days."""
    require(actor, Permission.OBSERVABILITY_READ)
    window = settings().rate_limit_window_s
    now = clock.now()
    start = window_start(now.timestamp(), window)
    teams = dict(session.exec(select(Team.id, Team.name)).all())
    limits = {
        row.team_id: RateLimits.from_stored(json.loads(row.policy_json).get(RATE_LIMITS))
        for row in session.exec(select(TeamGuardrailPolicy)).scalars()
    }
    limits = {team_id: rule for team_id, rule in limits.items() if not rule.empty}
    used = {
        (row.scope, row.team_id, row.subject_id): row
        for row in session.exec(select(WINDOWS).where(WINDOWS.c.window_start == start)).all()
    }
    calls = session.exec(
        select(
            GatewayCall.team_id,
            GatewayCall.key_id,
            GatewayCall.rule,
            func.count().label("refused"),
            func.max(GatewayCall.created_at).label("last_at"),
        )
        .where(text(RATE_LIMITED_SQL), GatewayCall.created_at >= now - timedelta(days=days))
        .group_by(GatewayCall.team_id, GatewayCall.key_id, GatewayCall.rule)
    ).all()
    key_ids = {s for scope, _t, s in used if scope == "key"} | {c.key_id for c in calls if c.key_id is not None}
    keys = {
        k.id: k.label or f"{k.prefix}…"
        for k in session.exec(select(ApiKey).where(ApiKey.id.in_(key_ids))).scalars()  # type: ignore[union-attr]
    }
    person_ids = {s for scope, _t, s in used if scope == "person"}
    people = dict(session.exec(select(Person.id, Person.display_name).where(Person.id.in_(person_ids))).all())  # type: ignore[union-attr]

    uses = []
    for team_id, rule in sorted(limits.items(), key=lambda item: teams.get(item[0], "")):
        team = teams.get(team_id, "(deleted team)")
        for scope in SCOPES:
            limit = rule.of(scope)
            if limit.empty:
                continue
            rows = [row for (s, t, _), row in used.items() if s == scope and t == team_id]
            if scope == "team" and not rows:
                uses.append(WindowUse(team, scope, team, 0, limit.requests, 0, limit.tokens))
            names = {"team": teams, "key": keys, "person": people}[scope]
            uses.extend(
                WindowUse(
                    team, scope, names.get(row.subject_id, "?"), row.requests, limit.requests, row.tokens, limit.tokens
                )
                for row in sorted(rows, key=lambda r: -r.requests)
            )

    refusals: dict[tuple, Refusals] = {}
    for call in calls:
        name = PEOPLE if call.key_id is None else keys.get(call.key_id, "(deleted key)")
        entry = refusals.setdefault(
            (call.team_id, call.key_id), Refusals(team=teams.get(call.team_id, "(no team)"), key=name)
        )
        if call.rule == "rate_limit.tokens":
            entry.tokens += call.refused
        else:
            entry.requests += call.refused
        entry.last_at = max(filter(None, (entry.last_at, call.last_at)))
    ordered = sorted(refusals.values(), key=lambda r: -(r.requests + r.tokens))
    return RateLimitOverview(window, start + window - now.timestamp(), uses, ordered)
