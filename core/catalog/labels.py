"""Labels (production, staging, custom names) point applications at approved versions.

Moving a label is a governance action (``label.move``): one audit event with the label's
before and after, plus a row in the label history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.catalog import approvals
from core.catalog.store import APPROVED, get_prompt, get_version, label_of
from core.db import saved_id
from core.errors import Conflict, ValidationError
from core.models.catalog import PromptLabel, PromptLabelMove, PromptVersion
from core.permissions import Actor, Permission, require

PRODUCTION = "production"
STAGING = "staging"
_LABEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class LabelMoveView:
    label: str
    from_version: int | None
    to_version: int
    actor: str
    moved_at: datetime


def move_label(*, session: Session, actor: Actor, version_id: int, label: str = PRODUCTION) -> PromptLabel:
    """Point `label` of the version's prompt at this approved version."""
    require(actor, Permission.LABEL_MOVE)
    label = (label or "").strip().lower()
    if not _LABEL_NAME.match(label):
        raise ValidationError(f"Label {label!r} must be a short lower-case name such as 'production'")
    version = get_version(session, version_id)
    prompt = get_prompt(session, version.prompt_id)
    if version.state != APPROVED:
        raise Conflict(
            f"Label '{label}' can point only at an approved version; "
            f"{label_of(version, prompt)} is {version.state.replace('_', ' ')}"
        )
    if not approvals.approved_in_chain(session, saved_id(version)):
        # The state says approved, but no approval in the audit chain made it so: an edited row.
        raise Conflict(
            f"{label_of(version, prompt)} is marked approved, but the audit log holds no approval "
            f"that approved it; label '{label}' cannot point at it (run `quorum audit verify`)"
        )
    current = session.exec(
        select(PromptLabel).where(PromptLabel.prompt_id == prompt.id, PromptLabel.name == label)
    ).first()
    if current is not None and current.version_id == version.id:
        raise Conflict(f"Label '{label}' already points at {label_of(version, prompt)}")
    from_id = current.version_id if current else None
    from_number = get_version(session, from_id).number if from_id else None
    now = clock.now()
    with committing(session):
        if current is None:
            current = PromptLabel(prompt_id=saved_id(prompt), name=label, version_id=saved_id(version), updated_at=now)
        else:
            current.version_id, current.updated_at = saved_id(version), now
        session.add(current)
        session.add(
            PromptLabelMove(
                prompt_id=saved_id(prompt),
                label=label,
                from_version_id=from_id,
                to_version_id=saved_id(version),
                actor_ref=actor.ref,
                moved_at=now,
            )
        )
        record(
            session,
            actor=actor,
            action="prompt.label.move",
            target_type="prompt",
            target_id=saved_id(prompt),
            team_id=prompt.team_id,
            before={"label": label, "version_id": from_id, "version": from_number},
            after={"label": label, "version_id": version.id, "version": version.number},
        )
    return current


def labels_of(session: Session, prompt_id: int) -> dict[str, int]:
    """label name -> version id."""
    rows = session.exec(select(PromptLabel).where(PromptLabel.prompt_id == prompt_id))
    return {row.name: row.version_id for row in rows}


def label_history(session: Session, prompt_id: int) -> list[LabelMoveView]:
    numbers = {v.id: v.number for v in session.exec(select(PromptVersion).where(PromptVersion.prompt_id == prompt_id))}
    moves = session.exec(
        select(PromptLabelMove).where(PromptLabelMove.prompt_id == prompt_id).order_by(col(PromptLabelMove.id).desc())
    )
    return [
        LabelMoveView(m.label, numbers.get(m.from_version_id), numbers[m.to_version_id], m.actor_ref, m.moved_at)
        for m in moves
    ]
