"""daily latency histograms packed into the daily roll-up rows

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-27

A 90-day Observability view read one row per day, group and 5 % latency bucket (tens of
thousands); with each day's histogram packed into its daily row
(core/budgets/latency_histogram.py) it reads one per day and group. The upgrade packs the
rows of call_latency_daily_rollup into the new column, which is what `quorum rollups
rebuild` would write, then drops that table; the downgrade unpacks them back.
"""

from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

_KEYS = ("day", "team_id", "prompt_name", "model")
_DAILY = sa.table(
    "call_daily_rollup",
    sa.column("day", UtcDateTime()),
    sa.column("team_id", sa.Integer()),
    sa.column("prompt_name", sa.String()),
    sa.column("model", sa.String()),
    sa.column("latency_histogram", sa.LargeBinary()),
)
_BUCKETS = sa.table(
    "call_latency_daily_rollup",
    sa.column("day", UtcDateTime()),
    sa.column("team_id", sa.Integer()),
    sa.column("prompt_name", sa.String()),
    sa.column("model", sa.String()),
    sa.column("bucket", sa.Integer()),
    sa.column("calls", sa.BigInteger()),
)
_BATCH = 5000
# The packed form (core/budgets/latency_histogram.py), frozen here as this revision wrote it:
# little-endian int64s, the lowest bucket held, then every bucket's count from it up.
_WORD = np.dtype("<i8")


def _pack(counts: dict[int, int]) -> bytes:
    first, last = min(counts), max(counts)
    words = np.zeros(last - first + 2, dtype=_WORD)
    words[0] = first
    for bucket, n in counts.items():
        words[bucket - first + 1] = n
    return words.tobytes()


def _unpack(packed: bytes) -> dict[int, int]:
    if not packed:
        return {}
    words = np.frombuffer(packed, dtype=_WORD)
    return {int(words[0]) + i: int(n) for i, n in enumerate(words[1:]) if n}


def upgrade() -> None:
    with op.batch_alter_table("call_daily_rollup") as batch:
        batch.add_column(sa.Column("latency_histogram", sa.LargeBinary(), nullable=False, server_default=sa.text("''")))
    with op.batch_alter_table("call_daily_rollup") as batch:
        batch.alter_column("latency_histogram", server_default=None)
    bind = op.get_bind()
    rows = bind.execute(sa.select(_BUCKETS).order_by(*(_BUCKETS.c[k] for k in _KEYS), _BUCKETS.c.bucket))
    update = (
        sa.update(_DAILY)
        .where(*(_DAILY.c[k] == sa.bindparam(f"k_{k}") for k in _KEYS))
        .values(latency_histogram=sa.bindparam("packed"))
    )
    pending: list[dict[str, Any]] = []
    group: tuple[Any, ...] | None = None
    histogram: dict[int, int] = {}

    def close() -> None:
        if group is not None and histogram:
            pending.append(
                {
                    **{f"k_{k}": v for k, v in zip(_KEYS, group, strict=True)},
                    "packed": _pack(histogram),
                }
            )

    for day, team_id, prompt_name, model, bucket, calls in rows.all():
        key = (day, team_id, prompt_name, model)
        if key != group:
            close()
            group, histogram = key, {}
            if len(pending) >= _BATCH:
                bind.execute(update, pending)
                pending.clear()
        if calls:
            histogram[bucket] = histogram.get(bucket, 0) + calls
    close()
    if pending:
        bind.execute(update, pending)
    op.drop_table("call_latency_daily_rollup")


def downgrade() -> None:
    op.create_table(
        "call_latency_daily_rollup",
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "team_id", "prompt_name", "model", "bucket"),
    )
    bind = op.get_bind()
    unpacked = [
        {"day": day, "team_id": team_id, "prompt_name": prompt, "model": model, "bucket": bucket, "calls": calls}
        for day, team_id, prompt, model, packed in bind.execute(sa.select(_DAILY)).all()
        for bucket, calls in _unpack(packed).items()
    ]
    if unpacked:
        bind.execute(sa.insert(_BUCKETS), unpacked)
    with op.batch_alter_table("call_daily_rollup") as batch:
        batch.drop_column("latency_histogram")
