"""The dry run of `quorum retention enforce`: per segment, how many records would be
deleted or anonymized and a few samples; for the audit log, the chain prefix that would
be pruned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from core import clock
from core.models.retention import LegalHold
from core.permissions import Actor, Permission, require
from core.retention import kinds as registry
from core.retention.holds import active_holds
from core.retention.segments import Segment, plan
from core.retention.sql import run as run_sql

SAMPLES = 5


@dataclass(frozen=True)
class PreviewRow:
    kind: str
    label: str
    class_key: str
    team_id: int | None
    period: str
    action: str
    cutoff: datetime
    count: int
    samples: list[dict[str, Any]]


def preview(*, session: Session, actor: Actor) -> list[PreviewRow]:
    """What a run now would delete or anonymize: counts per class and kind, with sample records."""
    require(actor, Permission.RETENTION_READ)
    as_of = clock.now()
    holds = active_holds(session)
    rows = []
    for segment in plan(session, as_of):
        kind = segment.kind
        if kind is registry.AUDIT_KIND:
            count, samples = _audit_preview(session, segment, holds)
        else:
            where, params = segment.where(holds)
            count = run_sql(session, f"SELECT COUNT(*) FROM {kind.table} WHERE {where}", params).scalar() or 0
            samples = (
                [
                    {"id": r[0], "time": r[1]}
                    for r in run_sql(
                        session,
                        f"SELECT {kind.id_column}, {kind.time_column} FROM {kind.table} WHERE {where} "
                        f"ORDER BY {kind.time_column} LIMIT {SAMPLES}",
                        params,
                    )
                ]
                if count
                else []
            )
        rows.append(
            PreviewRow(
                kind.key,
                kind.label,
                segment.class_key,
                segment.team_id,
                segment.period,
                segment.action,
                segment.cutoff,
                int(count),
                samples,
            )
        )
    session.rollback()
    return rows


def audit_prune_bound(session: Session, segment: Segment, holds: list[LegalHold]) -> tuple[int, int] | None:
    """(S, first seq present): events with seq < S are all past their time and unheld; None: no events."""
    first = session.execute(text("SELECT MIN(seq), MAX(seq) FROM audit_event")).first()
    if first is None or first[0] is None:
        return None
    where, params = segment.where(holds)
    keep = run_sql(session, f"SELECT MIN(seq) FROM audit_event WHERE NOT ({where})", params).scalar()
    bound = int(keep) if keep is not None else int(first[1]) + 1
    return bound, int(first[0])


def _audit_preview(session: Session, segment: Segment, holds: list[LegalHold]) -> tuple[int, list[dict[str, Any]]]:
    found = audit_prune_bound(session, segment, holds)
    if found is None or found[0] <= max(found[1], 2):
        return 0, []
    bound, first = found
    samples = [
        {"id": r[0], "time": r[1]}
        for r in session.execute(
            text("SELECT seq, occurred_at FROM audit_event WHERE seq < :s ORDER BY seq LIMIT :n"),
            {"s": bound, "n": SAMPLES},
        )
    ]
    return bound - first, samples
