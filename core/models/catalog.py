"""The prompt catalog's tables: prompts, their immutable versions, reviews, labels, evidence.

A version's content is written once, when the version is created; no service updates it
(an edit is a new version). Authors and reviewers are kept both as the pseudonymous actor
reference ("person:12", "system:cli") that audit events use and, for people, as a person
id, so "the author may not approve" holds for the CLI and the seed as well as for people.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class Prompt(SQLModel, table=True):
    __tablename__ = "prompt"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id"), nullable=False, index=True))
    purpose: str = Field(sa_type=Text)
    risk_tier: str = Field(max_length=16)  # low | medium | high
    data_classification: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class PromptVersion(SQLModel, table=True):
    __tablename__ = "prompt_version"
    __table_args__ = (
        UniqueConstraint("prompt_id", "number", name="uq_prompt_version_number"),
        Index("ix_prompt_version_state", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False))
    number: int
    # Canonical JSON of core.catalog.spec.version_content: written once, never updated.
    content_json: str = Field(sa_type=Text)
    content_hash: str = Field(max_length=64, index=True)
    change_note: str = Field(default="", sa_type=Text)
    author_ref: str = Field(max_length=64)
    author_person_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("person.id"), nullable=True)
    )
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # draft | in_review | approved | changes_requested | rejected | deprecated
    state: str = Field(max_length=20)
    state_changed_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # The prompt's risk tier when the version was submitted: a later change of the prompt's
    # tier never lowers what this version needs (the stricter of the two applies).
    submitted_risk_tier: str | None = Field(default=None, max_length=16)


class PromptReview(SQLModel, table=True):
    __tablename__ = "prompt_review"
    # One decision per reviewer per version: the same person cannot approve twice.
    __table_args__ = (UniqueConstraint("version_id", "reviewer_ref", name="uq_prompt_review_reviewer"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("prompt_version.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    reviewer_ref: str = Field(max_length=64)
    reviewer_person_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("person.id"), nullable=True)
    )
    decision: str = Field(max_length=20)  # approve | request_changes | reject
    comment: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class PromptLabel(SQLModel, table=True):
    __tablename__ = "prompt_label"
    __table_args__ = (UniqueConstraint("prompt_id", "name", name="uq_prompt_label_name"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False))
    name: str = Field(max_length=32)  # production, staging or a custom name
    version_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt_version.id"), nullable=False))
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class PromptLabelMove(SQLModel, table=True):
    __tablename__ = "prompt_label_move"

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(
        sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    label: str = Field(max_length=32)
    from_version_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("prompt_version.id"), nullable=True)
    )
    to_version_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt_version.id"), nullable=False))
    actor_ref: str = Field(max_length=64)
    moved_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class ReviewEvidence(SQLModel, table=True):
    """Something a reviewer should see next to a version, e.g. an A/B experiment's result."""

    __tablename__ = "review_evidence"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("prompt_version.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    kind: str = Field(max_length=32)  # e.g. "experiment"
    reference_id: str = Field(max_length=80)
    summary: str = Field(sa_type=Text)
    attached_by: str = Field(max_length=64)
    attached_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
