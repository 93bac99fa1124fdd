"""Who wrote a version and who approved it, as four-eyes needs to know it.

Review rows (`prompt_review`) and the version's author columns are ordinary rows: retention
may anonymize or delete them once the version no longer matters, and a database user with
write access can change them. Four-eyes therefore never counts on them alone. Every
approval and every version's creation also writes an audit event, and the audit chain is
append-only (an edit, deletion or insertion is reported by `quorum audit verify`) and kept
at least `audit_log_minimum` (7 years). So:

- whoever approved a version by its approve rows *or* by its `prompt.version.approve`
  events may not approve it again: deleting or anonymizing rows never frees anyone;
- the approvals that count are the chain's alone: a review row inserted or edited with SQL
  adds no approval, and a deleted one takes none away;
- a version's authors are its author columns *and* the actor of the event that created
  it (`prompt.version.create`, or `prompt.create` for a prompt's first version): clearing
  the author columns never lets the author approve their own version.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.catalog.store import IN_REVIEW
from core.db import saved_id
from core.models.audit import AuditEvent
from core.models.catalog import Prompt, PromptReview, PromptVersion
from core.models.retention import SubjectRequest
from core.permissions import Actor

APPROVE = "approve"
APPROVE_EVENT = "prompt.version.approve"
ANONYMIZED = "anonymized"  # what retention writes over a pseudonymous reference (core.retention.kinds)


def _known(ref: str | None) -> bool:
    """A reference that still names someone: not empty, not 'anonymized' nor 'anonymized:<n>'."""
    if not ref:
        return False
    return ref != ANONYMIZED and not ref.startswith(ANONYMIZED + ":")


def approvers(session: Session, version_id: int) -> set[str]:
    """Every actor reference that approved the version, by its review rows or by the audit chain."""
    from_rows = set(
        session.exec(
            select(PromptReview.reviewer_ref).where(
                PromptReview.version_id == version_id, PromptReview.decision == APPROVE
            )
        )
    )
    return {ref for ref in from_rows | counted_approvers(session, version_id) if _known(ref)}


def counted_approvers(session: Session, version_id: int) -> set[str]:
    """The distinct approvers that count towards the policy: those of the audit chain."""
    return set(
        session.exec(
            select(AuditEvent.actor).where(
                AuditEvent.target_type == "prompt_version",
                AuditEvent.target_id == str(version_id),
                AuditEvent.action == APPROVE_EVENT,
            )
        )
    )


def approved_in_chain(session: Session, version_id: int) -> bool:
    """Whether an approval in the audit chain moved the version to approved (its event says so)."""
    # canonical_json: sorted keys, no spaces, so the state is written exactly like this.
    made_approved = '%"state":"approved"%'
    return (
        session.exec(
            select(AuditEvent.seq)
            .where(
                AuditEvent.target_type == "prompt_version",
                AuditEvent.target_id == str(version_id),
                AuditEvent.action == APPROVE_EVENT,
                col(AuditEvent.after_json).like(made_approved),
            )
            .limit(1)
        ).first()
        is not None
    )


def approver_person_ids(session: Session, version_id: int) -> set[int]:
    rows = session.exec(
        select(PromptReview.reviewer_person_id).where(
            PromptReview.version_id == version_id, PromptReview.decision == APPROVE
        )
    )
    return {pid for pid in rows if pid is not None}


def authors(session: Session, version: PromptVersion) -> set[str]:
    """The version's author, by its columns and by the audit event that created it."""
    created = (
        (AuditEvent.target_type == "prompt_version")
        & (AuditEvent.target_id == str(version.id))
        & (AuditEvent.action == "prompt.version.create")
    )
    if version.number == 1:
        created = created | (
            (AuditEvent.target_type == "prompt")
            & (AuditEvent.target_id == str(version.prompt_id))
            & (AuditEvent.action == "prompt.create")
        )
    refs = set(session.exec(select(AuditEvent.actor).where(created)))
    refs.add(version.author_ref)
    return {ref for ref in refs if _known(ref)}


def is_author(session: Session, actor: Actor, version: PromptVersion) -> bool:
    """Whoever wrote the version, by actor reference or by person, whatever their roles."""
    if actor.person_id is not None and actor.person_id == version.author_person_id:
        return True
    return actor.ref in authors(session, version)


def erased_authors(session: Session, version: PromptVersion) -> set[str]:
    """Authors of the version whose personal data was erased (a data-subject request).

    Erasure makes Quorum forget who someone was: a person created again with the same
    e-mail is a new person to it. A version such an author wrote can no longer be kept
    apart from its approvers, so it is never submitted (core.catalog.workflow.submit).
    """
    refs = authors(session, version)
    if not refs:
        return set()
    erased = session.exec(
        select(SubjectRequest.subject_ref).where(
            SubjectRequest.kind == "erasure", col(SubjectRequest.subject_ref).in_(sorted(refs))
        )
    )
    return set(erased)


def open_reviews_involving(session: Session, person_ref: str, person_id: int) -> list[str]:
    """'name vN' of every version in review that the person wrote or approved."""
    found = []
    in_review = session.exec(
        select(PromptVersion, Prompt)
        .join(Prompt, col(Prompt.id) == PromptVersion.prompt_id)
        .where(PromptVersion.state == IN_REVIEW)
        .order_by(col(Prompt.name), col(PromptVersion.number))
    )
    for version, prompt in in_review:
        wrote = version.author_person_id == person_id or person_ref in authors(session, version)
        approved = person_ref in approvers(session, saved_id(version)) or person_id in approver_person_ids(
            session, saved_id(version)
        )
        if wrote or approved:
            found.append(f"{prompt.name} v{version.number}")
    return found
