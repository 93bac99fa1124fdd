"""Experiments as people run them: plan and estimate, start (refused over budget), cancel, reopen, attach.

``plan`` prices the run before anything is sent; ``start`` re-plans, refuses when the
estimate exceeds what the team's budget has left (before any call), records the run as
``running`` (audited ``experiment.start``) and runs it in a background thread through the
gateway as the person who started it. When the run ends its whole result is stored
(``run_to_json``) with status finished or cancelled and what it billed (audited
``experiment.finish``). ``cancel`` stops new calls; calls in flight finish and are kept;
only finished calls were billed. Every function needs ``playground.run`` for the prompt's team
(reading needs ``catalog.read``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from sqlmodel import Session, col, select

from core import clock, db
from core.audit.record import committing, record
from core.budgets.money import format_micro
from core.budgets.prices import price_book
from core.budgets.remaining import remaining_micro
from core.catalog import workflow
from core.catalog.store import APPROVED, IN_REVIEW, get_prompt, get_version, version_spec
from core.db import saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.experiments import running
from core.experiments.gateway_call import gateway_call
from core.experiments.results import ExperimentRun, comparisons, run_from_json, run_to_json, summarize
from core.experiments.runner import (
    CostEstimate,
    Experiment,
    Variant,
    VariantChoice,
    check_budget,
    estimate_cost,
    run_experiment,
)
from core.experiments.testset_store import get_testset, testset_spec
from core.guardrails.saved_text import refuse_secrets_in
from core.models.catalog import ReviewEvidence
from core.models.experiments import Experiment as ExperimentRow
from core.permissions import Actor, Permission, require
from core.settings import settings

RUNNING, FINISHED, CANCELLED, FAILED = "running", "finished", "cancelled", "failed"
MAX_REPETITIONS = 20
CONCURRENCY = 4


class VariantRecord(TypedDict):
    """One variant as an experiment stores it (``variants_json``) and its views show it."""

    label: str
    version_id: int
    version_number: int
    model: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    estimate: CostEstimate
    remaining_micro: int | None  # None: no hard money cap applies
    team_id: int
    prompt_id: int
    testset_name: str
    variants: tuple[VariantRecord, ...]

    @property
    def fits(self) -> bool:
        return self.remaining_micro is None or self.estimate.total_micro <= self.remaining_micro


@dataclass(frozen=True)
class ExperimentView:
    id: int
    prompt_id: int
    prompt_name: str
    team_id: int
    testset_name: str
    variants: tuple[VariantRecord, ...]
    repetitions: int
    status: str
    planned_cells: int
    finished_cells: int
    estimate_micro: int
    billed_micro: int
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None


def default_judge_model() -> str | None:
    """The model that grades llm-rubric assertions when the person names none (QUORUM_JUDGE_MODEL)."""
    return settings().judge_model


def plan(
    session: Session,
    *,
    actor: Actor,
    testset_id: int,
    variants: Sequence[VariantChoice],
    repetitions: int = 1,
    judge_model: str | None = None,
) -> Plan:
    """The experiment as it would run, its worst-case cost and the budget left for it."""
    testset = get_testset(session, testset_id)
    prompt = get_prompt(session, testset.prompt_id)
    require(actor, Permission.PLAYGROUND_RUN, team_id=prompt.team_id)
    if not variants:
        raise ValidationError("Choose at least one variant")
    # Stored with the experiment (and sent as request parameters): no credential in them.
    refuse_secrets_in(
        {
            "the variants": [{"model": c.model, "params": dict(c.params)} for c in variants],
            "the judge model": judge_model,
        }
    )
    if not 1 <= int(repetitions) <= MAX_REPETITIONS:
        raise ValidationError(f"Repetitions must be between 1 and {MAX_REPETITIONS}")
    built: list[Variant] = []
    described: list[VariantRecord] = []
    for choice in variants:
        version = get_version(session, choice.version_id)
        if version.prompt_id != prompt.id:
            raise ValidationError(f"Version id {version.id} is not a version of {prompt.name!r}")
        if version.state != APPROVED:
            require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
        label = _label(version.number, choice, [v.label for v in built])
        params = {k: v for k, v in dict(choice.params).items() if v is not None}
        built.append(Variant(label=label, version=version_spec(version), model=choice.model or None, params=params))
        described.append(
            {
                "label": label,
                "version_id": saved_id(version),
                "version_number": version.number,
                "model": built[-1].model_name,
                "params": params,
            }
        )
    experiment = Experiment(
        variants=tuple(built),
        testset=testset_spec(session, testset_id),
        repetitions=int(repetitions),
        judge_model=(judge_model or "").strip() or default_judge_model(),
    )
    estimate = estimate_cost(experiment, price_book(session))
    left = remaining_micro(session, team_id=prompt.team_id, person_id=actor.person_id, prompt_id=prompt.id)
    return Plan(experiment, estimate, left, prompt.team_id, saved_id(prompt), testset.name, tuple(described))


def start(
    *,
    session: Session,
    actor: Actor,
    testset_id: int,
    variants: Sequence[VariantChoice],
    repetitions: int = 1,
    judge_model: str | None = None,
    confirmed_estimate_micro: int,
    background: bool = True,
) -> int:
    """Start the run the person confirmed; returns its id. Refused before any call when over budget."""
    planned = plan(
        session, actor=actor, testset_id=testset_id, variants=variants, repetitions=repetitions, judge_model=judge_model
    )
    if planned.estimate.total_micro > confirmed_estimate_micro:
        raise Conflict(
            f"The estimate is now {format_micro(planned.estimate.total_micro)}, more than the "
            f"{format_micro(confirmed_estimate_micro)} you confirmed; review it and confirm again"
        )
    if planned.remaining_micro is not None:
        check_budget(planned.estimate, planned.remaining_micro)
    row = ExperimentRow(
        team_id=planned.team_id,
        prompt_id=planned.prompt_id,
        testset_id=testset_id,
        testset_name=planned.testset_name,
        variants_json=json.dumps(planned.variants),
        repetitions=planned.experiment.repetitions,
        judge_model=planned.experiment.judge_model,
        status=RUNNING,
        planned_cells=len(planned.experiment.cells()),
        estimate_micro=planned.estimate.total_micro,
        created_by=actor.ref,
        created_at=clock.now(),
    )
    with committing(session):
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="experiment.start",
            target_type="experiment",
            target_id=saved_id(row),
            team_id=row.team_id,
            after={
                "prompt_id": row.prompt_id,
                "testset_id": testset_id,
                "variants": [v["label"] for v in planned.variants],
                "repetitions": row.repetitions,
                "cells": row.planned_cells,
                "estimate_micro": row.estimate_micro,
            },
        )
    state = running.register(saved_id(row), row.planned_cells)
    if background:
        state.thread = threading.Thread(
            target=_execute, args=(saved_id(row), planned, actor, state), daemon=True, name=f"experiment-{row.id}"
        )
        state.thread.start()
    else:
        _execute(saved_id(row), planned, actor, state)
    return saved_id(row)


def cancel(*, session: Session, actor: Actor, experiment_id: int) -> None:
    """Stop a running experiment: no new calls; what finished is kept (and was billed)."""
    row = _row(session, experiment_id)
    require(actor, Permission.PLAYGROUND_RUN, team_id=row.team_id)
    if row.status != RUNNING:
        raise Conflict(f"Experiment #{row.id} is {row.status}; only a running experiment can be cancelled")
    state = running.get(experiment_id)
    with committing(session):
        if state is None:
            # Its process is gone (a restart): nothing runs any more, close the record.
            row.status, row.finished_at, row.error = CANCELLED, clock.now(), "the server stopped during the run"
            session.add(row)
        record(
            session,
            actor=actor,
            action="experiment.cancel",
            target_type="experiment",
            target_id=saved_id(row),
            team_id=row.team_id,
            before={"status": RUNNING},
            after={"finished_cells": state.done if state else row.finished_cells},
        )
    if state is not None:
        state.cancel.set()


def progress(session: Session, *, experiment_id: int) -> tuple[int, int, str]:
    """(finished cells, planned cells, status)."""
    state = running.get(experiment_id)
    session.expire_all()
    row = _row(session, experiment_id)
    if state is not None and row.status == RUNNING:
        return state.done, state.total, RUNNING
    return row.finished_cells, row.planned_cells, row.status


def list_experiments(
    session: Session,
    *,
    actor: Actor,
    prompt_id: int | None = None,
    team_ids: Iterable[int] | None = None,
    limit: int = 100,
) -> list[ExperimentView]:
    """Experiments, newest first; of one prompt, or of the teams in `team_ids` (Home)."""
    require(actor, Permission.CATALOG_READ)
    query = select(ExperimentRow).order_by(col(ExperimentRow.id).desc()).limit(limit)
    if prompt_id is not None:
        query = query.where(ExperimentRow.prompt_id == prompt_id)
    if team_ids is not None:
        query = query.where(col(ExperimentRow.team_id).in_(list(team_ids)))
    return [_view(session, row) for row in session.exec(query)]


def open_run(session: Session, *, actor: Actor, experiment_id: int) -> tuple[ExperimentView, ExperimentRun | None]:
    """A stored experiment and its result (None while it runs or when it failed before any result)."""
    require(actor, Permission.CATALOG_READ)
    row = _row(session, experiment_id)
    run = run_from_json(json.loads(row.results_json)) if row.results_json else None
    return _view(session, row), run


def evidence_summary(view: ExperimentView, run: ExperimentRun) -> str:
    """What a reviewer reads: pass rates with intervals, latency, cost, and the paired verdicts."""
    parts = [
        f"Experiment #{view.id} on test set '{view.testset_name}' ({len(run.case_ids)} cases x "
        f"{run.repetitions} repetition(s), {len(run.cells)}/{run.planned_cells} cells"
        + (", cancelled" if run.cancelled else "")
        + f", cost {format_micro(run.billed_micro)})."
    ]
    for s in summarize(run):
        low, high = s.pass_rate_interval
        parts.append(
            f"{s.label}: pass {s.pass_rate:.0%} (95% CI {low:.0%}-{high:.0%}), {s.errors} errors, "
            f"mean latency {s.mean_latency_ms:.0f} ms, p95 {s.p95_latency_ms:.0f} ms."
        )
    for c in comparisons(run):
        parts.append(
            f"{c.a} vs {c.b}: McNemar p={c.mcnemar.p_value:.3g}, score difference "
            f"{c.score_difference:+.3f} [{c.score_interval[0]:+.3f}, {c.score_interval[1]:+.3f}]: {c.verdict}."
        )
    return " ".join(parts)


def versions_in_review(session: Session, view: ExperimentView) -> list[VariantRecord]:
    """The experiment's variants whose version is in review now: the ones it can be attached to."""
    seen: set[int] = set()
    found = []
    for variant in view.variants:
        version_id = variant["version_id"]
        if version_id not in seen and get_version(session, version_id).state == IN_REVIEW:
            seen.add(version_id)
            found.append(variant)
    return found


def attach_to_review(*, session: Session, actor: Actor, experiment_id: int, version_id: int) -> ReviewEvidence:
    """Attach a finished experiment as evidence to one of its variants' versions that is in review."""
    view, run = open_run(session, actor=actor, experiment_id=experiment_id)
    require(actor, Permission.PLAYGROUND_RUN, team_id=view.team_id)
    if run is None:
        raise Conflict(f"Experiment #{view.id} has no results yet ({view.status})")
    if version_id not in {v["version_id"] for v in view.variants}:
        raise ValidationError("Attach an experiment only to a version it ran")
    version = get_version(session, version_id)
    if version.state != IN_REVIEW:
        raise Conflict(f"v{version.number} is {version.state.replace('_', ' ')}, not in review; submit it first")
    return workflow.attach_evidence(
        session=session,
        actor=actor,
        version_id=version_id,
        kind="experiment",
        reference_id=f"experiment:{view.id}",
        summary=evidence_summary(view, run),
    )


# ---- the background run ------------------------------------------------------------------


def _execute(experiment_id: int, planned: Plan, actor: Actor, state: running.RunState) -> None:
    def progress_to(done: int, total: int) -> None:
        state.done, state.total = done, total

    try:
        with db.session() as session:
            book = price_book(session)
        call = gateway_call(actor=actor, team_id=planned.team_id, stop=state.cancel)
        run = run_experiment(
            planned.experiment,
            call=call,
            price_book=book,
            concurrency=CONCURRENCY,
            progress=progress_to,
            cancel=state.cancel,
        )
        _finish(experiment_id, actor, run=run, error=None)
    except Exception as error:  # noqa: BLE001 - a run that breaks is recorded as failed, not lost
        _finish(experiment_id, actor, run=None, error=f"{type(error).__name__}: {error}")
    finally:
        running.unregister(experiment_id)


def _finish(experiment_id: int, actor: Actor, *, run: ExperimentRun | None, error: str | None) -> None:
    with db.write_session() as session:
        row = _row(session, experiment_id)
        if run is not None:
            row.status = CANCELLED if run.cancelled else FINISHED
            row.results_json = json.dumps(run_to_json(run))
            row.finished_cells, row.billed_micro = len(run.cells), run.billed_micro
            budget_stop = next((c.error for c in run.cells if c.error and "budget refused" in c.error), None)
            row.error = budget_stop
        else:
            row.status, row.error = FAILED, error
        row.finished_at = clock.now()
        with committing(session):
            session.add(row)
            record(
                session,
                actor=actor,
                action="experiment.finish",
                target_type="experiment",
                target_id=saved_id(row),
                team_id=row.team_id,
                before={"status": RUNNING},
                after={"status": row.status, "finished_cells": row.finished_cells, "billed_micro": row.billed_micro},
            )


# ---- helpers -----------------------------------------------------------------------------


def _label(number: int, choice: VariantChoice, taken: list[str]) -> str:
    label = f"v{number}"
    if choice.model:
        label += f" {choice.model}"
    if choice.params:
        label += " " + ",".join(f"{k}={v}" for k, v in sorted(choice.params.items()) if v is not None)
    base, n = label, 2
    while label in taken:
        label, n = f"{base} #{n}", n + 1
    return label


def _row(session: Session, experiment_id: int) -> ExperimentRow:
    row = session.get(ExperimentRow, experiment_id)
    if row is None:
        raise NotFound(f"No experiment #{experiment_id}")
    return row


def _view(session: Session, row: ExperimentRow) -> ExperimentView:
    prompt = get_prompt(session, row.prompt_id)
    return ExperimentView(
        saved_id(row),
        row.prompt_id,
        prompt.name,
        row.team_id,
        row.testset_name,
        tuple(json.loads(row.variants_json)),
        row.repetitions,
        row.status,
        row.planned_cells,
        row.finished_cells,
        row.estimate_micro,
        row.billed_micro,
        row.created_by,
        row.created_at,
        row.finished_at,
        row.error,
    )
