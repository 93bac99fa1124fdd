"""The gateway's tables: call log, stored payloads, response cache, team guardrail
policies and the queue of held requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core import clock
from core.models.types import UtcDateTime

# The condition of the partial index of rate-limited calls; a query must say it word for word
# (no bound parameter) for the databases to use the index.
RATE_LIMITED_SQL = "status = 'rate_limited'"


class GatewayCall(SQLModel, table=True):
    """One model call through the gateway, whatever its outcome (the observability source)."""

    __tablename__ = "gateway_call"
    __table_args__ = (
        Index("ix_gateway_call_team_time", "team_id", "created_at"),
        # Only the rate-limited calls (Observability counts the last day's): the other inserts
        # do not pay for it.
        Index(
            "ix_gateway_call_rate_limited",
            "created_at",
            sqlite_where=text(RATE_LIMITED_SQL),
            postgresql_where=text(RATE_LIMITED_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=40, unique=True)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime, index=True)
    team_id: int | None = Field(default=None)
    key_id: int | None = Field(default=None)
    actor: str = Field(max_length=64)
    endpoint: str = Field(max_length=32)  # chat | embeddings | responses | moderations | prompt
    model: str = Field(default="", max_length=80)
    prompt_name: str | None = Field(default=None, max_length=80)
    prompt_version: str | None = Field(default=None, max_length=80)
    # ok | blocked | held | budget_exceeded | rate_limited | not_allowed | upstream_error | invalid
    status: str = Field(max_length=24)
    http_status: int = Field(default=200)
    rule: str | None = Field(default=None, max_length=80)
    stream: bool = Field(default=False)
    cache_hit: bool = Field(default=False)
    simulated: bool = Field(default=False)
    attempts: int = Field(default=0)
    input_tokens: int = Field(default=0)
    output_tokens: int = Field(default=0)
    # True when the usage is partly estimated (a stream the client left early).
    usage_estimated: bool = Field(default=False)
    cost_micro: int = Field(default=0)
    latency_ms: float = Field(default=0.0)
    upstream_ms: float = Field(default=0.0)
    # The Responses API answer's id (resp_...): GET /v1/responses/{id} serves it to this team only.
    response_id: str | None = Field(default=None, max_length=80, index=True)


class StoredPayload(SQLModel, table=True):
    """What was sent and answered, after redaction (a secret is never stored)."""

    __tablename__ = "stored_payload"

    request_id: str = Field(max_length=40, primary_key=True)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime, index=True)
    team_id: int | None = Field(default=None)
    request_json: str | None = Field(default=None, sa_type=Text)
    response_json: str | None = Field(default=None, sa_type=Text)


class CacheEntry(SQLModel, table=True):
    """A cached answer, per team: the key is a hash of the canonical request."""

    __tablename__ = "gateway_cache_entry"
    __table_args__ = (UniqueConstraint("team_id", "request_hash", name="uq_gateway_cache_team_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int  # looked up with the hash: the unique constraint's index serves it
    request_hash: str = Field(max_length=64)
    model: str = Field(max_length=80)
    response_json: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime, index=True)
    hits: int = Field(default=0)


class TeamGuardrailPolicy(SQLModel, table=True):
    """A team's guardrail settings (GuardrailPolicy.from_dict form); absent means the defaults."""

    __tablename__ = "team_guardrail_policy"

    team_id: int = Field(primary_key=True)
    policy_json: str = Field(sa_type=Text)
    updated_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    updated_by: str = Field(max_length=64)


class HeldRequest(SQLModel, table=True):
    """A request held by moderation, or an answer flagged by the output scan, awaiting a lead."""

    __tablename__ = "held_request"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)  # "held_..." what the caller polls
    request_id: str = Field(max_length=40, index=True)
    team_id: int = Field(index=True)
    kind: str = Field(max_length=16)  # input | output
    rule: str = Field(max_length=80)
    # Masked findings only (kinds, counts, masked values).
    findings_json: str = Field(default="[]", sa_type=Text)
    status: str = Field(default="pending", max_length=16, index=True)  # pending | released | denied
    created_at: datetime = Field(default_factory=clock.now, sa_type=UtcDateTime)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    comment: str = Field(default="", max_length=2000)
    # The (redacted) answer to hand over on release; for input holds it is produced on release.
    response_json: str | None = Field(default=None, sa_type=Text)


class RateLimitWindow(SQLModel, table=True):
    """The requests and tokens admitted in one rate-limit window for one key, team or person.

    Every process admits through a conditional upsert on this row, so a limit holds across
    all of them (core.gateway.rate_limits)."""

    __tablename__ = "rate_limit_window"

    scope: str = Field(max_length=8, primary_key=True)  # key | team | person
    # The team whose policy sets the limit: a person's calls count per team they act for.
    team_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    subject_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})  # the team's own id for "team"
    window_start: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    requests: int = Field(default=0)
    tokens: int = Field(default=0, sa_type=BigInteger)
    # The limits the last admission checked against (None: no limit on that measure).
    requests_limit: int | None = Field(default=None, sa_type=BigInteger)
    tokens_limit: int | None = Field(default=None, sa_type=BigInteger)
