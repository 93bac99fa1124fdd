"""six-hour roll-ups of the gateway call log, and an index of rate-limited calls

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28

A per-hour Observability view over weeks draws a point per 6 or 12 hours, but read every
hourly roll-up row of the window to merge them: at a million calls a year, 72,000 rows for
90 days, too many to read in a fraction of a second. This table holds a row per six UTC
hours (from 00, 06, 12 and 18) and (team, prompt, model), the answered calls' latency
histogram packed into it; the upgrade fills it from the hourly rows, a month at a time,
which is what `quorum rollups rebuild` would write.

Observability's rate-limit section counts the last day's rate-limited calls; without an
index on them SQLite walked the whole call log. The index is partial (only rate-limited
calls, a small share), so the gateway's other inserts do not pay for it.
"""

from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

_COUNTS = ("calls", "ok", "errors", "rejected_429", "blocked", "held", "cache_hits", "cost_micro")
_GROUP = ("hour", "team_id", "prompt_name", "model")
_STEP = timedelta(days=31)
_RATE_LIMITED = "status = 'rate_limited'"


def _table(name: str) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("hour", UtcDateTime()),
        sa.column("team_id", sa.Integer()),
        sa.column("prompt_name", sa.String()),
        sa.column("model", sa.String()),
        *(sa.column(n, sa.BigInteger()) for n in _COUNTS),
        sa.column("latency_histogram", sa.LargeBinary()),
    )


_HOURLY = _table("call_hourly_rollup")
_SIX_HOURLY = _table("call_six_hour_rollup")
# The packed form (core/budgets/latency_histogram.py), frozen here as this revision reads and
# writes it: little-endian int64s, the lowest bucket held, then every bucket's count from it up.
_WORD = np.dtype("<i8")


def _unpack(packed: bytes) -> dict[int, int]:
    if not packed:
        return {}
    words = np.frombuffer(packed, dtype=_WORD)
    first = int(words[0])
    return {first + i: int(n) for i, n in enumerate(words[1:].tolist()) if n}


def _pack(counts: dict[int, int]) -> bytes:
    held = {b: n for b, n in counts.items() if n}
    if not held:
        return b""
    first, last = min(held), max(held)
    words = np.zeros(last - first + 2, dtype=_WORD)
    words[0] = first
    for bucket, n in held.items():
        words[bucket - first + 1] = n
    return words.tobytes()


def upgrade() -> None:
    op.create_table(
        "call_six_hour_rollup",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("latency_histogram", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP),
    )
    op.create_index(
        "ix_gateway_call_rate_limited",
        "gateway_call",
        ["created_at"],
        sqlite_where=sa.text(_RATE_LIMITED),
        postgresql_where=sa.text(_RATE_LIMITED),
    )
    bind = op.get_bind()
    first, last = bind.execute(sa.select(sa.func.min(_HOURLY.c.hour), sa.func.max(_HOURLY.c.hour))).one()
    if first is None:
        return
    cursor = first.replace(hour=0)  # steps of whole days never split six hours
    while cursor <= last:
        upto = cursor + _STEP
        _fill(bind, cursor, upto)
        cursor = upto


def _fill(bind: sa.Connection, start: Any, end: Any) -> None:
    """The hourly rows of [start, end) summed per six hours, team, prompt and model."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    histograms: dict[tuple[Any, ...], dict[int, int]] = {}
    found = bind.execute(
        sa.select(*(_HOURLY.c[k] for k in _GROUP), *(_HOURLY.c[n] for n in _COUNTS), _HOURLY.c.latency_histogram).where(
            _HOURLY.c.hour >= start, _HOURLY.c.hour < end
        )
    )
    for hour, team_id, prompt, model, *values in found:
        *counts, packed = values
        group = (hour.replace(hour=hour.hour - hour.hour % 6), team_id, prompt, model)
        row = rows.get(group)
        if row is None:
            row = rows[group] = {**dict(zip(_GROUP, group, strict=True)), **dict.fromkeys(_COUNTS, 0)}
        for name, value in zip(_COUNTS, counts, strict=True):
            row[name] += int(value or 0)
        histogram = histograms.setdefault(group, {})
        for bucket, n in _unpack(packed).items():
            histogram[bucket] = histogram.get(bucket, 0) + n
    for group, row in rows.items():
        row["latency_histogram"] = _pack(histograms.get(group, {}))
    if rows:
        bind.execute(sa.insert(_SIX_HOURLY), list(rows.values()))


def downgrade() -> None:
    op.drop_index("ix_gateway_call_rate_limited", table_name="gateway_call")
    op.drop_table("call_six_hour_rollup")
