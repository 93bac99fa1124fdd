"""settled calls waiting to be added to the roll-ups

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-28

The settle updated every roll-up (hourly, six-hour, daily, per version, usage) and the key's
network row for every batch of calls: rows that every batch of a team updates, so that on
PostgreSQL two gateway processes' batches took turns on them. The settle now writes one row
here per call, in the call's own transaction, and a fold adds many calls to the roll-ups at
once. The table starts empty: every call already settled is in the roll-ups.
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_pending",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )


def downgrade() -> None:
    # Calls still waiting here are then in no roll-up: the code of the revision before
    # counts them with `quorum rollups rebuild`, which reads every source row.
    op.drop_table("rollup_pending")
