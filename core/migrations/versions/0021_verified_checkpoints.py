"""audit checkpoints say whether a clean verification signed them

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-27

Incremental verification starts after the newest checkpoint a clean verification signed;
periodic and on-demand checkpoints vouch only for the head, not for the events before it.
Existing checkpoints were not marked, so the first incremental run after the upgrade walks
the whole chain.
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.drop_column("verified")
