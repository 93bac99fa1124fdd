"""gateway

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25 17:22:10.246044
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import core.models.types

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_cache_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team_id", "request_hash", name="uq_gateway_cache_team_hash"),
    )
    with op.batch_alter_table("gateway_cache_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_cache_entry_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_cache_entry_team_id"), ["team_id"], unique=False)

    op.create_table(
        "gateway_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("prompt_name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("prompt_version", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_micro", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("upstream_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("gateway_call", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_call_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_gateway_call_team_time", ["team_id", "created_at"], unique=False)

    op.create_table(
        "held_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("findings_json", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("decided_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    with op.batch_alter_table("held_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_held_request_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_held_request_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_held_request_team_id"), ["team_id"], unique=False)

    op.create_table(
        "stored_payload",
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("request_json", sa.Text(), nullable=True),
        sa.Column("response_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("stored_payload", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stored_payload_created_at"), ["created_at"], unique=False)

    op.create_table(
        "team_guardrail_policy",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("policy_json", sa.Text(), nullable=False),
        sa.Column("updated_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("grace_until", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.Column("allowed_cidrs", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_key_hash"), ["key_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_api_key_team_id"), ["team_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_team_id"))
        batch_op.drop_index(batch_op.f("ix_api_key_key_hash"))

    op.drop_table("api_key")
    op.drop_table("team_guardrail_policy")
    with op.batch_alter_table("stored_payload", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stored_payload_created_at"))

    op.drop_table("stored_payload")
    with op.batch_alter_table("held_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_held_request_team_id"))
        batch_op.drop_index(batch_op.f("ix_held_request_status"))
        batch_op.drop_index(batch_op.f("ix_held_request_request_id"))

    op.drop_table("held_request")
    with op.batch_alter_table("gateway_call", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_call_team_time")
        batch_op.drop_index(batch_op.f("ix_gateway_call_created_at"))

    op.drop_table("gateway_call")
    with op.batch_alter_table("gateway_cache_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_cache_entry_team_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_cache_entry_expires_at"))

    op.drop_table("gateway_cache_entry")
