"""The two versions of a live split side by side, from the gateway's call log and feedback.

A call counts for a version when the call log names the prompt and its version (the
prompt source writes the version id, number or content hash there; all are recognised).
Error rate: share of calls that did not end ``ok`` (held, blocked, upstream errors...).

What is read, for a split that began at `since`:
- its first, partial hour from the call log (at most an hour of this prompt's calls);
- its whole hours up to the next UTC midnight from the hourly roll-ups (at most 23 hours);
- its whole UTC days, today's included, from the per-version daily roll-up
  (`call_version_daily_rollup`): a row per version and day, with the day's packed latency
  histogram;
- the team's feedback, then the rated calls by request id.
So a split a year old reads about 365 rows per version besides the first day's hours and
the feedback, where one read from the hourly roll-ups would read 8,760 hours of rows. p95
latency is read from the roll-ups' histogram (within 2.5 %, as on Observability); the days
hold the same buckets as their hours, so the figures are the ones the hours would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from core.budgets import pending_rollups, rollups
from core.budgets.daily_rollups import day_of
from core.budgets.latency_histogram import unpack
from core.budgets.ledger_sums import ceil_hour
from core.budgets.version_rollups import VERSION_DAILY, VERSION_SUMS
from core.catalog import traffic
from core.catalog.store import get_prompt, get_version
from core.db import saved_id, table_of
from core.gateway.observability import percentile
from core.models.catalog import Prompt, PromptVersion
from core.models.experiments import RequestFeedback
from core.models.gateway import GatewayCall
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class LiveVersionStats:
    version_id: int
    version_number: int
    share_percent: int
    calls: int
    error_rate: float
    mean_latency_ms: float
    p95_latency_ms: float
    cost_micro: int
    feedback_count: int
    mean_feedback: float | None


def version_keys(version: PromptVersion) -> set[str]:
    """Every way a call log row may name this version."""
    return {str(version.id), str(version.number), f"v{version.number}", version.content_hash, version.content_hash[:12]}


def compare_live(session: Session, *, actor: Actor, prompt_id: int) -> list[LiveVersionStats]:
    """Stats since the active split began, for versions A and B (empty without a split)."""
    require(actor, Permission.OBSERVABILITY_READ)
    pending_rollups.catch_up(session.connection())  # every call settled so far, folded first
    split = traffic.active_split(session, prompt_id)
    if split is None:
        return []
    prompt = get_prompt(session, prompt_id)
    per_version = _per_version(session, prompt.name, split.created_at)
    result = []
    for version_id, share in ((split.version_a_id, 100 - split.percent_b), (split.version_b_id, split.percent_b)):
        version = get_version(session, version_id)
        mine = _Tally()
        for key in version_keys(version):
            mine.merge(per_version.get(key))
        result.append(
            LiveVersionStats(
                version_id=saved_id(version),
                version_number=version.number,
                share_percent=share,
                calls=mine.calls,
                error_rate=(mine.calls - mine.ok) / mine.calls if mine.calls else 0.0,
                mean_latency_ms=mine.ok_latency_ms / mine.ok if mine.ok else 0.0,
                p95_latency_ms=percentile(mine.latencies, 0.95) or 0.0,
                cost_micro=mine.cost_micro,
                feedback_count=mine.feedback_count,
                mean_feedback=mine.feedback_sum / mine.feedback_count if mine.feedback_count else None,
            )
        )
    return result


class _Tally:
    def __init__(self) -> None:
        self.calls = self.ok = self.cost_micro = self.feedback_count = 0
        self.ok_latency_ms = self.feedback_sum = 0.0
        self.latencies: dict[int, int] = {}

    def merge(self, other: _Tally | None) -> None:
        if other is None:
            return
        self.calls += other.calls
        self.ok += other.ok
        self.cost_micro += other.cost_micro
        self.ok_latency_ms += other.ok_latency_ms
        self.feedback_count += other.feedback_count
        self.feedback_sum += other.feedback_sum
        for bucket, n in other.latencies.items():
            self.latencies[bucket] = self.latencies.get(bucket, 0) + n


_CALLS = table_of(GatewayCall)
_FEEDBACK = table_of(RequestFeedback)


def _per_version(session: Session, prompt: str, since: datetime) -> dict[str, _Tally]:
    """Per version name in the call log: calls, answered calls, latency and cost since `since`."""
    tallies: dict[str, _Tally] = {}

    def tally(version: str | None) -> _Tally:
        found = tallies.get(version or "")
        if found is None:
            found = tallies[version or ""] = _Tally()
        return found

    first = ceil_hour(since)
    midnight = first if first == day_of(first) else day_of(first) + timedelta(days=1)
    # The first, partial hour: at most an hour of this prompt's calls, counted as a settle would.
    edge = session.execute(
        select(*(_CALLS.c[c] for c in ("created_at", *rollups.CALL_KEYS[1:], *_EDGE_COLUMNS))).where(
            _CALLS.c.prompt_name == prompt, _CALLS.c.created_at >= since, _CALLS.c.created_at < first
        )
    )
    groups, latencies = rollups.call_groups(dict(r._mapping) for r in edge)
    # Every source below as (version, calls, ok, cost_micro, ok_latency_ms): VERSION_SUMS' order.
    picked = [rollups.CALL_SUMS.index(name) for name in VERSION_SUMS]
    rows = [(key[5], *(values[i] for i in picked)) for key, values in groups.items()]
    call, latency, day = rollups.CALL, rollups.LATENCY, VERSION_DAILY
    # The whole hours of the first day (none when the split began within a midnight's hour).
    rows += session.execute(
        select(call.c.prompt_version, *(func.sum(call.c[n]) for n in VERSION_SUMS))
        .where(call.c.prompt_name == prompt, call.c.hour >= first, call.c.hour < midnight)
        .group_by(call.c.prompt_version)
    ).all()
    histogram = [(key[3], key[5], n[0]) for key, n in latencies.items()]
    histogram += session.execute(
        select(latency.c.prompt_version, latency.c.bucket, func.sum(latency.c.calls))
        .where(latency.c.prompt_name == prompt, latency.c.hour >= first, latency.c.hour < midnight)
        .group_by(latency.c.prompt_version, latency.c.bucket)
    ).all()
    # The whole days: a row per version and day, its histogram packed into it.
    for version, *sums, packed in session.execute(
        select(day.c.prompt_version, *(day.c[n] for n in VERSION_SUMS), day.c.latency_histogram).where(
            day.c.prompt_name == prompt, day.c.day >= midnight
        )
    ):
        rows.append((version, *sums))
        into = tally(version).latencies
        for bucket, n in unpack(packed).items():
            into[bucket] = into.get(bucket, 0) + n
    for version, calls, ok, cost_micro, ok_latency_ms in rows:
        mine = tally(version)
        mine.calls += int(calls)
        mine.ok += int(ok)
        mine.cost_micro += int(cost_micro)
        mine.ok_latency_ms += float(ok_latency_ms)
    for version, bucket, n in histogram:
        mine = tally(version)
        mine.latencies[int(bucket)] = mine.latencies.get(int(bucket), 0) + int(n)
    # Feedback is scarce next to calls: read the team's ratings, then their calls by request id
    # (unique index), rather than walk every call since the split began.
    team_id = session.execute(select(col(Prompt.team_id)).where(col(Prompt.name) == prompt)).scalar_one()
    ratings: dict[str, list[float]] = {}
    for request_id, score in session.execute(
        select(_FEEDBACK.c.request_id, _FEEDBACK.c.score).where(_FEEDBACK.c.team_id == team_id)
    ):
        ratings.setdefault(request_id, []).append(float(score))
    ids = list(ratings)
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for request_id, version in session.execute(
            select(_CALLS.c.request_id, _CALLS.c.prompt_version).where(
                _CALLS.c.request_id.in_(chunk), _CALLS.c.prompt_name == prompt, _CALLS.c.created_at >= since
            )
        ):
            mine = tally(version)
            mine.feedback_count += len(ratings[request_id])
            mine.feedback_sum += sum(ratings[request_id])
    return tallies


_EDGE_COLUMNS = ("status", "http_status", "cache_hit", "input_tokens", "output_tokens", "cost_micro", "latency_ms")
