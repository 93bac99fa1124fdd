"""Anomaly alerts over the hourly roll-ups: the alerts, their settings, mutes, webhooks and
the detection run's progress; and what the gateway records for the two detectors the
roll-ups cannot feed (the networks a key was used from, answers checked against their schema)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.models.types import UtcDateTime


class AnomalyAlert(SQLModel, table=True):
    """One incident of one series: opened when a detector fires, extended while it continues.

    `series` names what was watched ("key:12", "team:3", "prompt:faq"); `team_id` is 0 when
    the series belongs to no team. Amounts are the detector's own unit (micro-dollars,
    tokens, a rate in parts per million), said in words in `sentence`."""

    __tablename__ = "anomaly_alert"
    __table_args__ = (
        Index("ix_anomaly_alert_series", "detector", "series", "last_hour"),
        Index("ix_anomaly_alert_state", "state", "last_hour"),
    )

    id: int | None = Field(default=None, primary_key=True)
    detector: str = Field(max_length=40)
    series: str = Field(max_length=200)
    team_id: int = Field(default=0)
    first_hour: datetime = Field(sa_type=UtcDateTime)
    last_hour: datetime = Field(sa_type=UtcDateTime)
    hours: int = Field(default=1)
    observed: float = Field(default=0.0, sa_type=Float)
    usual_low: float = Field(default=0.0, sa_type=Float)
    usual_high: float = Field(default=0.0, sa_type=Float)
    peak: float = Field(default=0.0, sa_type=Float)
    sentence: str = Field(sa_type=Text)
    state: str = Field(default="open", max_length=16)  # open | acknowledged | resolved
    note: str = Field(default="", sa_type=Text)
    acknowledged_by: str = Field(default="", max_length=64)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    resolved_by: str = Field(default="", max_length=64)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class AnomalySensitivity(SQLModel, table=True):
    """How readily a detector fires, for one team or (team 0) for all: a multiplier of its
    thresholds; 1 is the default, 2 fires only on twice as large a deviation."""

    __tablename__ = "anomaly_sensitivity"

    detector: str = Field(max_length=40, primary_key=True)
    team_id: int = Field(default=0, primary_key=True)
    factor: float = Field(default=1.0, sa_type=Float)
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class AnomalyMute(SQLModel, table=True):
    """A series that raises no alert until `until`."""

    __tablename__ = "anomaly_mute"

    series: str = Field(max_length=200, primary_key=True)
    until: datetime = Field(sa_type=UtcDateTime)
    reason: str = Field(default="", sa_type=Text)
    muted_by: str = Field(default="", max_length=64)


class AnomalyRun(SQLModel, table=True):
    """The detection run's progress and lease: one row. `last_hour` is the newest hour
    detected; a runner holds the lease until `expires_at`."""

    __tablename__ = "anomaly_run"

    name: str = Field(max_length=40, primary_key=True)
    last_hour: datetime | None = Field(default=None, sa_type=UtcDateTime)
    holder: str = Field(default="", max_length=80)
    expires_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    runs: int = Field(default=0, sa_type=BigInteger)


class AlertWebhook(SQLModel, table=True):
    """Where alerts are sent: one URL per team (`scope` "team", `ref` its id) and per role
    (`scope` "role", `ref` the role's name)."""

    __tablename__ = "alert_webhook"

    scope: str = Field(max_length=8, primary_key=True)
    ref: str = Field(max_length=40, primary_key=True)
    url: str = Field(sa_type=Text)
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class WaitingNotice(SQLModel, table=True):
    """Something announced to the webhooks for waiting too long, so it is announced once:
    `kind` "review" (`ref` the prompt version's id) or "held" (the held request's id)."""

    __tablename__ = "waiting_notice"

    kind: str = Field(max_length=16, primary_key=True)
    ref: int = Field(primary_key=True)
    notified_at: datetime = Field(sa_type=UtcDateTime)


class KeyNetwork(SQLModel, table=True):
    """A network a team key was used from: IPv4 /24 or IPv6 /48, never the full address.

    Upserted by the fold of settled calls (core.budgets.key_networks) for calls that came
    over HTTP with a team key; read by the detector of keys used from a network they never
    were. Retention treats it as the call log: past its period the key is removed (`key_id`
    None, `network` ''), or the row deleted, as the call log's rule says."""

    __tablename__ = "key_network"
    __table_args__ = (
        UniqueConstraint("key_id", "network", name="uq_key_network"),
        Index("ix_key_network_first_seen", "first_seen"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key_id: int | None = Field(default=None)
    team_id: int = Field(default=0)
    network: str = Field(max_length=43)  # "203.0.113.0/24", "2001:db8:1::/48"
    first_seen: datetime = Field(sa_type=UtcDateTime)
    last_seen: datetime = Field(sa_type=UtcDateTime)
    calls: int = Field(default=0, sa_type=BigInteger)


class SchemaCheckRollup(SQLModel, table=True):
    """Answers checked against their prompt version's JSON schema, and those that failed it,
    per hour, team, prompt version and model (core.gateway.schema_checks)."""

    __tablename__ = "schema_check_rollup"
    __table_args__ = (
        UniqueConstraint("hour", "team_id", "prompt_name", "prompt_version", "model", name="uq_schema_check_rollup"),
        Index("ix_schema_check_rollup_prompt_hour", "prompt_name", "hour"),
    )

    id: int | None = Field(default=None, primary_key=True)
    hour: datetime = Field(sa_type=UtcDateTime)
    team_id: int = Field(default=0)
    prompt_name: str = Field(max_length=80)
    prompt_version: str = Field(default="", max_length=80)
    model: str = Field(default="", max_length=80)
    checked: int = Field(default=0, sa_type=BigInteger)
    failed: int = Field(default=0, sa_type=BigInteger)


class WebhookDelivery(SQLModel, table=True):
    """One webhook post as it ended, for one setting (`scope` "team" or "role", `ref` as in
    `alert_webhook`): what kind of notice (`kind`, and `about`: ids, never payload text),
    the URL masked, the attempts, and "delivered" or "failed" with the last HTTP status
    (`http_status`) or the exception's class (`error`). Written by the background sender after
    the last attempt; the newest few per setting are kept."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_target", "scope", "ref", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=8)
    ref: str = Field(max_length=40)
    url_masked: str = Field(max_length=300)
    kind: str = Field(max_length=40)
    about: str = Field(default="", max_length=200)
    attempts: int = Field(default=1)
    status: str = Field(max_length=16)  # delivered | failed
    http_status: int | None = Field(default=None)
    error: str = Field(default="", max_length=80)
    started_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime = Field(sa_type=UtcDateTime)
