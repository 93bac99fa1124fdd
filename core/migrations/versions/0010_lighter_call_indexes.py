"""lighter indexes on the per-call tables

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-25

Every gateway call writes a ledger row and may write a cache entry. The ledger's person
and prompt indexes become partial (rows without a person or prompt, the bulk of application
traffic, are left out of them), and the cache's own team index goes: the (team, hash)
unique constraint's index already serves every lookup by team.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def _partial(column: str) -> dict[str, sa.TextClause]:
    condition = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": condition, "postgresql_where": condition}


def upgrade() -> None:
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        for column in ("person_id", "prompt_id"):
            batch_op.drop_index(f"ix_usage_record_{column}")
            batch_op.create_index(f"ix_usage_record_{column}", [column], unique=False, **_partial(column))
    with op.batch_alter_table("gateway_cache_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_cache_entry_team_id")


def downgrade() -> None:
    with op.batch_alter_table("gateway_cache_entry", schema=None) as batch_op:
        batch_op.create_index("ix_gateway_cache_entry_team_id", ["team_id"], unique=False)
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        for column in ("person_id", "prompt_id"):
            batch_op.drop_index(f"ix_usage_record_{column}")
            batch_op.create_index(f"ix_usage_record_{column}", [column], unique=False)
