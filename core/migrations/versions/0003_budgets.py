"""budgets

Revision ID: 0003
Revises: 0005
Create Date: 2026-11-25 17:21:34.010674
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import core.models.types

revision = "0003"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "price_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("effective_from", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("input_micro_per_1m", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_micro_per_1m", sa.BigInteger(), nullable=True),
        sa.Column("output_micro_per_1m", sa.BigInteger(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "effective_from", name="uq_price_override_model_from"),
    )
    op.create_table(
        "budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("scope_key", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("cap_micro", sa.BigInteger(), nullable=True),
        sa.Column("cap_tokens", sa.BigInteger(), nullable=True),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("thresholds", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("max_request_micro", sa.BigInteger(), nullable=True),
        sa.Column("webhook_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope_key", name="uq_budget_scope_key"),
    )
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_budget_prompt_id"), ["prompt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_budget_team_id"), ["team_id"], unique=False)

    op.create_table(
        "team_budget_policy",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("allowed_models", sa.Text(), nullable=False),
        sa.Column("lower_max_tokens", sa.Boolean(), nullable=False),
        sa.Column("updated_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["team.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "usage_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("prompt_version_id", sa.Integer(), nullable=True),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micro", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.create_index("ix_usage_record_occurred_at", ["occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_record_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_record_prompt_id"), ["prompt_id"], unique=False)
        batch_op.create_index("ix_usage_record_team_time", ["team_id", "occurred_at"], unique=False)

    op.create_table(
        "budget_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("threshold_pct", sa.Integer(), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("webhook_status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("budget_id", "period_key", "threshold_pct", name="uq_budget_alert_once"),
    )
    op.create_table(
        "budget_hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reservation_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("amount_tokens", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("budget_hold", schema=None) as batch_op:
        batch_op.create_index("ix_budget_hold_budget_expires", ["budget_id", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_budget_hold_reservation_id"), ["reservation_id"], unique=False)

    op.create_table(
        "budget_period",
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("spent_micro", sa.BigInteger(), nullable=False),
        sa.Column("reserved_micro", sa.BigInteger(), nullable=False),
        sa.Column("spent_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["budget_id"], ["budget.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("budget_id", "period_key"),
    )


def downgrade() -> None:
    op.drop_table("budget_period")
    with op.batch_alter_table("budget_hold", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_hold_reservation_id"))
        batch_op.drop_index("ix_budget_hold_budget_expires")

    op.drop_table("budget_hold")
    op.drop_table("budget_alert")
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_record_team_time")
        batch_op.drop_index(batch_op.f("ix_usage_record_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_usage_record_person_id"))
        batch_op.drop_index("ix_usage_record_occurred_at")

    op.drop_table("usage_record")
    op.drop_table("team_budget_policy")
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_team_id"))
        batch_op.drop_index(batch_op.f("ix_budget_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_budget_person_id"))

    op.drop_table("budget")
    op.drop_table("price_override")
