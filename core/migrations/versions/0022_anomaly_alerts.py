"""anomaly alerts over the hourly roll-ups

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-27

Alerts as work items (open, acknowledged, resolved), each detector's sensitivity per team,
muted series, the detection run's progress and lease, and the webhook URL per team and role.
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anomaly_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=40), nullable=False),
        sa.Column("series", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("first_hour", UtcDateTime(), nullable=False),
        sa.Column("last_hour", UtcDateTime(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("usual_low", sa.Float(), nullable=False),
        sa.Column("usual_high", sa.Float(), nullable=False),
        sa.Column("peak", sa.Float(), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_anomaly_alert_series", "anomaly_alert", ["detector", "series", "last_hour"], unique=False)
    op.create_index("ix_anomaly_alert_state", "anomaly_alert", ["state", "last_hour"], unique=False)
    op.create_table(
        "anomaly_sensitivity",
        sa.Column("detector", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("factor", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("detector", "team_id"),
    )
    op.create_table(
        "anomaly_mute",
        sa.Column("series", sa.String(length=200), nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("muted_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("series"),
    )
    op.create_table(
        "anomaly_run",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_hour", UtcDateTime(), nullable=True),
        sa.Column("holder", sa.String(length=80), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "alert_webhook",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "ref"),
    )


def downgrade() -> None:
    op.drop_table("alert_webhook")
    op.drop_table("anomaly_run")
    op.drop_table("anomaly_mute")
    op.drop_table("anomaly_sensitivity")
    op.drop_index("ix_anomaly_alert_state", table_name="anomaly_alert")
    op.drop_index("ix_anomaly_alert_series", table_name="anomaly_alert")
    op.drop_table("anomaly_alert")
