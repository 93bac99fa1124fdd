"""The two versions of a live split side by side, from the gateway's call log and feedback.

A call counts for a version when the call log names the prompt and its version (the
prompt source writes the version id, number or content hash there; all are recognised).
Error rate: share of calls that did not end ``ok`` (held, blocked, upstream errors...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.catalog import traffic
from core.catalog.store import get_prompt, get_version
from core.db import saved_id
from core.experiments.stats import mean, p95
from core.models.catalog import PromptVersion
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
    split = traffic.active_split(session, prompt_id)
    if split is None:
        return []
    prompt = get_prompt(session, prompt_id)
    calls = list(
        session.exec(
            select(GatewayCall).where(
                GatewayCall.prompt_name == prompt.name, col(GatewayCall.created_at) >= split.created_at
            )
        )
    )
    scores: dict[str, list[float]] = {}
    ids = [c.request_id for c in calls]
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        for row in session.exec(select(RequestFeedback).where(col(RequestFeedback.request_id).in_(chunk))):
            scores.setdefault(row.request_id, []).append(row.score)
    result = []
    for version_id, share in ((split.version_a_id, 100 - split.percent_b), (split.version_b_id, split.percent_b)):
        version = get_version(session, version_id)
        keys = version_keys(version)
        mine = [c for c in calls if c.prompt_version in keys]
        latencies = [c.latency_ms for c in mine if c.status == "ok"]
        feedback = [s for c in mine for s in scores.get(c.request_id, [])]
        result.append(
            LiveVersionStats(
                version_id=saved_id(version),
                version_number=version.number,
                share_percent=share,
                calls=len(mine),
                error_rate=sum(c.status != "ok" for c in mine) / len(mine) if mine else 0.0,
                mean_latency_ms=mean(latencies),
                p95_latency_ms=p95(latencies),
                cost_micro=sum(c.cost_micro for c in mine),
                feedback_count=len(feedback),
                mean_feedback=mean(feedback) if feedback else None,
            )
        )
    return result
