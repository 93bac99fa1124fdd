"""gateway calls remember the id of the Responses API answer they produced

Revision ID: 0016
Revises: 0012
Create Date: 2026-11-27

`GET /v1/responses/{id}` reads an answer the provider stored; the gateway serves it only
to the team whose call produced it, which it knows from this column.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_id", sa.String(length=80), nullable=True))
        batch_op.create_index("ix_gateway_call_response_id", ["response_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_call", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_call_response_id")
        batch_op.drop_column("response_id")
