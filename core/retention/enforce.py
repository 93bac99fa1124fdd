"""`quorum retention enforce`: delete or anonymize what is past its retention, provably.

- Each record kind (core.retention.kinds) is split into segments: the default rule, and one
  per team with its own rule. A segment's records older than its cutoff and under no
  active legal hold are handled in batches of `batch_size` rows, one transaction each;
  holds are read again in each batch, and rows a kind keeps (`keep_sql`: what four-eyes
  still needs) are never touched.
- The run's progress (per segment: done, rows handled) is committed in the same
  transaction as each batch, so a run that dies resumes where it stopped, with its
  original "as of" time, neither losing nor double-counting a row.
- One run at a time across servers: the lease of core.retention.lease, renewed with every batch.
- Audit events are pruned as a prefix of the chain: first a signed checkpoint with
  pruned_before=S, then events below S, so `quorum audit verify` reports "pruned before S".
- Nothing is touched before its time: cutoffs come from core.clock, and a record created
  at t with period P is eligible only once now > t + P.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core import clock, db
from core.audit import checkpoints as audit_checkpoints
from core.audit.record import record
from core.budgets import rollups
from core.db import changed_rows, get_or_not_found, saved_id
from core.models.retention import LegalHold, RetentionLock, RetentionRun
from core.paging import Page, keyset_page
from core.permissions import Actor, Permission, require
from core.retention import kinds as registry
from core.retention import lease
from core.retention.holds import active_holds
from core.retention.preview import audit_prune_bound
from core.retention.segments import Segment, plan
from core.retention.sql import run as run_sql

if TYPE_CHECKING:
    from core.attention import AttentionItem

BATCH_SIZE = 5_000


# ---- enforcement -------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_id: int
    as_of: datetime
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pruned_before: int | None = None
    resumed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for c in self.counts.values() for n in c.values())


class SegmentProgress(TypedDict, total=False):
    """One segment's entry in a run's ``progress_json``: where a resumed run picks it up."""

    done: bool
    count: int
    action: str
    after: int  # anonymizing: the last id handled (the keyset walk goes on from there)
    pruned_before: int  # the audit log: the bound of the signed checkpoint, once written


Progress = dict[str, SegmentProgress]  # by Segment.key
AfterBatch = Callable[[int, int], None]


def enforce(
    *, actor: Actor, engine: Engine | None = None, batch_size: int = BATCH_SIZE, after_batch: AfterBatch | None = None
) -> RunResult:
    """Run (or resume) enforcement; `after_batch(run_id, batches)` is called after each committed batch."""
    require(actor, Permission.RETENTION_MANAGE)
    engine = engine or db.get_engine()
    holder = f"{actor.ref}/{uuid.uuid4().hex[:12]}"
    lease.acquire(engine, holder)
    try:
        run, resumed = _start_or_resume(engine, actor)
        progress: Progress = json.loads(run.progress_json)
        result = RunResult(run_id=saved_id(run), as_of=run.as_of, resumed=resumed)
        with db.session(engine) as reader:
            segments = plan(reader, run.as_of)
            holds = active_holds(reader)
        for segment in segments:
            if segment.kind is registry.AUDIT_KIND:
                _prune_audit(engine, actor, holder, run, progress, segment, holds, batch_size, after_batch, result)
            else:
                _enforce_segment(engine, holder, run, progress, segment, holds, batch_size, after_batch)
        _finish(engine, actor, holder, run, progress, result)
        return result
    finally:
        lease.release(engine, holder)


def _start_or_resume(engine: Engine, actor: Actor) -> tuple[RetentionRun, bool]:
    with db.write_session(engine) as session:
        run = session.exec(
            select(RetentionRun).where(RetentionRun.status == "running").order_by(col(RetentionRun.id).desc())
        ).first()
        resumed = run is not None
        if run is None:
            run = RetentionRun(as_of=clock.now(), actor=actor.ref, progress_json="{}")
        else:
            run.resumed += 1
        session.add(run)
        session.commit()
        session.refresh(run)
        return run, resumed


def _save_progress(session: Session, run: RetentionRun, progress: Progress, batches: int = 0) -> None:
    run.batches += batches
    session.execute(
        text("UPDATE retention_run SET progress_json = :p, batches = :b WHERE id = :id"),
        {"p": json.dumps(progress, sort_keys=True), "b": run.batches, "id": run.id},
    )


def _enforce_segment(
    engine: Engine,
    holder: str,
    run: RetentionRun,
    progress: Progress,
    segment: Segment,
    holds: list[LegalHold],
    batch_size: int,
    after_batch: AfterBatch | None,
) -> None:
    state = progress.setdefault(segment.key, {"done": False, "count": 0, "action": segment.action})
    if state["done"]:
        return
    while True:
        with db.write_session(engine) as session:
            lease.renew(session, holder)
            # Holds are read again in each batch's own transaction: a hold placed while a
            # long run is going applies from the next batch, not from the next run.
            chosen, statement, params = _batch_sql(segment, active_holds(session), batch_size)
            if segment.kind.table in rollups.ROLLED_UP_TABLES:
                handled = _handle_rolled_up(session, segment, chosen, statement, params, state)
            elif segment.action == "delete":
                handled = changed_rows(run_sql(session, statement, params))
            else:
                ids = [r[0] for r in run_sql(session, chosen, {**params, "after": state.get("after", 0)})]
                handled = (
                    changed_rows(
                        session.execute(
                            text(statement).bindparams(bindparam("ids", expanding=True)), {**params, "ids": ids}
                        )
                    )
                    if ids
                    else 0
                )
                if ids:
                    state["after"] = max(ids)
            _end_batch(session, run, progress, state, handled)
        if not handled:
            return
        if after_batch:
            after_batch(saved_id(run), run.batches)


def _handle_rolled_up(
    session: Session, segment: Segment, chosen: str, statement: str, params: dict[str, Any], state: SegmentProgress
) -> int:
    """A batch of ledger or call-log rows, and the roll-ups of the hours they counted in,
    rebuilt in the same transaction from what is left: roll-ups never disagree with their source."""
    kind = segment.kind
    ids = [r[0] for r in run_sql(session, chosen, {**params, "after": state.get("after", 0)})]
    if not ids:
        return 0
    connection = session.connection()
    hours = rollups.hours_of(connection, kind.table, kind.id_column, ids)
    if segment.action == "delete":
        handled = changed_rows(
            session.execute(
                text(f"DELETE FROM {kind.table} WHERE {kind.id_column} IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            )
        )
    else:
        handled = changed_rows(
            session.execute(text(statement).bindparams(bindparam("ids", expanding=True)), {**params, "ids": ids})
        )
        state["after"] = max(ids)
    rollups.rebuild_hours(connection, kind.table, hours)
    return handled


def _batch_sql(segment: Segment, holds: list[LegalHold], batch_size: int) -> tuple[str, str, dict[str, Any]]:
    """(the SELECT choosing a batch, the statement handling it, their parameters)."""
    kind = segment.kind
    where, params = segment.where(holds)
    if segment.action == "delete":
        chosen = f"SELECT {kind.id_column} FROM {kind.table} WHERE {where} LIMIT {int(batch_size)}"
        statement = f"DELETE FROM {kind.table} WHERE {kind.id_column} IN ({chosen})"
    else:
        # Anonymized rows still match the time condition: walk the ids in order (keyset, kept in
        # the progress) so each batch starts after the last one instead of rescanning them.
        chosen = (
            f"SELECT {kind.id_column} FROM {kind.table} WHERE {where} AND {kind.id_column} > :after "
            f"ORDER BY {kind.id_column} LIMIT {int(batch_size)}"
        )
        sets = ", ".join(
            [f"{column} = :set_{column}" for column in kind.anonymize_set]
            + [f"{column} = {expression}" for column, expression in kind.anonymize_expressions.items()]
        )
        params = {**params, **{f"set_{c}": v for c, v in kind.anonymize_set.items()}}
        statement = f"UPDATE {kind.table} SET {sets} WHERE {kind.id_column} IN :ids"
    return chosen, statement, params


def _end_batch(session: Session, run: RetentionRun, progress: Progress, state: SegmentProgress, handled: int) -> None:
    """Count a batch (or mark the segment done when it found nothing) and commit it with the
    run's progress, so a resumed run neither loses nor double-counts it."""
    if handled:
        state["count"] += handled
    else:
        state["done"] = True
    _save_progress(session, run, progress, batches=1 if handled else 0)
    session.commit()


def _prune_audit(
    engine: Engine,
    actor: Actor,
    holder: str,
    run: RetentionRun,
    progress: Progress,
    segment: Segment,
    holds: list[LegalHold],
    batch_size: int,
    after_batch: AfterBatch | None,
    result: RunResult,
) -> None:
    state = progress.setdefault(segment.key, {"done": False, "count": 0, "action": "delete"})
    if state["done"]:
        result.pruned_before = state.get("pruned_before")
        return
    if "pruned_before" not in state:
        if audit_checkpoints.signing_key() is None:
            result.notes.append(
                "Audit events were not pruned: pruning needs a signed checkpoint (set QUORUM_AUDIT_SIGNING_KEY)"
            )
            return
        with db.write_session(engine) as session:
            found = audit_prune_bound(session, segment, holds)
            if found is None or found[0] <= max(found[1], 2):
                state["done"] = True
                _save_progress(session, run, progress)
                session.commit()
                return
            # Signed first: once events below S are gone, this checkpoint is what verify starts from.
            audit_checkpoints.create_checkpoint(session=session, actor=actor, pruned_before=found[0])
            state["pruned_before"] = found[0]
            lease.renew(session, holder)
            _save_progress(session, run, progress)
            session.commit()
    bound = state["pruned_before"]
    result.pruned_before = bound
    while True:
        with db.write_session(engine) as session:
            lease.renew(session, holder)
            handled = changed_rows(
                session.execute(
                    text(
                        "DELETE FROM audit_event WHERE seq IN "
                        f"(SELECT seq FROM audit_event WHERE seq < :s ORDER BY seq LIMIT {int(batch_size)})"
                    ),
                    {"s": bound},
                )
            )
            _end_batch(session, run, progress, state, handled)
        if not handled:
            return
        if after_batch:
            after_batch(saved_id(run), run.batches)


def _finish(
    engine: Engine, actor: Actor, holder: str, run: RetentionRun, progress: Progress, result: RunResult
) -> None:
    for key, state in progress.items():
        kind_key = key.split(":", 1)[0]
        verb = "deleted" if state.get("action") == "delete" else "anonymized"
        bucket = result.counts.setdefault(kind_key, {})
        bucket[verb] = bucket.get(verb, 0) + state["count"]
    with db.write_session(engine) as session:
        lease.renew(session, holder)
        row = get_or_not_found(session, RetentionRun, run.id, "retention run")
        row.status, row.finished_at = "done", clock.now()
        session.add(row)
        record(
            session,
            actor=actor,
            action="retention.run",
            target_type="retention_run",
            target_id=saved_id(run),
            after={
                "as_of": run.as_of,
                "counts": result.counts,
                "batches": row.batches,
                "resumed": row.resumed,
                "pruned_before": result.pruned_before,
            },
        )
        session.commit()


def runs_page(session: Session, *, actor: Actor, before: int | None = None, limit: int = 20) -> Page[RetentionRun]:
    """A page of past enforcement runs, newest first (`before`: the previous page's `older`)."""
    require(actor, Permission.RETENTION_READ)
    return keyset_page(session, select(RetentionRun), col(RetentionRun.id), before=before, limit=limit, convert=_same)


def _same(row: RetentionRun) -> RetentionRun:
    return row


def retention_attention(session: Session, actor: Actor) -> list[AttentionItem]:
    """Home page items for governance leads: an interrupted run, or no run for a week after the last."""
    from core.attention import AttentionItem

    if not actor.can(Permission.RETENTION_MANAGE):
        return []
    latest = session.exec(select(RetentionRun).order_by(col(RetentionRun.id).desc())).first()
    if latest is not None and latest.status == "running" and session.get(RetentionLock, lease.LOCK_NAME) is None:
        return [
            AttentionItem(
                title=f"Retention run {latest.id} was interrupted",
                detail="The next run resumes it where it stopped.",
                severity="warning",
                page="pages/retention.py",
            )
        ]
    finished = latest.finished_at if latest is not None else None
    # A fresh installation is not "overdue": the item appears once runs are scheduled and stop.
    if finished is not None and clock.now() - finished > timedelta(days=7):
        return [
            AttentionItem(
                title=f"Retention enforcement last ran {finished:%Y-%m-%d}",
                detail="Schedule `quorum retention enforce` (cron) or run it from the page.",
                page="pages/retention.py",
            )
        ]
    return []
