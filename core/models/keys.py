"""Team API keys: only a hash of each key is stored, with a visible prefix to recognise it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(
        sa_column=Column(Integer, ForeignKey("team.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    label: str = Field(default="", max_length=80)
    # The first characters of the key (e.g. "qk_live_ab12cd"), shown in lists and logs.
    prefix: str = Field(max_length=24)
    # SHA-256 hex of the whole key; the key itself is never stored.
    key_hash: str = Field(max_length=64, unique=True, index=True)
    created_by: str = Field(max_length=64)  # actor ref, e.g. "person:3" or "system:cli"
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    # Set on the old key when it is rotated: it keeps working until this instant.
    grace_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    replaced_by_id: int | None = Field(default=None)
    # Comma-separated CIDRs; empty means any address.
    allowed_cidrs: str = Field(default="", max_length=1000)
