"""hourly roll-ups of the gateway call log at Observability's grain

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-27

Observability's per-hour views read call_rollup, whose hours also keep the key, the caller
and the prompt version, and call_latency_rollup, a row per 5 % latency bucket: at a few
calls an hour both hold about a row per call, and a 90-day view read a few hundred
thousand. This table holds a row per UTC hour and (team, prompt, model) with the answered
calls' latency histogram packed into it, like call_daily_rollup's days. The upgrade fills it
from the hourly roll-ups, a month at a time, which is what `quorum rollups rebuild` would
write.
"""

from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_COUNTS = ("calls", "ok", "errors", "rejected_429", "blocked", "held", "cache_hits", "cost_micro")
_GROUP = ("hour", "team_id", "prompt_name", "model")
_STEP = timedelta(days=31)


def _table(name: str, *extra: sa.ColumnClause[Any]) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("hour", UtcDateTime()),
        sa.column("team_id", sa.Integer()),
        sa.column("prompt_name", sa.String()),
        sa.column("model", sa.String()),
        *extra,
    )


_HOURLY = _table(
    "call_hourly_rollup",
    *(sa.column(n, sa.BigInteger()) for n in _COUNTS),
    sa.column("latency_histogram", sa.LargeBinary()),
)
_CALLS = _table("call_rollup", *(sa.column(n, sa.BigInteger()) for n in _COUNTS))
_LATENCY = _table("call_latency_rollup", sa.column("bucket", sa.Integer()), sa.column("calls", sa.BigInteger()))
# The packed form (core/budgets/latency_histogram.py), frozen here as this revision writes it:
# little-endian int64s, the lowest bucket held, then every bucket's count from it up.
_WORD = np.dtype("<i8")


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
        "call_hourly_rollup",
        sa.Column("hour", UtcDateTime(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("latency_histogram", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP),
    )
    bind = op.get_bind()
    first, last = bind.execute(sa.select(sa.func.min(_CALLS.c.hour), sa.func.max(_CALLS.c.hour))).one()
    if first is None:
        return
    cursor = first
    while cursor <= last:
        upto = cursor + _STEP
        _fill(bind, cursor, upto)
        cursor = upto


def _fill(bind: sa.Connection, start: Any, end: Any) -> None:
    """The hourly roll-ups of [start, end) summed per hour, team, prompt and model."""
    keys = [_CALLS.c[k] for k in _GROUP]
    counted = bind.execute(
        sa.select(*keys, *(sa.func.sum(_CALLS.c[n]) for n in _COUNTS))
        .where(_CALLS.c.hour >= start, _CALLS.c.hour < end)
        .group_by(*keys)
    )
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in counted:
        group = tuple(row[: len(_GROUP)])
        values = dict(zip(_COUNTS, (int(v or 0) for v in row[len(_GROUP) :]), strict=True))
        rows[group] = {**dict(zip(_GROUP, group, strict=True)), **values, "latency_histogram": b""}
    latency_keys = [_LATENCY.c[k] for k in _GROUP]
    histograms: dict[tuple[Any, ...], dict[int, int]] = {}
    for *named, bucket, calls in bind.execute(
        sa.select(*latency_keys, _LATENCY.c.bucket, sa.func.sum(_LATENCY.c.calls))
        .where(_LATENCY.c.hour >= start, _LATENCY.c.hour < end)
        .group_by(*latency_keys, _LATENCY.c.bucket)
    ):
        histograms.setdefault(tuple(named), {})[int(bucket)] = int(calls or 0)
    for group, histogram in histograms.items():
        if group in rows:  # a bucket counts answered calls, which the counts hold too
            rows[group]["latency_histogram"] = _pack(histogram)
    if rows:
        bind.execute(sa.insert(_HOURLY), list(rows.values()))


def downgrade() -> None:
    op.drop_table("call_hourly_rollup")
