"""Catches: answers a prompt version's escalation rule (or a user's feedback) sent to a person.

One row per caught call, written with the call in its write-back transaction. A
``review_after`` catch waits in the review queue (``review_status`` pending) until a
reviewer of the owning team marks it correct or wrong, saying what it should have said.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class EscalationCatch(SQLModel, table=True):
    __tablename__ = "escalation_catch"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=40, index=True)
    team_id: int = Field(index=True)
    prompt_name: str = Field(max_length=64, index=True)
    prompt_version: str = Field(max_length=16)  # "v3"
    rule: str = Field(max_length=80)  # "escalation.low-confidence", "feedback"
    action: str = Field(max_length=16)  # hold | review_after | block
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime, index=True)
    review_status: str = Field(default="", max_length=16, index=True)  # "" | pending | correct | wrong
    expected: str = Field(default="", max_length=4000)  # what it should have said
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
