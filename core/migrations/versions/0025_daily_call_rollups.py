"""daily roll-ups of the gateway call log, for Observability's long views

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-27

Observability groups by team, prompt and model only; the hourly roll-ups also keep the key,
the actor and the prompt version, so at a few calls an hour they hold nearly a row per call
and a 90-day view read hundreds of thousands of them. These two tables hold a row per UTC
day and (team, prompt, model). The upgrade fills them from the hourly roll-ups, which is
what `quorum rollups rebuild` would write (it is quick: the hourly roll-ups are already
summed).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_COUNTS = ("calls", "ok", "errors", "rejected_429", "blocked", "held", "cache_hits", "cost_micro")


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _keys() -> list[sa.Column[Any]]:
    return [
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "call_daily_rollup",
        *_keys(),
        *(_count(name) for name in _COUNTS),
        sa.PrimaryKeyConstraint("day", "team_id", "prompt_name", "model"),
    )
    op.create_table(
        "call_latency_daily_rollup",
        *_keys(),
        sa.Column("bucket", sa.Integer(), nullable=False),
        _count("calls"),
        sa.PrimaryKeyConstraint("day", "team_id", "prompt_name", "model", "bucket"),
    )
    if op.get_bind().dialect.name == "postgresql":
        day = "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # SQLite keeps UTC as text, "YYYY-MM-DD HH:MM:SS.ffffff"
        day = "substr(hour, 1, 10) || ' 00:00:00.000000'"
    sums = ", ".join(f"SUM({name})" for name in _COUNTS)
    op.execute(
        f"INSERT INTO call_daily_rollup (day, team_id, prompt_name, model, {', '.join(_COUNTS)}) "
        f"SELECT {day}, team_id, prompt_name, model, {sums} FROM call_rollup GROUP BY 1, 2, 3, 4"
    )
    op.execute(
        "INSERT INTO call_latency_daily_rollup (day, team_id, prompt_name, model, bucket, calls) "
        f"SELECT {day}, team_id, prompt_name, model, bucket, SUM(calls) FROM call_latency_rollup "
        "GROUP BY 1, 2, 3, 4, 5"
    )


def downgrade() -> None:
    op.drop_table("call_latency_daily_rollup")
    op.drop_table("call_daily_rollup")
