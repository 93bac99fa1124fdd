"""An auditor's Home: the last clean verification, the newest checkpoint, and how many
events the chain gained since each (nothing changed since, or N events to look at)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, select

from core.attention import AttentionItem
from core.audit import checkpoints
from core.audit.checkpoints import Checkpoint
from core.models.audit import AuditHead
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class CheckpointMark:
    seq: int
    at: datetime
    key_id: str
    events_since: int  # events appended to the chain after this checkpoint


@dataclass(frozen=True)
class AuditStanding:
    head_seq: int  # the chain's newest event (0: no event yet)
    last_verified: CheckpointMark | None  # newest checkpoint signed by a clean verification
    newest_checkpoint: CheckpointMark | None
    signed: bool  # whether new checkpoints can be signed here
    signing_note: str


def audit_standing(session: Session, *, actor: Actor) -> AuditStanding:
    """Where verification stands today, for someone who may read the audit log."""
    require(actor, Permission.AUDIT_READ)
    head = session.exec(select(AuditHead)).first()
    head_seq = head.seq if head is not None else 0
    chain = head.chain_id if head is not None else None
    stored = [c for c in checkpoints.database_checkpoints(session) if chain is None or c.chain_id == chain]
    verified = [c for c in stored if c.verified]
    signed, note = checkpoints.protection_status()
    return AuditStanding(
        head_seq=head_seq,
        last_verified=_mark(verified[-1], head_seq) if verified else None,
        newest_checkpoint=_mark(stored[-1], head_seq) if stored else None,
        signed=signed,
        signing_note=note,
    )


def _mark(checkpoint: Checkpoint, head_seq: int) -> CheckpointMark:
    at = datetime.strptime(checkpoint.created_at, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return CheckpointMark(checkpoint.seq, at, checkpoint.key_id, max(head_seq - checkpoint.seq, 0))


def signing_warning(session: Session, actor: Actor) -> list[AttentionItem]:
    """Admins: without a signing key, deleting the newest events would go unnoticed."""
    if not actor.can(Permission.TEAM_MANAGE):
        return []
    signed, note = checkpoints.protection_status()
    if signed:
        return []
    return [AttentionItem("The audit log has no signing key", note, severity="warning", page="pages/audit_verify.py")]
