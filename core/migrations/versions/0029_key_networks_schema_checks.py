"""the networks each key was used from, and answers checked against their JSON schema

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-27

Two small tables the gateway's write-back keeps for anomaly detection: a key used from a
network it never was (IPv4 /24, IPv6 /48 prefixes only), and the JSON-schema failure rate
per prompt version and model by hour.
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_network",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=43), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id", "network", name="uq_key_network"),
    )
    op.create_index("ix_key_network_first_seen", "key_network", ["first_seen"])
    op.create_table(
        "schema_check_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("prompt_version", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hour", "team_id", "prompt_name", "prompt_version", "model", name="uq_schema_check_rollup"),
    )
    op.create_index("ix_schema_check_rollup_prompt_hour", "schema_check_rollup", ["prompt_name", "hour"])


def downgrade() -> None:
    op.drop_index("ix_schema_check_rollup_prompt_hour", table_name="schema_check_rollup")
    op.drop_table("schema_check_rollup")
    op.drop_index("ix_key_network_first_seen", table_name="key_network")
    op.drop_table("key_network")
