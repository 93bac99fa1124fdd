"""Retention's tables: rule overrides, payload storage per team, legal holds, enforcement
runs (with their resumable progress), the run lock, and data-subject requests.

None of them holds a name or an e-mail: people appear as person ids or actor refs, end
users as a hash of their id, so an erasure never has to reach in here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class RetentionRule(SQLModel, table=True):
    """A governance lead's rule for one retention class: the default (team_id NULL) or one team's."""

    __tablename__ = "retention_rule"
    __table_args__ = (UniqueConstraint("class_key", "team_id", name="uq_retention_rule_class_team"),)

    id: int | None = Field(default=None, primary_key=True)
    class_key: str = Field(max_length=40)
    team_id: int | None = Field(default=None, index=True)
    period: str = Field(max_length=20)  # "2y", "18m", "90d", "1y6m"
    action: str = Field(max_length=12)  # delete | anonymize
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class TeamPayloadPolicy(SQLModel, table=True):
    """What a team's gateway calls store of their request and response text: full, redacted or none."""

    __tablename__ = "team_payload_policy"

    team_id: int = Field(primary_key=True)
    mode: str = Field(max_length=12)
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class LegalHold(SQLModel, table=True):
    """Records matching every given condition (team, person, prompt, time range) are kept while active."""

    __tablename__ = "legal_hold"

    id: int | None = Field(default=None, primary_key=True)
    case_name: str = Field(max_length=120)
    owner_person_id: int = Field()
    team_id: int | None = Field(default=None)
    person_id: int | None = Field(default=None)
    prompt_id: int | None = Field(default=None)
    starts_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    released_by: str | None = Field(default=None, max_length=64)
    released_at: datetime | None = Field(default=None, sa_type=UtcDateTime, index=True)


class RetentionRun(SQLModel, table=True):
    """One enforcement run; `progress_json` is committed with each batch, so a crashed run resumes exactly."""

    __tablename__ = "retention_run"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # The "now" every cutoff is computed from; a resumed run keeps it.
    as_of: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    status: str = Field(default="running", max_length=12, index=True)  # running | done | failed
    actor: str = Field(max_length=64)
    batches: int = Field(default=0)
    resumed: int = Field(default=0)
    progress_json: str = Field(default="{}", sa_type=Text)


class RetentionLock(SQLModel, table=True):
    """A lease: whoever holds the row (until `expires_at`) is the one enforcement running."""

    __tablename__ = "retention_lock"

    name: str = Field(max_length=40, primary_key=True)
    holder: str = Field(max_length=80)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class SubjectRequest(SQLModel, table=True):
    """A data-subject request answered: access (export) or erasure. No personal data kept."""

    __tablename__ = "subject_request"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=12)  # access | erasure
    subject_ref: str = Field(max_length=80)  # person:12 | end_user:<sha256 prefix>
    actor: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    summary_json: str = Field(default="{}", sa_type=Text)
