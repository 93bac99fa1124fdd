"""Which version a caller runs: applications get approved versions only.

``resolve`` is the gateway's path for applications: a prompt name and a label, and only
an approved version comes back. ``resolve_for_playground`` also lets the owning team's
prompt engineers run their drafts (and any non-approved version) before review.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from core.catalog import traffic
from core.catalog.labels import PRODUCTION
from core.catalog.spec import VersionSpec
from core.catalog.store import APPROVED, get_version, label_of, prompt_by_name, version_spec
from core.db import saved_id
from core.errors import Conflict, NotFound
from core.models.catalog import Prompt, PromptLabel, PromptVersion
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class ResolvedPrompt:
    prompt_id: int
    prompt_name: str
    team_id: int
    risk_tier: str
    data_classification: str
    version_id: int
    version_number: int
    content_hash: str
    state: str
    label: str | None
    spec: VersionSpec


def resolve(
    session: Session, name: str, label: str = PRODUCTION, *, assignment_key: str | None = None
) -> ResolvedPrompt:
    """The approved version `label` points at; NotFound or Conflict otherwise, never a draft.

    With an ``assignment_key`` (the end user, or the request id) and a live traffic split
    on the prompt, production traffic goes to the split's version for that key instead.
    """
    prompt = prompt_by_name(session, name)
    if assignment_key and (label or PRODUCTION) == PRODUCTION:
        split = traffic.active_split(session, saved_id(prompt))
        if split is not None:
            version = get_version(session, traffic.assigned_version(split, assignment_key))
            if version.state == APPROVED:  # a split is approved between approved versions only
                return _resolved(prompt, version, PRODUCTION)
    row = session.exec(select(PromptLabel).where(PromptLabel.prompt_id == prompt.id, PromptLabel.name == label)).first()
    if row is None:
        raise NotFound(
            f"Prompt {prompt.name!r} has no '{label}' label yet; a governance lead must approve a version and label it"
        )
    version = get_version(session, row.version_id)
    if version.state != APPROVED:
        # Labels move only to approved versions and deprecation refuses labelled ones, so
        # this is a guard against a database edited by hand.
        raise Conflict(
            f"Label '{label}' of {prompt.name!r} points at {label_of(version, prompt)}, "
            f"which is {version.state}, not approved"
        )
    return _resolved(prompt, version, label)


def resolve_for_playground(
    *, session: Session, actor: Actor, name: str, version_number: int | None = None, label: str = PRODUCTION
) -> ResolvedPrompt:
    """A version to try out: a label's approved version, or a numbered version.

    A version that is not approved is only for prompt engineers of the owning team.
    """
    require(actor, Permission.PLAYGROUND_RUN)
    if version_number is None:
        return resolve(session, name, label)
    prompt = prompt_by_name(session, name)
    version = session.exec(
        select(PromptVersion).where(PromptVersion.prompt_id == prompt.id, PromptVersion.number == version_number)
    ).first()
    if version is None:
        raise NotFound(f"Prompt {prompt.name!r} has no version {version_number}")
    if version.state != APPROVED:
        require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
    return _resolved(prompt, version, None)


def _resolved(prompt: Prompt, version: PromptVersion, label: str | None) -> ResolvedPrompt:
    return ResolvedPrompt(
        prompt_id=saved_id(prompt),
        prompt_name=prompt.name,
        team_id=prompt.team_id,
        risk_tier=prompt.risk_tier,
        data_classification=prompt.data_classification,
        version_id=saved_id(version),
        version_number=version.number,
        content_hash=version.content_hash,
        state=version.state,
        label=label,
        spec=version_spec(version),
    )
