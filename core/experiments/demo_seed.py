"""Demo seed step: the seed test sets in the database, and one finished A/B as review evidence.

Support's prompt engineer writes ticket-triage v3, sends it to review and compares it with
production v2 on a ten-case smoke set through the gateway (the simulator in demo mode),
then attaches the result to v3, where the governance leads see it in the Review queue.
"""

from __future__ import annotations

import dataclasses

from sqlmodel import Session

from core.catalog import workflow
from core.catalog.demo_seed import ENGINEERS
from core.catalog.spec import MessageSpec
from core.catalog.store import create_version, latest_version, prompt_by_name, version_spec
from core.catalog.testsets import TestSetSpec
from core.db import saved_id
from core.experiments import service, testset_store
from core.experiments.runner import VariantChoice
from core.identity import people as identity
from core.permissions import Actor

SEED_ACTOR = Actor.system("demo-seed")
AB_PROMPT = "ticket-triage"
SMOKE_CASES = 10


def seed_experiments(session: Session) -> None:
    stored = testset_store.import_directory(session=session, actor=SEED_ACTOR)
    prompt = prompt_by_name(session, AB_PROMPT)
    default = next(t for t in stored if t.prompt_id == prompt.id)
    tom = identity.actor_for_email(session, ENGINEERS["Support"])
    if tom is None:  # the identity step seeds the people first
        raise RuntimeError(f"The demo person {ENGINEERS['Support']} is not seeded")
    full = testset_store.testset_spec(session, saved_id(default))
    # No LLM-judged assertions in the smoke set: quick and deterministic, with no judge calls.
    cases = [
        dataclasses.replace(c, assertions=tuple(a for a in c.assertions if a.type != "llm-rubric")) for c in full.cases
    ]
    smoke = TestSetSpec(
        prompt=full.prompt,
        description="Ten quick cases for every change.",
        pass_threshold=full.pass_threshold,
        cases=tuple(c for c in cases if c.assertions)[:SMOKE_CASES],
    )
    smoke_set = testset_store.save_testset(
        session=session, actor=tom, prompt_id=saved_id(prompt), spec=smoke, name="smoke"
    )

    production = latest_version(session, saved_id(prompt))
    if production is None:  # the catalog step stores every prompt with a version
        raise RuntimeError(f"The demo prompt {AB_PROMPT} has no version")
    spec = version_spec(production)
    first = spec.messages[0]
    candidate = create_version(
        session=session,
        actor=tom,
        prompt_id=saved_id(prompt),
        version=dataclasses.replace(
            spec,
            change_note="Ask one short clarifying question when the ticket names no product.",
            messages=(
                MessageSpec(
                    first.role,
                    first.content.rstrip() + "\nWhen the ticket names no product or feature, "
                    "ask one short clarifying question.\n",
                ),
                *spec.messages[1:],
            ),
        ),
    )
    workflow.submit(session=session, actor=tom, version_id=saved_id(candidate))

    choices = [VariantChoice(saved_id(production)), VariantChoice(saved_id(candidate))]
    planned = service.plan(session, actor=tom, testset_id=saved_id(smoke_set), variants=choices)
    experiment_id = service.start(
        session=session,
        actor=tom,
        testset_id=saved_id(smoke_set),
        variants=choices,
        confirmed_estimate_micro=planned.estimate.total_micro,
        background=False,
    )
    session.expire_all()
    service.attach_to_review(session=session, actor=tom, experiment_id=experiment_id, version_id=saved_id(candidate))
