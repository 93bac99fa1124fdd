"""the risk tier a prompt version was submitted under

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-27

A prompt's risk tier can change while one of its versions is in review. The tier at
submission is kept with the version, and approval needs what the stricter of that tier
and the current one requires. Versions submitted before this column existed have none,
and are held to their prompt's current tier, as before.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prompt_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submitted_risk_tier', sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prompt_version', schema=None) as batch_op:
        batch_op.drop_column('submitted_risk_tier')
