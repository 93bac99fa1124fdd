"""the risk tier a prompt version was submitted under

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-27

A prompt's risk tier can change while one of its versions is in review. The tier at
submission is kept with the version, and approval needs what the stricter of that tier
and the current one requires. Versions in review when this runs take their prompt's tier
now, so lowering it afterwards cannot lower what they need.
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prompt_version", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("submitted_risk_tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
    op.execute(
        "UPDATE prompt_version SET submitted_risk_tier = "
        "(SELECT p.risk_tier FROM prompt p WHERE p.id = prompt_version.prompt_id) WHERE state = 'in_review'"
    )


def downgrade() -> None:
    with op.batch_alter_table("prompt_version", schema=None) as batch_op:
        batch_op.drop_column("submitted_risk_tier")
