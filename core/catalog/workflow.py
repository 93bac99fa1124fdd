"""The review workflow of a prompt version, with four-eyes approval.

    draft -> in_review -> approved | changes_requested | rejected
    approved -> deprecated

A changes_requested or rejected version is a dead end: the engineer writes a new version,
which needs its own approvals. Each call below checks its permission, refuses with a
message that says why, and makes its change with exactly one audit event.

Who wrote and who approved a version is read from its rows and from the audit chain
(core.catalog.approvals), so neither retention nor a deleted row lets one person count
twice or approve their own version. The approvals a version needs are fixed when it is
submitted: the stricter of its prompt's risk tier then and now.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.catalog import approvals
from core.catalog.checks import ERROR, has_errors, static_checks
from core.catalog.policy import ReviewPolicy, load_review_policy
from core.catalog.store import (
    APPROVED,
    CHANGES_REQUESTED,
    DEPRECATED,
    DRAFT,
    IN_REVIEW,
    REJECTED,
    get_prompt,
    get_version,
    label_of,
    version_spec,
)
from core.db import saved_id
from core.errors import Conflict, InvalidTransition, ValidationError
from core.guardrails.saved_text import refuse_secrets, refuse_secrets_in
from core.models.catalog import Prompt, PromptLabel, PromptReview, PromptVersion, ReviewEvidence
from core.permissions import Actor, Permission, require

APPROVE = "approve"
REQUEST_CHANGES = "request_changes"
REJECT = "reject"

# state -> the states a version may move to from it.
TRANSITIONS: dict[str, frozenset[str]] = {
    DRAFT: frozenset({IN_REVIEW}),
    IN_REVIEW: frozenset({APPROVED, CHANGES_REQUESTED, REJECTED}),
    APPROVED: frozenset({DEPRECATED}),
    CHANGES_REQUESTED: frozenset(),
    REJECTED: frozenset(),
    DEPRECATED: frozenset(),
}
_MAX_COMMENT = 4000


def submit(*, session: Session, actor: Actor, version_id: int) -> PromptVersion:
    """Send a draft to review; refused, with the reasons, when static checks find errors."""
    version, prompt = _load(session, version_id)
    require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
    _check_transition(version, prompt, IN_REVIEW)
    errors = [f.message for f in static_checks(version_spec(version)) if f.severity == ERROR]
    if errors:
        raise ValidationError(f"{label_of(version, prompt)} cannot be submitted: " + "; ".join(errors))
    if approvals.erased_authors(session, version):
        raise Conflict(
            f"{label_of(version, prompt)} was written by a person whose data was erased, so its "
            "author can no longer be told apart from its reviewers; write a new version instead"
        )
    version.submitted_risk_tier = prompt.risk_tier
    return _move(
        session,
        actor,
        version,
        prompt,
        IN_REVIEW,
        action="prompt.version.submit",
        extra={"risk_tier": prompt.risk_tier, "required": load_review_policy().required_for(prompt.risk_tier)},
    )


def approve(*, session: Session, actor: Actor, version_id: int, comment: str) -> PromptVersion:
    """Add `actor`'s approval; the version becomes approved once the policy's count is reached."""
    version, prompt = _load(session, version_id)
    require(actor, Permission.PROMPT_REVIEW)
    comment = _required_comment(comment, "An approval")
    _check_transition(version, prompt, APPROVED)
    if is_author(session, actor, version):
        raise Conflict(f"You wrote {label_of(version, prompt)}; another reviewer must approve it")
    if actor.ref in approvals.approvers(session, saved_id(version)) or actor.person_id in approvals.approver_person_ids(
        session, saved_id(version)
    ):
        raise Conflict(f"You have already approved {label_of(version, prompt)}; it needs a different reviewer")
    required = required_approvals(version, prompt)
    counted = approvals.counted_approvers(session, saved_id(version))
    count = len(counted) + 1
    new_state = APPROVED if count >= required else IN_REVIEW
    before = {"state": version.state, "approvals": len(counted), "required": required}
    with committing(session):
        _add_review(session, actor, version, APPROVE, comment)
        _set_state(version, new_state)
        session.add(version)
        record(
            session,
            actor=actor,
            action="prompt.version.approve",
            target_type="prompt_version",
            target_id=saved_id(version),
            team_id=prompt.team_id,
            before=before,
            after={"state": new_state, "approvals": count, "required": required},
        )
    return version


def request_changes(*, session: Session, actor: Actor, version_id: int, comment: str) -> PromptVersion:
    return _decide(session, actor, version_id, comment, REQUEST_CHANGES, CHANGES_REQUESTED)


def reject(*, session: Session, actor: Actor, version_id: int, comment: str) -> PromptVersion:
    return _decide(session, actor, version_id, comment, REJECT, REJECTED)


def deprecate(*, session: Session, actor: Actor, version_id: int) -> PromptVersion:
    """Retire an approved version; refused while a label still points at it."""
    version, prompt = _load(session, version_id)
    require(actor, Permission.PROMPT_REVIEW)
    _check_transition(version, prompt, DEPRECATED)
    labels = list(session.exec(select(PromptLabel.name).where(PromptLabel.version_id == version.id)))
    if labels:
        names = ", ".join(f"'{n}'" for n in sorted(labels))
        raise Conflict(
            f"{label_of(version, prompt)} is labelled {names}; move the label to another "
            "approved version before deprecating it"
        )
    return _move(session, actor, version, prompt, DEPRECATED, action="prompt.version.deprecate")


def attach_evidence(
    *, session: Session, actor: Actor, version_id: int, kind: str, reference_id: str, summary: str
) -> ReviewEvidence:
    """Attach evidence for reviewers (an A/B result...) to a version of the actor's team."""
    version, prompt = _load(session, version_id)
    require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
    kind, reference_id, summary = kind.strip().lower(), str(reference_id).strip(), summary.strip()
    refuse_secrets_in(
        {"the evidence kind": kind, "the evidence reference": reference_id, "the evidence summary": summary}
    )
    if not kind or not reference_id or not summary:
        raise ValidationError("Evidence needs a kind, a reference and a summary")
    evidence = ReviewEvidence(
        version_id=saved_id(version),
        kind=kind[:32],
        reference_id=reference_id[:80],
        summary=summary[:_MAX_COMMENT],
        attached_by=actor.ref,
        attached_at=clock.now(),
    )
    with committing(session):
        session.add(evidence)
        session.flush()
        record(
            session,
            actor=actor,
            action="prompt.evidence.attach",
            target_type="prompt_version",
            target_id=saved_id(version),
            team_id=prompt.team_id,
            after={"evidence_id": evidence.id, "kind": evidence.kind, "reference_id": evidence.reference_id},
        )
    return evidence


def is_author(session: Session, actor: Actor, version: PromptVersion) -> bool:
    """Whoever wrote a version, by actor reference or by person, whatever their roles."""
    return approvals.is_author(session, actor, version)


def required_approvals(version: PromptVersion, prompt: Prompt, policy: ReviewPolicy | None = None) -> int:
    """Distinct approvals the version needs: the stricter of its tier at submission and its prompt's now."""
    policy = policy or load_review_policy()
    tiers = {prompt.risk_tier, version.submitted_risk_tier or prompt.risk_tier}
    return max(policy.required_for(tier) for tier in tiers)


def reviews_of(session: Session, version_id: int) -> list[PromptReview]:
    query = select(PromptReview).where(PromptReview.version_id == version_id).order_by(col(PromptReview.id))
    return list(session.exec(query))


def submission_problems(version: PromptVersion) -> list[str]:
    """The static-check findings of a stored version, as lines (errors first)."""
    findings = static_checks(version_spec(version))
    return [f"{f.severity}: {f.message}" for f in sorted(findings, key=lambda f: f.severity != ERROR)]


def blocks_submission(version: PromptVersion) -> bool:
    return has_errors(static_checks(version_spec(version)))


# ---- helpers ---------------------------------------------------------------------------


def _decide(
    session: Session, actor: Actor, version_id: int, comment: str, decision: str, new_state: str
) -> PromptVersion:
    version, prompt = _load(session, version_id)
    require(actor, Permission.PROMPT_REVIEW)
    what = "Rejecting a version" if decision == REJECT else "Requesting changes"
    comment = _required_comment(comment, what)
    _check_transition(version, prompt, new_state)
    if actor.ref in {r.reviewer_ref for r in reviews_of(session, saved_id(version))} | approvals.approvers(
        session, saved_id(version)
    ):
        raise Conflict(f"You have already reviewed {label_of(version, prompt)}")
    action = "prompt.version.reject" if decision == REJECT else "prompt.version.request_changes"
    with committing(session):
        _add_review(session, actor, version, decision, comment)
        return _move(session, actor, version, prompt, new_state, action=action, commit=False)


def _move(
    session: Session,
    actor: Actor,
    version: PromptVersion,
    prompt: Prompt,
    new_state: str,
    *,
    action: str,
    commit: bool = True,
    extra: dict[str, Any] | None = None,
) -> PromptVersion:
    before = {"state": version.state}
    if commit:
        with committing(session):
            return _move(session, actor, version, prompt, new_state, action=action, commit=False, extra=extra)
    _set_state(version, new_state)
    session.add(version)
    record(
        session,
        actor=actor,
        action=action,
        target_type="prompt_version",
        target_id=saved_id(version),
        team_id=prompt.team_id,
        before=before,
        after={"state": new_state, **(extra or {})},
    )
    return version


def _set_state(version: PromptVersion, state: str) -> None:
    if state != version.state:
        version.state = state
        version.state_changed_at = clock.now()


def _add_review(session: Session, actor: Actor, version: PromptVersion, decision: str, comment: str) -> None:
    session.add(
        PromptReview(
            version_id=saved_id(version),
            reviewer_ref=actor.ref,
            reviewer_person_id=actor.person_id,
            decision=decision,
            comment=comment,
            created_at=clock.now(),
        )
    )
    session.flush()


def _check_transition(version: PromptVersion, prompt: Prompt, new_state: str) -> None:
    if new_state not in TRANSITIONS[version.state]:
        allowed = ", ".join(sorted(TRANSITIONS[version.state])) or "nothing (write a new version instead)"
        raise InvalidTransition(
            f"{label_of(version, prompt)} is {version.state.replace('_', ' ')}; it cannot become "
            f"{new_state.replace('_', ' ')} (from {version.state} it can become: {allowed})"
        )


def _required_comment(comment: str, what: str) -> str:
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError(f"{what} needs a comment")
    refuse_secrets(comment, field="the review comment")  # before it is cut: a cut key is still a key
    return comment[:_MAX_COMMENT]


def _load(session: Session, version_id: int) -> tuple[PromptVersion, Prompt]:
    # Lock the row (PostgreSQL; SQLite write sessions already hold the write lock) so two
    # reviewers deciding at once are counted one after the other.
    version = session.exec(
        select(PromptVersion).where(PromptVersion.id == version_id).with_for_update()
    ).first() or get_version(session, version_id)
    return version, get_prompt(session, version.prompt_id)
