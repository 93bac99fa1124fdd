"""Gateway health from the call log: latency percentiles, error, 429 and cache-hit rates,
blocked requests, per team and model over time.

The query lives here so that it can move to the budgets' usage ledger later without the
page changing: it returns plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from core import clock
from core.models.gateway import GatewayCall
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class Bucket:
    day: str
    team_id: int | None
    model: str
    calls: int
    p50_ms: float
    p95_ms: float
    error_rate: float
    rate_429: float
    cache_hit_rate: float
    blocked: int
    held: int
    cost_micro: int


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def gateway_metrics(session: Session, *, actor: Actor, days: int = 14) -> list[Bucket]:
    require(actor, Permission.OBSERVABILITY_READ)
    since: datetime = clock.now() - timedelta(days=days)
    rows = session.exec(select(GatewayCall.created_at, GatewayCall.team_id, GatewayCall.model,
                               GatewayCall.status, GatewayCall.http_status, GatewayCall.cache_hit,
                               GatewayCall.latency_ms, GatewayCall.cost_micro)
                        .where(col(GatewayCall.created_at) >= since)).all()
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row[0].date().isoformat(), row[1], row[2]), []).append(row)
    buckets = []
    for (day, team_id, model), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2])):
        n = len(items)
        latencies = [r[6] for r in items if r[3] == "ok"]
        buckets.append(Bucket(
            day=day, team_id=team_id, model=model, calls=n,
            p50_ms=round(percentile(latencies, 0.5), 2), p95_ms=round(percentile(latencies, 0.95), 2),
            error_rate=round(sum(r[4] >= 500 for r in items) / n, 4),
            rate_429=round(sum(r[4] == 429 for r in items) / n, 4),
            cache_hit_rate=round(sum(bool(r[5]) for r in items) / n, 4),
            blocked=sum(r[3] == "blocked" for r in items), held=sum(r[3] == "held" for r in items),
            cost_micro=sum(r[7] for r in items)))
    return buckets
