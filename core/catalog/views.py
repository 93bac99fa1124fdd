"""What the catalog pages and the Home page read: listings, details, the review queue, diffs.

Read-only; every function checks the reader's permission, and returns plain dataclasses
so pages never touch the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from core.attention import AttentionItem
from core.catalog import approvals
from core.catalog.diff import FieldChange, version_changes
from core.catalog.labels import PRODUCTION, LabelMoveView, label_history, labels_of
from core.catalog.policy import load_review_policy
from core.catalog.spec import PromptSpec, VersionSpec
from core.catalog.store import APPROVED, IN_REVIEW, get_prompt, get_version, version_spec, versions_of
from core.catalog.workflow import is_author, required_approvals, reviews_of, submission_problems
from core.db import saved_id
from core.models.catalog import Prompt, PromptReview, PromptVersion, ReviewEvidence
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class PromptRow:
    id: int
    name: str
    team: str
    purpose: str
    risk_tier: str
    data_classification: str
    versions: int
    latest_state: str
    labels: dict[str, int]  # label -> version number


@dataclass(frozen=True)
class VersionRow:
    id: int
    number: int
    state: str
    content_hash: str
    change_note: str
    author: str
    created_at: datetime
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ReviewRow:
    version: int
    reviewer: str
    decision: str
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class EvidenceRow:
    kind: str
    reference_id: str
    summary: str
    attached_by: str
    attached_at: datetime


@dataclass(frozen=True)
class PromptDetail:
    prompt: PromptRow
    versions: list[VersionRow]
    reviews: list[ReviewRow]
    label_moves: list[LabelMoveView]


@dataclass(frozen=True)
class QueueItem:
    version_id: int
    prompt_name: str
    team: str
    risk_tier: str
    number: int
    author: str
    change_note: str
    approvals: int
    required: int
    mine: bool  # the actor wrote it: they may not approve
    already_reviewed: bool
    baseline: str  # what the diff compares against, e.g. 'production (v2)'
    changes: list[FieldChange]  # against the baseline, field by field
    checks: list[str]
    evidence: list[EvidenceRow] = field(default_factory=list)
    # A newer version of the same prompt already approved, e.g. 'v5 (approved, production)':
    # approving this one and labelling it would roll that back.
    superseded_by: str | None = None
    outcome: str = ""  # what approving does, in the reviewer's words


# ---- listings --------------------------------------------------------------------------


def list_prompts(
    session: Session,
    *,
    actor: Actor,
    search: str = "",
    team: str | None = None,
    state: str | None = None,
    label: str | None = None,
    risk_tier: str | None = None,
) -> list[PromptRow]:
    """The catalog, filtered: `state` matches any version's state, `label` any label name."""
    require(actor, Permission.CATALOG_READ)
    rows = []
    needle = search.strip().lower()
    for prompt in session.exec(select(Prompt).order_by(col(Prompt.name))):
        row = _prompt_row(session, prompt)
        versions = versions_of(session, saved_id(prompt))
        if needle and needle not in f"{row.name} {row.purpose}".lower():
            continue
        if (team and row.team != team) or (risk_tier and row.risk_tier != risk_tier):
            continue
        if state and state not in {v.state for v in versions}:
            continue
        if label and label not in row.labels:
            continue
        rows.append(row)
    return rows


def prompt_detail(session: Session, *, actor: Actor, prompt_id: int) -> PromptDetail:
    require(actor, Permission.CATALOG_READ)
    prompt = get_prompt(session, prompt_id)
    names = _names(session)
    labels = labels_of(session, saved_id(prompt))
    versions = versions_of(session, saved_id(prompt))
    by_id = {v.id: v.number for v in versions}
    version_rows = [
        VersionRow(
            saved_id(v),
            v.number,
            v.state,
            v.content_hash,
            v.change_note,
            names.get(v.author_ref, v.author_ref),
            v.created_at,
            tuple(sorted(n for n, vid in labels.items() if vid == v.id)),
        )
        for v in reversed(versions)
    ]
    reviews: Iterable[PromptReview] = (
        session.exec(
            select(PromptReview)
            .where(col(PromptReview.version_id).in_(list(by_id)))
            .order_by(col(PromptReview.id).desc())
        )
        if by_id
        else []
    )
    review_rows = [
        ReviewRow(by_id[r.version_id], names.get(r.reviewer_ref, r.reviewer_ref), r.decision, r.comment, r.created_at)
        for r in reviews
    ]
    moves = [
        LabelMoveView(m.label, m.from_version, m.to_version, names.get(m.actor, m.actor), m.moved_at)
        for m in label_history(session, saved_id(prompt))
    ]
    return PromptDetail(_prompt_row(session, prompt), version_rows, review_rows, moves)


def review_queue(session: Session, *, actor: Actor) -> list[QueueItem]:
    """Every version in review, oldest first, with what a reviewer needs to decide."""
    require(actor, Permission.PROMPT_REVIEW)
    names = _names(session)
    policy = load_review_policy()
    items = []
    query = select(PromptVersion).where(PromptVersion.state == IN_REVIEW).order_by(col(PromptVersion.state_changed_at))
    for version in session.exec(query):
        prompt = get_prompt(session, version.prompt_id)
        reviews = reviews_of(session, saved_id(version))
        production_id = labels_of(session, saved_id(prompt)).get(PRODUCTION)
        if production_id is not None:
            base = get_version(session, production_id)
            baseline = f"production (v{base.number})"
            old_spec: VersionSpec | None = version_spec(base)
        else:
            baseline, old_spec = "nothing (no production version yet)", None
        evidence = session.exec(
            select(ReviewEvidence).where(ReviewEvidence.version_id == version.id).order_by(col(ReviewEvidence.id))
        )
        counted = len(approvals.counted_approvers(session, saved_id(version)))
        required = required_approvals(version, prompt, policy)
        newer = session.exec(
            select(PromptVersion)
            .where(
                PromptVersion.prompt_id == prompt.id,
                PromptVersion.state == APPROVED,
                PromptVersion.number > version.number,
            )
            .order_by(col(PromptVersion.number).desc())
        ).first()
        superseded_by = None
        if newer is not None:
            newer_labels = sorted(name for name, vid in labels_of(session, saved_id(prompt)).items() if vid == newer.id)
            superseded_by = f"v{newer.number} (" + ", ".join(["approved", *newer_labels]) + ")"
        items.append(
            QueueItem(
                version_id=saved_id(version),
                prompt_name=prompt.name,
                team=_team_name(session, prompt.team_id),
                risk_tier=prompt.risk_tier,
                number=version.number,
                author=names.get(version.author_ref, version.author_ref),
                change_note=version.change_note,
                approvals=counted,
                required=required,
                mine=is_author(session, actor, version),
                already_reviewed=actor.ref
                in {r.reviewer_ref for r in reviews} | approvals.approvers(session, saved_id(version)),
                baseline=baseline,
                changes=version_changes(old_spec, version_spec(version)),
                checks=submission_problems(version),
                evidence=[
                    EvidenceRow(
                        e.kind, e.reference_id, e.summary, names.get(e.attached_by, e.attached_by), e.attached_at
                    )
                    for e in evidence
                ],
                superseded_by=superseded_by,
                outcome=_approval_outcome(
                    version.number, counted, required, f"v{base.number}" if production_id else None, superseded_by
                ),
            )
        )
    return items


def _approval_outcome(
    number: int, counted: int, required: int, production: str | None, superseded_by: str | None
) -> str:
    if counted + 1 < required:
        said = f"Your approval would be {counted + 1} of {required}: v{number} stays in review until then."
    else:
        said = f"Approving makes v{number} approved: a governance lead may then point a label at it."
        said += f" Production today: {production}." if production else " No version is in production yet."
    if superseded_by:
        said += f" A newer version, {superseded_by}, is already approved: labelling v{number} would roll it back."
    return said


def approved_versions(session: Session, *, actor: Actor, prompt_id: int) -> list[VersionRow]:
    """The versions a label may point at, newest first."""
    return [v for v in prompt_detail(session, actor=actor, prompt_id=prompt_id).versions if v.state == APPROVED]


def reviews_waiting(session: Session, actor: Actor) -> list[AttentionItem]:
    """Home: versions in review that this reviewer has not reviewed and did not write."""
    if not actor.can(Permission.PROMPT_REVIEW):
        return []
    items = []
    for version in session.exec(
        select(PromptVersion).where(PromptVersion.state == IN_REVIEW).order_by(col(PromptVersion.state_changed_at))
    ):
        reviewed = {r.reviewer_ref for r in reviews_of(session, saved_id(version))} | approvals.approvers(
            session, saved_id(version)
        )
        if is_author(session, actor, version) or actor.ref in reviewed:
            continue
        prompt = get_prompt(session, version.prompt_id)
        items.append(
            AttentionItem(
                title=f"{prompt.name} v{version.number} waits for your review",
                detail=f"{prompt.risk_tier} risk · {version.change_note}"[:200],
                severity="warning" if prompt.risk_tier == "high" else "info",
                page="pages/review_queue.py",
            )
        )
    return items


# ---- helpers ---------------------------------------------------------------------------


def _prompt_row(session: Session, prompt: Prompt) -> PromptRow:
    versions = versions_of(session, saved_id(prompt))
    numbers = {v.id: v.number for v in versions}
    return PromptRow(
        saved_id(prompt),
        prompt.name,
        _team_name(session, prompt.team_id),
        prompt.purpose,
        prompt.risk_tier,
        prompt.data_classification,
        len(versions),
        versions[-1].state if versions else "",
        {name: numbers[vid] for name, vid in sorted(labels_of(session, saved_id(prompt)).items())},
    )


def _team_name(session: Session, team_id: int) -> str:
    team = session.get(Team, team_id)
    return team.name if team else "?"


def _names(session: Session) -> dict[str, str]:
    """Actor reference -> display name, for screens only (never for audit payloads)."""
    # Two columns, not Person rows: building every person's ORM object cost most of a page's
    # catalog read at a few hundred people (bench/pages.py, Live A/B).
    return {f"person:{i}": name for i, name in session.exec(select(Person.id, Person.display_name))}


def version_spec_of(session: Session, *, actor: Actor, version_id: int) -> VersionSpec:
    """A stored version as a VersionSpec (the editor starts from it)."""
    require(actor, Permission.CATALOG_READ)
    return version_spec(get_version(session, version_id))


def prompt_spec_of(session: Session, *, actor: Actor, prompt_id: int) -> PromptSpec:
    from core.catalog.store import prompt_spec

    require(actor, Permission.CATALOG_READ)
    return prompt_spec(session, get_prompt(session, prompt_id))
