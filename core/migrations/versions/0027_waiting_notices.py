"""what the webhooks announced as waiting too long

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-27

A version waiting for review, or a held request waiting for a decision, longer than its
setting is announced to the team and role webhooks once; this table remembers which.
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "waiting_notice",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.Column("notified_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref"),
    )


def downgrade() -> None:
    op.drop_table("waiting_notice")
