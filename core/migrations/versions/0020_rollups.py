"""hourly roll-ups of the usage ledger and the gateway call log

Revision ID: 0020
Revises: 0018
Create Date: 2026-11-27

Spend, Observability, Home and Live A/B read these instead of scanning a year of rows.
They start empty here: `quorum rollups rebuild` fills them from the ledger and the call
log (the upgrade does not, so that it stays quick on a large database).
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        *(
            _count(name)
            for name in (
                "calls",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "cost_micro",
                "cache_hits",
            )
        ),
        sa.PrimaryKeyConstraint("hour", "team_id", "person_id", "key_id", "prompt_id", "model"),
    )
    op.create_index("ix_usage_rollup_team_hour", "usage_rollup", ["team_id", "hour"], unique=False)
    op.create_table(
        "call_rollup",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("prompt_version", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        *(
            _count(name)
            for name in (
                "calls",
                "ok",
                "errors",
                "rejected_429",
                "blocked",
                "held",
                "cache_hits",
                "input_tokens",
                "output_tokens",
                "cost_micro",
            )
        ),
        sa.Column("ok_latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "team_id", "key_id", "actor", "prompt_name", "prompt_version", "model"),
    )
    op.create_index("ix_call_rollup_prompt_hour", "call_rollup", ["prompt_name", "hour"], unique=False)
    op.create_table(
        "call_latency_rollup",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("prompt_version", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        _count("calls"),
        sa.PrimaryKeyConstraint("hour", "team_id", "prompt_name", "prompt_version", "model", "bucket"),
    )
    op.create_index("ix_call_latency_rollup_prompt_hour", "call_latency_rollup", ["prompt_name", "hour"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_call_latency_rollup_prompt_hour", table_name="call_latency_rollup")
    op.drop_table("call_latency_rollup")
    op.drop_index("ix_call_rollup_prompt_hour", table_name="call_rollup")
    op.drop_table("call_rollup")
    op.drop_index("ix_usage_rollup_team_hour", table_name="usage_rollup")
    op.drop_table("usage_rollup")
