"""the gateway call log per UTC day, prompt and prompt version (Live A/B's whole days)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-02

Live A/B read every whole hour of a split from the hourly call roll-ups: a split of 300
days read 7,200 hours of rows per version, more every day. This table holds a row per UTC
day, prompt and version (calls that name no prompt have none), with the sums Live A/B shows
and the answered calls' latency histogram packed into it; the upgrade fills it from the
hourly call roll-ups (call_rollup, call_latency_rollup), a month at a time, which is what
`quorum rollups rebuild` would write.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

_COUNTS = ("calls", "ok", "cost_micro")
_GROUP = ("day", "prompt_name", "prompt_version")
_STEP = timedelta(days=31)

_HOURLY = sa.table(
    "call_rollup",
    sa.column("hour", UtcDateTime()),
    sa.column("prompt_name", sa.String()),
    sa.column("prompt_version", sa.String()),
    *(sa.column(n, sa.BigInteger()) for n in _COUNTS),
    sa.column("ok_latency_ms", sa.Float()),
)
_LATENCY = sa.table(
    "call_latency_rollup",
    sa.column("hour", UtcDateTime()),
    sa.column("prompt_name", sa.String()),
    sa.column("prompt_version", sa.String()),
    sa.column("bucket", sa.Integer()),
    sa.column("calls", sa.BigInteger()),
)
_VERSION_DAILY = sa.table(
    "call_version_daily_rollup",
    *(sa.column(n) for n in _GROUP[1:]),
    sa.column("day", UtcDateTime()),
    *(sa.column(n, sa.BigInteger()) for n in _COUNTS),
    sa.column("ok_latency_ms", sa.Float()),
    sa.column("latency_histogram", sa.LargeBinary()),
)
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


def _day(hour: datetime) -> datetime:
    return hour.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def upgrade() -> None:
    op.create_table(
        "call_version_daily_rollup",
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("prompt_name", sa.String(length=80), nullable=False),
        sa.Column("prompt_version", sa.String(length=80), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _COUNTS),
        sa.Column("ok_latency_ms", sa.Float(), nullable=False),
        sa.Column("latency_histogram", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(*_GROUP),
    )
    op.create_index("ix_call_version_daily_rollup_prompt_day", "call_version_daily_rollup", ["prompt_name", "day"])
    bind = op.get_bind()
    first, last = bind.execute(sa.select(sa.func.min(_HOURLY.c.hour), sa.func.max(_HOURLY.c.hour))).one()
    if first is None:
        return
    cursor = _day(first)
    while cursor <= last:
        upto = cursor + _STEP
        _fill(bind, cursor, upto)
        cursor = upto


def _fill(bind: sa.Connection, start: Any, end: Any) -> None:
    """The hourly rows of named prompts in [start, end) summed per day, prompt and version."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    found = bind.execute(
        sa.select(
            _HOURLY.c.hour,
            _HOURLY.c.prompt_name,
            _HOURLY.c.prompt_version,
            *(sa.func.sum(_HOURLY.c[n]) for n in (*_COUNTS, "ok_latency_ms")),
        )
        .where(_HOURLY.c.hour >= start, _HOURLY.c.hour < end, _HOURLY.c.prompt_name != "")
        .group_by(_HOURLY.c.hour, _HOURLY.c.prompt_name, _HOURLY.c.prompt_version)
    )
    for hour, prompt, version, *sums in found:
        group = (_day(hour), prompt, version)
        row = rows.get(group)
        if row is None:
            row = rows[group] = {**dict(zip(_GROUP, group, strict=True)), **dict.fromkeys(_COUNTS, 0)}
            row["ok_latency_ms"] = 0.0
        for name, value in zip(_COUNTS, sums[:3], strict=True):
            row[name] += int(value or 0)
        row["ok_latency_ms"] += float(sums[3] or 0.0)
    histograms: dict[tuple[Any, ...], dict[int, int]] = {}
    latency = _LATENCY.c
    grouping = (latency.hour, latency.prompt_name, latency.prompt_version, latency.bucket)
    buckets = bind.execute(
        sa.select(*grouping, sa.func.sum(latency.calls))
        .where(latency.hour >= start, latency.hour < end, latency.prompt_name != "")
        .group_by(*grouping)
    )
    for hour, prompt, version, bucket, n in buckets:
        histogram = histograms.setdefault((_day(hour), prompt, version), {})
        histogram[int(bucket)] = histogram.get(int(bucket), 0) + int(n or 0)
    for group, row in rows.items():
        row["latency_histogram"] = _pack(histograms.get(group, {}))
    if rows:
        bind.execute(sa.insert(_VERSION_DAILY), list(rows.values()))


def downgrade() -> None:
    op.drop_index("ix_call_version_daily_rollup_prompt_day", table_name="call_version_daily_rollup")
    op.drop_table("call_version_daily_rollup")
