"""Stored prompts and versions: creating them, and reading them back as specs.

Editing never changes a version: it makes the next one (numbered per prompt). The content
is stored as the canonical JSON of ``version_content`` with its ``content_hash``, written
once in ``insert_version`` and never updated by any service.
"""

from __future__ import annotations

import json
import re

from sqlmodel import Session, col, func, select

from core import clock
from core.audit.record import committing, record
from core.catalog.spec import (
    DATA_CLASSIFICATIONS,
    PROMPT_NAME_PATTERN,
    RISK_TIERS,
    PromptSpec,
    VersionSpec,
    content_hash,
    version_content,
    version_from_content,
)
from core.db import get_or_not_found, saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets_in
from core.identity import people as identity
from core.models.catalog import Prompt, PromptVersion
from core.models.identity import Team
from core.permissions import Actor, Permission, require

DRAFT = "draft"
IN_REVIEW = "in_review"
APPROVED = "approved"
CHANGES_REQUESTED = "changes_requested"
REJECTED = "rejected"
DEPRECATED = "deprecated"
STATES = (DRAFT, IN_REVIEW, APPROVED, CHANGES_REQUESTED, REJECTED, DEPRECATED)


# ---- reading ---------------------------------------------------------------------------


def get_prompt(session: Session, prompt_id: int) -> Prompt:
    return get_or_not_found(session, Prompt, prompt_id, "prompt")


def prompt_by_name(session: Session, name: str) -> Prompt:
    prompt = session.exec(select(Prompt).where(Prompt.name == (name or "").strip())).first()
    if prompt is None:
        raise NotFound(f"No prompt named {name!r} in the catalog")
    return prompt


def get_version(session: Session, version_id: int) -> PromptVersion:
    return get_or_not_found(session, PromptVersion, version_id, "prompt version")


def versions_of(session: Session, prompt_id: int) -> list[PromptVersion]:
    query = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id).order_by(col(PromptVersion.number))
    return list(session.exec(query))


def latest_version(session: Session, prompt_id: int) -> PromptVersion | None:
    query = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id).order_by(col(PromptVersion.number).desc())
    return session.exec(query).first()


def version_spec(version: PromptVersion) -> VersionSpec:
    return version_from_content(json.loads(version.content_json), change_note=version.change_note)


def prompt_spec(session: Session, prompt: Prompt) -> PromptSpec:
    team = session.get(Team, prompt.team_id)
    return PromptSpec(
        name=prompt.name,
        team=team.name if team else "?",
        purpose=prompt.purpose,
        risk_tier=prompt.risk_tier,
        data_classification=prompt.data_classification,
    )


def label_of(version: PromptVersion, prompt: Prompt) -> str:
    """'ticket-triage v3': how people name a version."""
    return f"{prompt.name} v{version.number}"


# ---- changing --------------------------------------------------------------------------


def create_prompt(*, session: Session, actor: Actor, prompt: PromptSpec, version: VersionSpec) -> PromptVersion:
    """A new prompt with its first version, a draft by `actor`: one audited change."""
    team = identity.team_by_name(session, prompt.team)
    require(actor, Permission.PROMPT_WRITE, team_id=team.id)
    with committing(session):
        return insert_prompt(session, actor, prompt, version, saved_id(team))


def create_version(*, session: Session, actor: Actor, prompt_id: int, version: VersionSpec) -> PromptVersion:
    """The next version of a prompt, as a draft; refused when nothing changed."""
    prompt = get_prompt(session, prompt_id)
    require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
    if not version.change_note.strip():
        raise ValidationError("A new version needs a change note saying what changed and why")
    _refuse_duplicate(session, prompt, version)
    with committing(session):
        return insert_version(session, actor, prompt, version)


def insert_prompt(
    session: Session, actor: Actor, spec: PromptSpec, version: VersionSpec, team_id: int
) -> PromptVersion:
    """Add a prompt and its first version, with their audit event, to the caller's transaction.

    Checks no permission and commits nothing: `create_prompt` and the catalog import do both."""
    _check_prompt_spec(spec)
    if session.exec(select(Prompt).where(Prompt.name == spec.name)).first():
        raise Conflict(f"A prompt named {spec.name!r} already exists")
    prompt = Prompt(
        name=spec.name,
        team_id=team_id,
        purpose=spec.purpose.strip(),
        risk_tier=spec.risk_tier,
        data_classification=spec.data_classification,
    )
    session.add(prompt)
    session.flush()
    stored = _version_row(session, actor, prompt, version)
    record(
        session,
        actor=actor,
        action="prompt.create",
        target_type="prompt",
        target_id=saved_id(prompt),
        team_id=team_id,
        after={
            "name": prompt.name,
            "risk_tier": prompt.risk_tier,
            "data_classification": prompt.data_classification,
            "version": 1,
            "content_hash": stored.content_hash,
            "state": DRAFT,
        },
    )
    return stored


def insert_version(session: Session, actor: Actor, prompt: Prompt, version: VersionSpec) -> PromptVersion:
    """Add a version, with its audit event, to the caller's transaction.

    Checks no permission and commits nothing: `create_version` and the catalog import do both."""
    stored = _version_row(session, actor, prompt, version)
    record(
        session,
        actor=actor,
        action="prompt.version.create",
        target_type="prompt_version",
        target_id=saved_id(stored),
        team_id=prompt.team_id,
        after={"prompt_id": prompt.id, "version": stored.number, "content_hash": stored.content_hash, "state": DRAFT},
    )
    return stored


def _version_row(session: Session, actor: Actor, prompt: Prompt, version: VersionSpec) -> PromptVersion:
    refuse_secrets_in({"the draft": version_content(version), "the change note": version.change_note})
    number = (
        session.exec(
            select(func.coalesce(func.max(PromptVersion.number), 0)).where(PromptVersion.prompt_id == prompt.id)
        ).one()
        + 1
    )
    now = clock.now()
    stored = PromptVersion(
        prompt_id=saved_id(prompt),
        number=number,
        content_json=json.dumps(version_content(version), sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        content_hash=content_hash(version),
        change_note=version.change_note.strip(),
        author_ref=actor.ref,
        author_person_id=actor.person_id,
        created_at=now,
        state=DRAFT,
        state_changed_at=now,
    )
    session.add(stored)
    session.flush()
    return stored


def _refuse_duplicate(session: Session, prompt: Prompt, version: VersionSpec) -> None:
    latest = latest_version(session, saved_id(prompt))
    if latest is not None and latest.content_hash == content_hash(version):
        raise Conflict(f"Nothing changed: the content is the same as {label_of(latest, prompt)}")


def _check_prompt_spec(spec: PromptSpec) -> None:
    refuse_secrets_in({"the prompt name": spec.name, "the prompt's purpose": spec.purpose})
    if not re.match(PROMPT_NAME_PATTERN, spec.name or "") or len(spec.name) > 64:
        raise ValidationError(f"Prompt name {spec.name!r} must be lower-case words joined by '-', e.g. 'ticket-triage'")
    if not spec.purpose.strip():
        raise ValidationError("A prompt needs a purpose")
    if spec.risk_tier not in RISK_TIERS:
        raise ValidationError(f"Risk tier must be one of {', '.join(RISK_TIERS)}")
    if spec.data_classification not in DATA_CLASSIFICATIONS:
        raise ValidationError(f"Data classification must be one of {', '.join(DATA_CLASSIFICATIONS)}")
