"""What a retention run works through: each record kind split into segments, the default
rule and one per team with its own rule, each with its cutoff and action, and the SQL
condition (holds excluded, what four-eyes still needs kept) that picks its rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from core.models.retention import LegalHold
from core.retention import kinds as registry
from core.retention.holds import not_held
from core.retention.rules import Rules, current_rules


@dataclass(frozen=True)
class Segment:
    """One kind's records under one rule: the default, or a team's own."""

    key: str
    kind: registry.RecordKind
    class_key: str
    period: str
    action: str
    cutoff: datetime
    team_id: int | None  # None: every team without a rule of its own
    other_teams: tuple[int, ...] = ()

    def where(self, holds: list[LegalHold]) -> tuple[str, dict[str, Any]]:
        kind = self.kind
        clauses = [f"{kind.time_column} < :cutoff"]
        params: dict[str, Any] = {"cutoff": self.cutoff}
        if kind.team_sql and self.team_id is not None:
            clauses.append(f"{kind.team_sql} = :seg_team")
            params["seg_team"] = self.team_id
        elif kind.team_sql and self.other_teams:
            names = [f"seg_other{n}" for n in range(len(self.other_teams))]
            clauses.append(f"({kind.team_sql} IS NULL OR {kind.team_sql} NOT IN ({', '.join(':' + n for n in names)}))")
            params.update(dict(zip(names, self.other_teams, strict=True)))
        if self.action == "anonymize" and kind.needs_anonymizing_sql:
            clauses.append(kind.needs_anonymizing_sql)
        if kind.keep_sql:
            clauses.append(f"NOT ({kind.keep_sql})")
        held = not_held(kind, holds)
        clauses.append(held.sql)
        params.update(held.params)
        return " AND ".join(clauses), params


def plan(session: Session, as_of: datetime, rules: Rules | None = None) -> list[Segment]:
    """Every segment to enforce at `as_of`; audit events are planned separately (a chain prefix)."""
    rules = rules or current_rules(session)
    segments = []
    for kind in registry.kinds():
        if not any(c in rules.defaults for c in kind.classes):
            continue
        teams = tuple(rules.override_teams(kind)) if kind.team_sql and kind is not registry.AUDIT_KIND else ()
        for team in (None, *teams):
            rule = rules.winning(kind, team)
            action = (
                rule.action if (rule.action == "delete" and kind.can_delete) or not kind.can_anonymize else "anonymize"
            )
            segments.append(
                Segment(
                    key=f"{kind.key}:{'default' if team is None else f'team{team}'}",
                    kind=kind,
                    class_key=rule.class_key,
                    period=str(rule.period),
                    action=action,
                    cutoff=rule.period.cutoff(as_of),
                    team_id=team,
                    other_teams=teams if team is None else (),
                )
            )
    return segments
