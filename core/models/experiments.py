"""Experiment tables: test sets and their cases, experiment runs, live traffic splits, feedback.

A finished (or cancelled) run keeps its whole result as the JSON of
``core.experiments.results.run_to_json`` in one column: a run is written once, when it
ends, and always read whole (matrix, summaries, comparisons are computed from it), so
per-cell rows would only add joins. The counts and money a listing needs (status,
estimate, billed, cells) are columns of their own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class TestSet(SQLModel, table=True):
    __tablename__ = "testset"
    __test__ = False
    __table_args__ = (UniqueConstraint("prompt_id", "name", name="uq_testset_prompt_name"),)

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False))
    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id"), nullable=False, index=True))
    name: str = Field(max_length=64)
    description: str = Field(default="", sa_type=Text)
    pass_threshold: float = Field(default=1.0)
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class TestSetCase(SQLModel, table=True):
    __tablename__ = "testset_case"
    __test__ = False
    __table_args__ = (UniqueConstraint("testset_id", "case_key", name="uq_testset_case_key"),)

    id: int | None = Field(default=None, primary_key=True)
    testset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("testset.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    position: int
    case_key: str = Field(max_length=64)  # the case's slug id in files
    description: str = Field(default="", sa_type=Text)
    variables_json: str = Field(sa_type=Text)
    assertions_json: str = Field(sa_type=Text)
    pass_threshold: float | None = Field(default=None)
    # A case made from production (a held request, a reviewed answer, feedback): the call it
    # came from. Deleting that call's stored payload (retention, erasure) deletes the case.
    source_request_id: str | None = Field(
        default=None,
        sa_column=Column(
            String(40), ForeignKey("stored_payload.request_id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    source_json: str | None = Field(default=None, sa_type=Text)  # {"kind": ..., "ref": ...}


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"
    __table_args__ = (Index("ix_experiment_team_created", "team_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id"), nullable=False))
    prompt_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False))
    testset_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("testset.id", ondelete="SET NULL"), nullable=True)
    )
    testset_name: str = Field(max_length=64)
    # [{label, version_id, version_number, model, params}] as chosen
    variants_json: str = Field(sa_type=Text)
    repetitions: int = Field(default=1)
    judge_model: str | None = Field(default=None, max_length=80)
    status: str = Field(max_length=16)  # running | finished | cancelled | failed
    planned_cells: int = Field(default=0)
    finished_cells: int = Field(default=0)
    estimate_micro: int = Field(default=0, sa_type=BigInteger)
    billed_micro: int = Field(default=0, sa_type=BigInteger)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    error: str | None = Field(default=None, sa_type=Text)
    results_json: str | None = Field(default=None, sa_type=Text)  # run_to_json of the run


class TrafficSplit(SQLModel, table=True):
    """A live A/B: share ``percent_b`` of a prompt's traffic goes to version B, the rest to A."""

    __tablename__ = "traffic_split"

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(
        sa_column=Column(Integer, ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    version_a_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt_version.id"), nullable=False))
    version_b_id: int = Field(sa_column=Column(Integer, ForeignKey("prompt_version.id"), nullable=False))
    percent_b: int
    active: bool = Field(default=True)
    approved_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class RequestFeedback(SQLModel, table=True):
    """An application's rating of one gateway answer, by the request id it got back."""

    __tablename__ = "request_feedback"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=40, index=True)
    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id"), nullable=False))
    key_id: int | None = Field(default=None)
    score: float
    comment: str = Field(default="", sa_type=Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
