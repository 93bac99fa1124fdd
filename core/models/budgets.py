"""Prices, budgets, reservations, the usage ledger and budget alerts.

Amounts are integer micro-dollars in BIGINT columns: a month of a large team's spend
passes 2^31 micro-dollars ($2,147) easily.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class PriceOverride(SQLModel, table=True):
    """An admin's price entry layered over data/pricing.yaml (same meaning as a file entry)."""

    __tablename__ = "price_override"
    __table_args__ = (UniqueConstraint("model", "effective_from", name="uq_price_override_model_from"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=80)
    effective_from: datetime = Field(sa_type=UtcDateTime)
    input_micro_per_1m: int = Field(sa_type=BigInteger)
    cached_input_micro_per_1m: int | None = Field(default=None, sa_type=BigInteger)
    output_micro_per_1m: int | None = Field(default=None, sa_type=BigInteger)
    source: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class TeamBudgetPolicy(SQLModel, table=True):
    """A team's spending policy: which models it may use and how a tight budget is handled."""

    __tablename__ = "team_budget_policy"

    team_id: int = Field(sa_column=Column(Integer, ForeignKey("team.id", ondelete="CASCADE"), primary_key=True))
    # Comma-separated model names; empty means every priced model.
    allowed_models: str = Field(default="", sa_type=Text)
    # When a call's worst case does not fit, admit it with max_tokens lowered to what is left.
    lower_max_tokens: bool = Field(default=False)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class Budget(SQLModel, table=True):
    __tablename__ = "budget"
    __table_args__ = (UniqueConstraint("scope_key", name="uq_budget_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=10)  # team | person | prompt
    # "team:3", "person:7", "prompt:12": one budget per thing it limits.
    scope_key: str = Field(max_length=40)
    team_id: int | None = Field(default=None, foreign_key="team.id", index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    # No foreign key: prompts live in the catalog, which may be on another schema revision.
    prompt_id: int | None = Field(default=None, index=True)
    cap_micro: int | None = Field(default=None, sa_type=BigInteger)
    cap_tokens: int | None = Field(default=None, sa_type=BigInteger)
    period: str = Field(default="month", max_length=10)  # month | week | day
    thresholds: str = Field(default="50,80,100", max_length=60)  # percent, ascending
    hard: bool = Field(default=True)
    max_request_micro: int | None = Field(default=None, sa_type=BigInteger)
    webhook_url: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class BudgetPeriod(SQLModel, table=True):
    """Spent and reserved amounts of one budget in one period: the row reservations update."""

    __tablename__ = "budget_period"

    budget_id: int = Field(sa_column=Column(Integer, ForeignKey("budget.id", ondelete="CASCADE"), primary_key=True))
    period_key: str = Field(max_length=10, primary_key=True)  # 2026-11, 2026-W48, 2026-11-30
    spent_micro: int = Field(default=0, sa_type=BigInteger)
    reserved_micro: int = Field(default=0, sa_type=BigInteger)
    spent_tokens: int = Field(default=0, sa_type=BigInteger)
    reserved_tokens: int = Field(default=0, sa_type=BigInteger)


class BudgetHold(SQLModel, table=True):
    """One reservation's share of one budget period, until it is settled, released or expires."""

    __tablename__ = "budget_hold"
    __table_args__ = (Index("ix_budget_hold_budget_expires", "budget_id", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    reservation_id: str = Field(max_length=36, index=True)
    budget_id: int = Field(sa_column=Column(Integer, ForeignKey("budget.id", ondelete="CASCADE"), nullable=False))
    period_key: str = Field(max_length=10)
    amount_micro: int = Field(sa_type=BigInteger)
    amount_tokens: int = Field(sa_type=BigInteger)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class UsageRecord(SQLModel, table=True):
    """The ledger: one row per model call, the source every spend report sums."""

    __tablename__ = "usage_record"
    __table_args__ = (
        Index("ix_usage_record_team_time", "team_id", "occurred_at"),
        Index("ix_usage_record_occurred_at", "occurred_at"),
        # Partial: a call by a team key has no person, a plain chat call no prompt, and an
        # index that skips those rows costs them nothing to write (lookups are by equality).
        Index(
            "ix_usage_record_person_id",
            "person_id",
            sqlite_where=text("person_id IS NOT NULL"),
            postgresql_where=text("person_id IS NOT NULL"),
        ),
        Index(
            "ix_usage_record_prompt_id",
            "prompt_id",
            sqlite_where=text("prompt_id IS NOT NULL"),
            postgresql_where=text("prompt_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(sa_type=UtcDateTime)  # when the call started (prices apply then)
    team_id: int = Field(foreign_key="team.id")
    person_id: int | None = Field(default=None)
    key_id: int | None = Field(default=None)
    prompt_id: int | None = Field(default=None)
    prompt_version_id: int | None = Field(default=None)
    model: str = Field(max_length=80)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    latency_ms: int = Field(default=0)
    status: str = Field(default="ok", max_length=20)
    cache_hit: bool = Field(default=False)
    request_id: str | None = Field(default=None, max_length=64, unique=True)


class BudgetAlert(SQLModel, table=True):
    """A budget crossed a threshold in a period: stored exactly once."""

    __tablename__ = "budget_alert"
    __table_args__ = (UniqueConstraint("budget_id", "period_key", "threshold_pct", name="uq_budget_alert_once"),)

    id: int | None = Field(default=None, primary_key=True)
    budget_id: int = Field(sa_column=Column(Integer, ForeignKey("budget.id", ondelete="CASCADE"), nullable=False))
    period_key: str = Field(max_length=10)
    threshold_pct: int
    spent_micro: int = Field(sa_type=BigInteger)
    spent_tokens: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # none (no webhook) | pending | delivered | failed
    webhook_status: str = Field(default="none", max_length=12)
    webhook_attempts: int = Field(default=0)
