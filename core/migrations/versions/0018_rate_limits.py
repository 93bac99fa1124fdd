"""rate-limit windows: requests and tokens admitted per key, team and person

Revision ID: 0018
Revises: 0016
Create Date: 2026-11-27

The limits themselves live in each team's stored gateway policy; this table holds what
was admitted in the current window, shared by every gateway process.
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_window",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("team_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subject_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("requests_limit", sa.BigInteger(), nullable=True),
        sa.Column("tokens_limit", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("scope", "team_id", "subject_id", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_window")
