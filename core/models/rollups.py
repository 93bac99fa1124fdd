"""Hourly roll-ups of the usage ledger and the gateway call log.

Derived data: `quorum rollups rebuild` recomputes them exactly from the two sources, which
stay the truth. Every dimension is NOT NULL (0 or '' stands for "none") so that a group
has exactly one row and an upsert's ON CONFLICT finds it (NULLs never conflict).
Hours are UTC instants at the start of the hour.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, LargeBinary
from sqlmodel import Field, SQLModel

from core.models.types import UtcDateTime


class UsageRollup(SQLModel, table=True):
    """The ledger (usage_record) summed per hour of `occurred_at`, team, person, key, prompt and model."""

    __tablename__ = "usage_rollup"
    __table_args__ = (Index("ix_usage_rollup_team_hour", "team_id", "hour"),)

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    team_id: int = Field(primary_key=True)
    person_id: int = Field(default=0, primary_key=True)
    key_id: int = Field(default=0, primary_key=True)
    prompt_id: int = Field(default=0, primary_key=True)
    model: str = Field(max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    cached_input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    cache_hits: int = Field(default=0, sa_type=BigInteger)


class CallRollup(SQLModel, table=True):
    """The call log (gateway_call) counted per hour of `created_at`, team, key, actor, prompt version and model."""

    __tablename__ = "call_rollup"
    # Live A/B reads one prompt's hours since its split began.
    __table_args__ = (Index("ix_call_rollup_prompt_hour", "prompt_name", "hour"),)

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    team_id: int = Field(default=0, primary_key=True)
    key_id: int = Field(default=0, primary_key=True)
    actor: str = Field(default="", max_length=64, primary_key=True)
    prompt_name: str = Field(default="", max_length=80, primary_key=True)
    prompt_version: str = Field(default="", max_length=80, primary_key=True)
    model: str = Field(default="", max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    ok: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)  # upstream failures (HTTP 5xx)
    rejected_429: int = Field(default=0, sa_type=BigInteger)
    blocked: int = Field(default=0, sa_type=BigInteger)
    held: int = Field(default=0, sa_type=BigInteger)
    cache_hits: int = Field(default=0, sa_type=BigInteger)
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    ok_latency_ms: float = Field(default=0.0, sa_type=Float)  # sum over answered calls, for the mean


class CallLatencyRollup(SQLModel, table=True):
    """Answered calls per hour, team, prompt version, model and latency bucket (5 % wide):
    the histogram p50 and p95 are read from."""

    __tablename__ = "call_latency_rollup"
    __table_args__ = (Index("ix_call_latency_rollup_prompt_hour", "prompt_name", "hour"),)

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    team_id: int = Field(default=0, primary_key=True)
    prompt_name: str = Field(default="", max_length=80, primary_key=True)
    prompt_version: str = Field(default="", max_length=80, primary_key=True)
    model: str = Field(default="", max_length=80, primary_key=True)
    bucket: int = Field(primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)


class CallHourlyRollup(SQLModel, table=True):
    """The call log counted per UTC hour of `created_at`, team, prompt and model, each row's
    answered calls' latency histogram packed into it: what Observability's per-hour views
    read (call_rollup's hours also keep the key, the caller and the prompt version, so at a
    few calls an hour they hold about a row per call, and a row per latency bucket besides)."""

    __tablename__ = "call_hourly_rollup"

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    team_id: int = Field(default=0, primary_key=True)
    prompt_name: str = Field(default="", max_length=80, primary_key=True)
    model: str = Field(default="", max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    ok: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)
    rejected_429: int = Field(default=0, sa_type=BigInteger)
    blocked: int = Field(default=0, sa_type=BigInteger)
    held: int = Field(default=0, sa_type=BigInteger)
    cache_hits: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    latency_histogram: bytes = Field(default=b"", sa_type=LargeBinary)


class CallSixHourRollup(SQLModel, table=True):
    """The call log counted per six UTC hours (00, 06, 12 and 18: `hour` is the first),
    team, prompt and model, with the packed latency histogram: what a per-hour view over
    weeks reads when it shows a point per 6 or 12 hours. At a million calls a year, 90 days
    hold about 72,000 hourly rows and 17,500 of these; reading a row costs a view a few
    microseconds however few points it draws."""

    __tablename__ = "call_six_hour_rollup"

    hour: datetime = Field(sa_type=UtcDateTime, primary_key=True)
    team_id: int = Field(default=0, primary_key=True)
    prompt_name: str = Field(default="", max_length=80, primary_key=True)
    model: str = Field(default="", max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    ok: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)
    rejected_429: int = Field(default=0, sa_type=BigInteger)
    blocked: int = Field(default=0, sa_type=BigInteger)
    held: int = Field(default=0, sa_type=BigInteger)
    cache_hits: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    latency_histogram: bytes = Field(default=b"", sa_type=LargeBinary)


class CallDailyRollup(SQLModel, table=True):
    """The call log counted per UTC day of `created_at`, team, prompt and model: the
    dimensions Observability groups and filters by, so a 90-day view reads a few thousand
    rows rather than an hour's row per key, person and version. The answered calls' latency
    histogram (the hourly one's buckets) is packed into the row (budgets/latency_histogram.py),
    so a view reads one row per day and group rather than one per bucket too."""

    __tablename__ = "call_daily_rollup"

    day: datetime = Field(sa_type=UtcDateTime, primary_key=True)  # midnight UTC
    team_id: int = Field(default=0, primary_key=True)
    prompt_name: str = Field(default="", max_length=80, primary_key=True)
    model: str = Field(default="", max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    ok: int = Field(default=0, sa_type=BigInteger)
    errors: int = Field(default=0, sa_type=BigInteger)
    rejected_429: int = Field(default=0, sa_type=BigInteger)
    blocked: int = Field(default=0, sa_type=BigInteger)
    held: int = Field(default=0, sa_type=BigInteger)
    cache_hits: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    latency_histogram: bytes = Field(default=b"", sa_type=LargeBinary)


class CallVersionDailyRollup(SQLModel, table=True):
    """The call log counted per UTC day of `created_at`, prompt and prompt version (as the call
    log names it), with the answered calls' packed latency histogram: what Live A/B reads for
    a split's whole days, a row per version and day however old the split. Only calls that
    name a prompt have rows, so the settle of the others writes nothing here."""

    __tablename__ = "call_version_daily_rollup"
    # Live A/B reads one prompt's days since its split began.
    __table_args__ = (Index("ix_call_version_daily_rollup_prompt_day", "prompt_name", "day"),)

    day: datetime = Field(sa_type=UtcDateTime, primary_key=True)  # midnight UTC
    prompt_name: str = Field(max_length=80, primary_key=True)
    prompt_version: str = Field(default="", max_length=80, primary_key=True)
    calls: int = Field(default=0, sa_type=BigInteger)
    ok: int = Field(default=0, sa_type=BigInteger)
    cost_micro: int = Field(default=0, sa_type=BigInteger)
    ok_latency_ms: float = Field(default=0.0, sa_type=Float)  # sum over answered calls, for the mean
    latency_histogram: bytes = Field(default=b"", sa_type=LargeBinary)


class RollupPending(SQLModel, table=True):
    """A settled gateway call whose call-log row and ledger row are not yet in the roll-ups.

    The settle writes one per call (same transaction as the call's rows); a fold
    (core/budgets/pending_rollups.py) adds the call to every roll-up and deletes this row in
    one transaction. So a call is in the roll-ups exactly when it has no row here."""

    __tablename__ = "rollup_pending"

    request_id: str = Field(max_length=64, primary_key=True)
    # The network prefix a team key's call came from (core.budgets.key_networks), else None.
    network: str | None = Field(default=None, max_length=64)
