"""The catalog's part of the demo: the seed prompts, with a version in every state.

Everything goes through the audited services, as the people who would do it: the owning
team's prompt engineer writes and submits, the two governance leads review and label.
"""

from __future__ import annotations

import dataclasses

from sqlmodel import Session

from core.catalog import labels, store, workflow
from core.catalog.files import load_directory
from core.catalog.spec import MessageSpec, VersionSpec
from core.db import saved_id
from core.identity import people as identity
from core.permissions import Actor
from core.settings import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "prompts"
ENGINEERS = {
    "Support": "tom.becker@example.com",
    "Marketing": "mei.chen@example.com",
    "Legal": "sofia.rossi@example.com",
    "Data": "jonas.berg@example.com",
}
LENA, RAFAEL = "lena.fischer@example.com", "rafael.gomez@example.com"


def seed_catalog(session: Session) -> None:
    def actor(email: str) -> Actor:
        found = identity.actor_for_email(session, email)
        if found is None:  # the identity step seeds these people first
            raise RuntimeError(f"The demo person {email} is not seeded")
        return found

    lena, rafael = actor(LENA), actor(RAFAEL)
    first: dict[str, int] = {}
    team_of: dict[str, str] = {}
    for spec, version in load_directory(PROMPTS_DIR):
        stored = store.create_prompt(session=session, actor=actor(ENGINEERS[spec.team]), prompt=spec, version=version)
        first[spec.name], team_of[spec.name] = saved_id(stored), spec.team

    def engineer(name: str) -> Actor:
        return actor(ENGINEERS[team_of[name]])

    def submit(name: str, version_id: int) -> None:
        workflow.submit(session=session, actor=engineer(name), version_id=version_id)

    def release(name: str, version_id: int, reviewer: Actor, label: str | None = labels.PRODUCTION) -> None:
        submit(name, version_id)
        workflow.approve(
            session=session,
            actor=reviewer,
            version_id=version_id,
            comment="Checked against the test set; wording and scope are fine.",
        )
        if label:
            labels.move_label(session=session, actor=reviewer, version_id=version_id, label=label)

    def new_version(name: str, note: str, addition: str) -> int:
        base = store.get_version(session, first[name])
        spec = store.version_spec(base)
        messages = (
            MessageSpec(spec.messages[0].role, spec.messages[0].content.rstrip() + "\n" + addition + "\n"),
            *spec.messages[1:],
        )
        edited: VersionSpec = dataclasses.replace(spec, messages=messages, change_note=note)
        return saved_id(
            store.create_version(session=session, actor=engineer(name), prompt_id=base.prompt_id, version=edited)
        )

    # Approved and in production; a second version waits for both governance leads.
    release("support-answer", first["support-answer"], rafael)
    v2 = new_version(
        "support-answer",
        "Ask for the order number before offering a hand-off.",
        "If the question is about an order, ask for the order number first.",
    )
    submit("support-answer", v2)

    # Production moved from v1 to v2; v1 is deprecated.
    release("ticket-triage", first["ticket-triage"], lena)
    v2 = new_version(
        "ticket-triage", "Treat outage reports as urgent.", "Reports of a service outage are always urgent."
    )
    release("ticket-triage", v2, rafael)
    workflow.deprecate(session=session, actor=lena, version_id=first["ticket-triage"])

    # High risk: one of the two approvals it needs.
    submit("contract-clause-extract", first["contract-clause-extract"])
    workflow.approve(
        session=session,
        actor=lena,
        version_id=first["contract-clause-extract"],
        comment="Extraction fields match the contract register; needs a second reviewer.",
    )

    # In production; the next version was sent back, and a draft follows it.
    release("marketing-copy-review", first["marketing-copy-review"], rafael)
    v2 = new_version(
        "marketing-copy-review",
        "Allow comparative claims.",
        "Comparative claims against competitors are acceptable when phrased politely.",
    )
    submit("marketing-copy-review", v2)
    workflow.request_changes(
        session=session,
        actor=lena,
        version_id=v2,
        comment="Comparative claims need legal sign-off; cite the approved facts instead.",
    )
    new_version(
        "marketing-copy-review",
        "Comparative claims only with a cited approved fact.",
        "A comparative claim is acceptable only when it cites an approved product fact.",
    )

    # In production; a later version was rejected.
    release("sql-explain", first["sql-explain"], lena)
    v2 = new_version(
        "sql-explain",
        "Also rewrite the query for speed.",
        "After the explanation, rewrite the query so that it runs faster.",
    )
    submit("sql-explain", v2)
    workflow.reject(
        session=session,
        actor=rafael,
        version_id=v2,
        comment="Out of scope: this prompt explains queries, it does not rewrite them.",
    )

    # In production and staging.
    release("document-summary", first["document-summary"], lena)
    labels.move_label(session=session, actor=lena, version_id=first["document-summary"], label=labels.STAGING)
