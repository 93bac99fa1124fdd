"""Which rule applies to a record: the YAML classes, overridden by governance leads in the app.

Principles (as in Microsoft Purview): an explicit rule for a team wins over the default
for that class; when a record falls under several classes the longest period wins (and
its action with it); a legal hold (core.retention.holds) wins over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from core import clock
from core.audit.record import committing, record
from core.db import get_or_not_found, saved_id, table_of
from core.errors import NotFound, ValidationError
from core.models.identity import Team
from core.models.retention import RetentionRule, TeamPayloadPolicy
from core.permissions import Actor, Permission, require
from core.prebuilt import Prebuilt
from core.retention import kinds as registry
from core.retention.classes import ACTIONS, AUDIT_CLASS, PAYLOAD_MODES, Period, RetentionClass, load_config
from core.together import Part


@dataclass(frozen=True)
class Rule:
    class_key: str
    period: Period
    action: str
    source: str  # "file" | "app" | "team"


@dataclass(frozen=True)
class Rules:
    """Every class's default rule and the team overrides, as read at one moment."""

    classes: dict[str, RetentionClass]
    defaults: dict[str, Rule]
    teams: dict[tuple[str, int], Rule]

    def rule(self, class_key: str, team_id: int | None) -> Rule:
        if team_id is not None and (class_key, team_id) in self.teams:
            return self.teams[(class_key, team_id)]
        return self.defaults[class_key]

    def winning(self, kind: registry.RecordKind, team_id: int | None) -> Rule:
        """The longest of the kind's classes' rules for this team (ties: the first class)."""
        candidates = [self.rule(c, team_id) for c in kind.classes if c in self.defaults]
        best = candidates[0]
        for rule in candidates[1:]:
            if rule.period.longer_than(best.period):
                best = rule
        return best

    def override_teams(self, kind: registry.RecordKind) -> list[int]:
        return sorted({team for (c, team) in self.teams if c in kind.classes})


def current_rules(session: Session) -> Rules:
    config = load_config()
    defaults = {k: Rule(k, c.period, c.action, "file") for k, c in config.classes.items()}
    teams: dict[tuple[str, int], Rule] = {}
    for row in session.exec(select(RetentionRule)):
        if row.class_key not in defaults:
            continue  # a class removed from the file: its old overrides no longer apply
        rule = Rule(row.class_key, Period.parse(row.period), row.action, "app" if row.team_id is None else "team")
        if row.team_id is None:
            defaults[row.class_key] = rule
        else:
            teams[(row.class_key, row.team_id)] = rule
    return Rules(config.classes, defaults, teams)


def set_rule(
    *, session: Session, actor: Actor, class_key: str, period: str, action: str, team_id: int | None = None
) -> RetentionRule:
    """Set the default rule of a class (team_id None) or one team's rule; audited."""
    require(actor, Permission.RETENTION_MANAGE)
    config = load_config()
    config.get(class_key)
    parsed = Period.parse(period, where="period")
    if action not in ACTIONS:
        raise ValidationError(f"Action must be one of {', '.join(ACTIONS)}, not {action!r}")
    for kind in registry.kinds_for_class(class_key):
        if action == "delete" and not kind.can_delete:
            raise ValidationError(f"{kind.label} can only be anonymized (other records point at them)")
        if action == "anonymize" and not kind.can_anonymize:
            raise ValidationError(f"{kind.label} can only be deleted")
    if class_key == AUDIT_CLASS:
        if team_id is not None:
            raise ValidationError("Audit events are pruned as one chain: the audit class has no team rules")
        if config.audit_log_minimum.longer_than(parsed):
            raise ValidationError(
                f"Audit events must be kept at least {config.audit_log_minimum} "
                f"(audit_log_minimum in retention.yaml); {parsed} is shorter"
            )
    if team_id is not None:
        get_or_not_found(session, Team, team_id, "team")
    row = session.exec(
        select(RetentionRule).where(RetentionRule.class_key == class_key, RetentionRule.team_id == team_id)
    ).first()
    before = None if row is None else {"period": row.period, "action": row.action}
    with committing(session):
        if row is None:
            row = RetentionRule(
                class_key=class_key, team_id=team_id, period=str(parsed), action=action, updated_by=actor.ref
            )
        row.period, row.action, row.updated_by, row.updated_at = str(parsed), action, actor.ref, clock.now()
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="retention.rule.set",
            target_type="retention_class",
            target_id=class_key,
            team_id=team_id,
            before=before,
            after={"period": str(parsed), "action": action, "team_id": team_id},
        )
    return row


def clear_rule(*, session: Session, actor: Actor, class_key: str, team_id: int | None = None) -> None:
    """Remove an app rule: the team falls back to the default, the default to the file."""
    require(actor, Permission.RETENTION_MANAGE)
    row = session.exec(
        select(RetentionRule).where(RetentionRule.class_key == class_key, RetentionRule.team_id == team_id)
    ).first()
    if row is None:
        raise NotFound(f"No rule of class {class_key!r} set in the app" + (f" for team {team_id}" if team_id else ""))
    with committing(session):
        record(
            session,
            actor=actor,
            action="retention.rule.clear",
            target_type="retention_class",
            target_id=class_key,
            team_id=team_id,
            before={"period": row.period, "action": row.action},
        )
        session.delete(row)


def payload_storage_mode(session: Session | Connection, team_id: int | None) -> str:
    """What the gateway stores of a team's request and response text: full, redacted or none."""
    # A prebuilt point read (every settled batch asks, core/prebuilt.py): no ORM identity-map
    # work, and always the committed setting, so a change applies to the very next call everywhere.
    if team_id is None:
        return payload_mode_of([])
    connection = session.connection() if isinstance(session, Session) else session
    return payload_mode_of(_MODE.fetchall(connection, {"t": team_id}))


def payload_mode_read(team_id: int) -> Part:
    """The point read of `payload_storage_mode`, to run with other statements (core.together);
    `payload_mode_of` reads its rows."""
    return (_MODE, {"t": team_id})


def payload_mode_of(rows: Sequence[tuple[Any, ...]]) -> str:
    """The mode a team's policy row says (`payload_mode_read`'s rows), or the default without one."""
    mode = rows[0][0] if rows else None
    return mode if mode is not None else load_config().default_payload_storage


_POLICIES = table_of(TeamPayloadPolicy)
_MODE = Prebuilt(sa_select(_POLICIES.c.mode).where(_POLICIES.c.team_id == bindparam("t")))


def set_payload_storage_mode(*, session: Session, actor: Actor, team_id: int, mode: str) -> None:
    require(actor, Permission.RETENTION_MANAGE)
    if mode not in PAYLOAD_MODES:
        raise ValidationError(f"Payload storage must be one of {', '.join(PAYLOAD_MODES)}, not {mode!r}")
    get_or_not_found(session, Team, team_id, "team")
    before = payload_storage_mode(session, team_id)
    row = session.get(TeamPayloadPolicy, team_id) or TeamPayloadPolicy(team_id=team_id, mode=mode, updated_by="")
    with committing(session):
        row.mode, row.updated_by, row.updated_at = mode, actor.ref, clock.now()
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="retention.payload_storage.set",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before={"mode": before},
            after={"mode": mode},
        )


@dataclass(frozen=True)
class ClassView:
    """A class as the Retention & privacy page and exports show it."""

    key: str
    label: str
    period: str
    action: str
    basis: str
    source: str
    record_kinds: str
    team_rules: str
    note: str


def class_views(session: Session, *, actor: Actor) -> list[ClassView]:
    require(actor, Permission.RETENTION_READ)
    current = current_rules(session)
    names = {t.id: t.name for t in session.exec(select(Team))}
    views = []
    for key, klass in current.classes.items():
        rule = current.defaults[key]
        teams = [
            f"{names.get(team, team)}: {r.period} {r.action}" for (c, team), r in current.teams.items() if c == key
        ]
        views.append(
            ClassView(
                key,
                klass.label,
                str(rule.period),
                rule.action,
                ", ".join(klass.basis),
                {"file": "retention.yaml", "app": "changed in the app"}[rule.source],
                ", ".join(k.label for k in registry.kinds_for_class(key)) or "none yet",
                "; ".join(teams),
                klass.note,
            )
        )
    return views


def payload_modes(session: Session, *, actor: Actor) -> dict[int, str]:
    """Every team's payload storage mode, by team id."""
    require(actor, Permission.RETENTION_READ)
    return {saved_id(t): payload_storage_mode(session, t.id) for t in session.exec(select(Team).order_by(Team.name))}
