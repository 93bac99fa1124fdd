"""Reconciliation with the provider's bill, closed months and reopen requests.

Amounts are integer micro-dollars; days are UTC dates as ``YYYY-MM-DD`` (the provider's
buckets are UTC days) and months are budget-period keys (``YYYY-MM``, in the configured
time zone, the same months the Spend page shows).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Text
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime


class ReconciliationRun(SQLModel, table=True):
    """One comparison of a day of the ledger with the provider's usage and costs; the newest counts."""

    __tablename__ = "reconciliation_run"
    __table_args__ = (Index("ix_reconciliation_run_day", "day", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(max_length=10)
    # matched | differences | unreachable
    status: str = Field(max_length=20)
    message: str = Field(default="", sa_type=Text)
    quorum_micro: int = Field(default=0, sa_type=BigInteger)
    provider_micro: int = Field(default=0, sa_type=BigInteger)
    bypass_micro: int = Field(default=0, sa_type=BigInteger)
    bypass_tokens: int = Field(default=0, sa_type=BigInteger)
    actor: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)


class ReconciliationLine(SQLModel, table=True):
    """One (day, model, provider project and key) of a run: both sides and what explains the gap."""

    __tablename__ = "reconciliation_line"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(
        sa_column=Column(Integer, ForeignKey("reconciliation_run.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    model: str = Field(max_length=80)
    project_id: str = Field(default="", max_length=80)
    api_key_id: str = Field(default="", max_length=80)
    # match | in_flight | cached_pricing | price_book | bypass | unexplained
    kind: str = Field(max_length=20)
    quorum_input_tokens: int = Field(default=0, sa_type=BigInteger)
    quorum_cached_tokens: int = Field(default=0, sa_type=BigInteger)
    quorum_output_tokens: int = Field(default=0, sa_type=BigInteger)
    provider_input_tokens: int = Field(default=0, sa_type=BigInteger)
    provider_cached_tokens: int = Field(default=0, sa_type=BigInteger)
    provider_output_tokens: int = Field(default=0, sa_type=BigInteger)
    quorum_micro: int = Field(default=0, sa_type=BigInteger)
    provider_micro: int = Field(default=0, sa_type=BigInteger)
    explanation: str = Field(default="", sa_type=Text)


class FinanceLock(SQLModel, table=True):
    """A lease that lets one server at a time reconcile (cron on several servers)."""

    __tablename__ = "finance_lock"

    name: str = Field(primary_key=True, max_length=40)
    holder: str = Field(max_length=80)
    expires_at: datetime = Field(sa_type=UtcDateTime)


class ClosedMonth(SQLModel, table=True):
    """A month finance has closed for every team: its ledger, prices and reconciliation are frozen."""

    __tablename__ = "closed_month"

    month: str = Field(primary_key=True, max_length=7)
    start_at: datetime = Field(sa_type=UtcDateTime)
    end_at: datetime = Field(sa_type=UtcDateTime)
    closed_by: str = Field(max_length=64)
    closed_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # The team budgets as they stood at the close (JSON): a statement's "budget" column.
    budgets_json: str = Field(default="{}", sa_type=Text)


class ReopenRequest(SQLModel, table=True):
    """A request to reopen a closed month: finance asks with a reason, an admin (another person) approves."""

    __tablename__ = "reopen_request"

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, index=True)
    reason: str = Field(sa_type=Text)
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    # pending | approved | rejected
    status: str = Field(default="pending", max_length=12)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
