"""The audit trail's tables: one row per state change, chained by hashes, plus signed checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, Index, Text, false
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    # Each filter of the audit page has an index that ends in `seq`, so "newest first,
    # 50 at a time" walks the index in order instead of sorting every match.
    __table_args__ = (
        Index("ux_audit_event_seq", "seq", unique=True),
        # Covers a time window's min and max seq (core.audit.query._seq_range) without reading rows.
        Index("ix_audit_event_occurred_at_seq", "occurred_at", "seq"),
        Index("ix_audit_event_actor_seq", "actor", "seq"),
        Index("ix_audit_event_action_seq", "action", "seq"),
        Index("ix_audit_event_target_seq", "target_type", "target_id", "seq"),
        Index("ix_audit_event_team_seq", "team_id", "seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Gap-free position in the chain: 1, 2, 3... (ids may skip after a rollback; seq never does).
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Globally unique, so a receiver of an export can de-duplicate.
    event_id: str = Field(max_length=36, unique=True)
    occurred_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # A stable, pseudonymous reference such as "person:12", "key:3" or "system:cli".
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=40)
    target_id: str = Field(max_length=80)
    # No foreign key: an event must outlive the team it mentions.
    team_id: int | None = Field(default=None)
    # Canonical JSON (sorted keys) so the same change always serializes the same way.
    before_json: str | None = Field(default=None, sa_type=Text)
    after_json: str | None = Field(default=None, sa_type=Text)
    # SHA-256 (hex) of the previous event, and of this event's fields plus that (core.audit.chain).
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the chain's newest seq and hash. Writers lock it first, so they take turns."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    head_hash: str = Field(max_length=64)
    # Names this chain in the checkpoint file, so a reset database starts a new one.
    chain_id: str = Field(max_length=36)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement "the chain had `seq` events ending in `head_hash` at `created_at`"."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    chain_id: str = Field(max_length=36)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    head_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # Set when events before this seq were deleted on purpose (retention): verify starts here.
    pruned_before: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    key_id: str = Field(max_length=16)
    signature: str = Field(max_length=128)
    # Signed by a clean verification of every event up to `seq`: incremental verification starts after it.
    verified: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
