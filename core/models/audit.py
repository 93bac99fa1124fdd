"""The audit trail's table: one row per state change, written with the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_occurred_at", "occurred_at"),
        Index("ix_audit_event_action", "action"),
        Index("ix_audit_event_target", "target_type", "target_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Globally unique, so a receiver of an export can de-duplicate.
    event_id: str = Field(max_length=36, unique=True)
    occurred_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # A stable, pseudonymous reference such as "person:12", "key:3" or "system:cli".
    actor: str = Field(max_length=64, index=True)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=40)
    target_id: str = Field(max_length=80)
    # No foreign key: an event must outlive the team it mentions.
    team_id: int | None = Field(default=None, index=True)
    # Canonical JSON (sorted keys) so the same change always serializes the same way.
    before_json: str | None = Field(default=None, sa_type=Text)
    after_json: str | None = Field(default=None, sa_type=Text)
