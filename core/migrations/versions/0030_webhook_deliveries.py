"""how each webhook post ended

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-27

One row per post to a team's or a role's webhook, written by the background sender after
its last attempt: the kind of notice, the URL masked, the attempts, delivered or failed
with the last HTTP status or the exception's class. The newest rows per setting are kept.
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("url_masked", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("about", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=80), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_delivery_target", "webhook_delivery", ["scope", "ref", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_target", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
