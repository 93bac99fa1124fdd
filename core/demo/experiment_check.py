"""Every stored test set run against its prompt's newest approved version: the demo's own check.

The demo promises that each prompt passes its own test set at a realistic rate with the
built-in simulator, and that no cell is an "error" (an assertion that could not be
evaluated). ``run_testsets`` runs them the way a prompt engineer would, through
``core.experiments.service`` (the gateway, budgets and audit included), one repetition,
graded by the default judge model; ``bench/demo_testsets.py`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.catalog.demo_seed import ENGINEERS
from core.catalog.store import APPROVED
from core.db import saved_id
from core.errors import NotFound
from core.experiments import service, testset_store
from core.experiments.results import ExperimentRun
from core.experiments.runner import VariantChoice
from core.identity import people as identity
from core.models.catalog import PromptVersion
from core.permissions import Actor

LIMITED_PREFIX = "first-"


@dataclass(frozen=True)
class TestSetOutcome:
    __test__ = False

    prompt: str
    testset: str
    version: int
    run: ExperimentRun

    def count(self, status: str) -> int:
        return sum(cell.status == status for cell in self.run.cells)

    @property
    def pass_rate(self) -> float:
        judged = len(self.run.cells) - self.count("error")
        return self.count("pass") / judged if judged else 0.0

    def line(self) -> str:
        return (
            f"{self.prompt} / {self.testset} (v{self.version}): {self.count('pass')} pass, {self.count('fail')} fail, "
            f"{self.count('error')} error; pass rate {self.pass_rate:.0%}"
        )


def newest_approved(session: Session, prompt_id: int) -> PromptVersion:
    """The newest approved version; a prompt still in its first review (the demo's high-risk
    contract extraction waits for its second approval) is checked on its newest version."""
    newest_first = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id)
    newest_first = newest_first.order_by(col(PromptVersion.number).desc())
    version = session.exec(newest_first.where(PromptVersion.state == APPROVED)).first()
    version = version or session.exec(newest_first).first()
    if version is None:
        raise NotFound(f"prompt id {prompt_id} has no version")
    return version


def run_testsets(session: Session, *, case_limit: int | None = None) -> list[TestSetOutcome]:
    """Each demo test set, once, against its prompt's newest approved version, run by the
    prompt engineer of the prompt's team; ``case_limit`` keeps the first cases of each set only.
    """
    outcomes = []
    for email in ENGINEERS.values():
        actor = identity.actor_for_email(session, email)
        if actor is None:
            raise NotFound(f"the demo person {email} is not seeded")
        for row in testset_store.list_testsets(session, actor=actor):
            if row.team_id in actor.team_ids and not row.name.startswith(LIMITED_PREFIX):
                outcomes.append(_run_one(session, actor, row, case_limit))
    return sorted(outcomes, key=lambda o: (o.prompt, o.testset))


def _run_one(session: Session, actor: Actor, row: testset_store.TestSetRow, case_limit: int | None) -> TestSetOutcome:
    testset_id = row.id
    if case_limit is not None:
        spec = testset_store.testset_spec(session, row.id)
        limited = testset_store.save_testset(
            session=session,
            actor=actor,
            prompt_id=row.prompt_id,
            name=f"{LIMITED_PREFIX}{case_limit}-{row.name}",
            spec=type(spec)(
                prompt=spec.prompt,
                description=spec.description,
                pass_threshold=spec.pass_threshold,
                cases=spec.cases[:case_limit],
            ),
        )
        testset_id = saved_id(limited)
    version = newest_approved(session, row.prompt_id)
    choices = [VariantChoice(saved_id(version))]
    planned = service.plan(session, actor=actor, testset_id=testset_id, variants=choices)
    experiment_id = service.start(
        session=session,
        actor=actor,
        testset_id=testset_id,
        variants=choices,
        confirmed_estimate_micro=planned.estimate.total_micro,
        background=False,
    )
    session.expire_all()
    view, run = service.open_run(session, actor=actor, experiment_id=experiment_id)
    if run is None:
        raise RuntimeError(f"experiment #{experiment_id} is {view.status}: {view.error}")
    return TestSetOutcome(row.prompt_name, row.name, version.number, run)
