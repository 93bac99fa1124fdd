"""Prometheus metrics: what a platform team's scraper reads at /metrics.

Two kinds, because they are true in two different places:

- Counted by the process that served the call (`observe_call`, once the call's write-back is
  committed): calls by team, model, prompt and outcome; tokens; cost; cache hits; guardrail
  blocks and holds; rate-limit refusals; the added and the upstream latency. A call costs a
  dict lookup and a few additions on children looked up once per label set (bench/gateway.py
  prints the figure). With several gateway processes on one host, PROMETHEUS_MULTIPROC_DIR
  names a directory where each process keeps its counts in a memory-mapped file, and a
  scrape answered by any of them sums them all (`quorum gateway serve --workers N` sets one
  up when none is given).
- Read from the database when scraped (`DatabaseCollector`): reservations in flight, budget
  headroom per team, the audit chain's head and newest checkpoint, the last verification,
  the last retention run. The database is what every process and host shares, so these are
  right whichever process answers, and cost nothing per call.

Labels stay few: team names, model, prompt, outcome. Key ids only with QUORUM_METRICS_KEY_IDS,
and never a person. A model name a client made up (refused before it was resolved) is
counted as "other", so that nobody can grow the series by sending names.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import distinct, func, select, text
from sqlmodel import col

from core import clock, db
from core.budgets import periods
from core.models.budgets import BudgetHold
from core.ops import readiness
from core.ops.names import team_name
from core.settings import settings

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Refused before the model was looked up: the name is the client's own text.
UNRESOLVED = frozenset({"not_allowed", "not_priced"})
OTHER_MODEL = "other"
# The provider did not answer (or not usefully): not a sign of an upstream that is up.
UPSTREAM_FAILED = frozenset({"upstream_error", "moderation_unavailable", "error"})
ADDED_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# `_created` series double the output and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client


@dataclass(frozen=True)
class _Children:
    """The metric children of one label set, looked up once (a `labels()` call takes a lock)."""

    calls: Any
    input_tokens: Any
    output_tokens: Any
    cost: Any
    cache_hits: Any
    blocks: Any
    holds: Any
    rate_limited: Any
    upstream: Any


class CallMetrics:
    """The per-call counters and histograms of this process (unregistered: each scrape collects them)."""

    def __init__(self, *, key_ids: bool) -> None:
        self.key_ids = key_ids
        call_labels = ["team", "model", "prompt", "outcome", *(["key_id"] if key_ids else [])]
        self.calls = Counter(
            "quorum_gateway_calls", "Gateway calls by team, model, prompt and outcome.", call_labels, registry=None
        )
        self.tokens = Counter(
            "quorum_gateway_tokens",
            "Tokens of settled calls (kind: input or output).",
            ["team", "model", "kind"],
            registry=None,
        )
        self.cost = Counter(
            "quorum_gateway_cost_microdollars",
            "What settled calls cost, in micro-dollars (1e-6 USD).",
            ["team", "model"],
            registry=None,
        )
        self.cache_hits = Counter(
            "quorum_gateway_cache_hits", "Calls answered from the response cache.", ["team", "model"], registry=None
        )
        self.blocks = Counter(
            "quorum_gateway_guardrail_blocks", "Calls refused by an input guardrail.", ["team"], registry=None
        )
        self.holds = Counter(
            "quorum_gateway_guardrail_holds", "Answers held for a governance lead's review.", ["team"], registry=None
        )
        self.rate_limited = Counter(
            "quorum_gateway_rate_limit_refusals", "Calls refused by a team's rate limit.", ["team"], registry=None
        )
        self.added = Histogram(
            "quorum_gateway_added_latency_seconds",
            "Time a call spent in Quorum itself (total minus the upstream's).",
            buckets=ADDED_BUCKETS,
            registry=None,
        )
        self.upstream = Histogram(
            "quorum_gateway_upstream_latency_seconds",
            "Time a call spent waiting for the model provider (calls that reached it).",
            ["model"],
            buckets=UPSTREAM_BUCKETS,
            registry=None,
        )
        self._children: dict[tuple[Any, ...], _Children] = {}
        self._lock = threading.Lock()

    def collectors(self) -> list[Collector]:
        return [self.calls, self.tokens, self.cost, self.cache_hits, self.blocks, self.holds, self.rate_limited,
                self.added, self.upstream]  # fmt: skip

    def children(self, team: str, model: str, prompt: str, outcome: str, key_id: str) -> _Children:
        key = (team, model, prompt, outcome, key_id)
        found = self._children.get(key)
        if found is None:
            with self._lock:
                call_labels = (team, model, prompt, outcome, *((key_id,) if self.key_ids else ()))
                found = self._children[key] = _Children(
                    calls=self.calls.labels(*call_labels),
                    input_tokens=self.tokens.labels(team, model, "input"),
                    output_tokens=self.tokens.labels(team, model, "output"),
                    cost=self.cost.labels(team, model),
                    cache_hits=self.cache_hits.labels(team, model),
                    blocks=self.blocks.labels(team),
                    holds=self.holds.labels(team),
                    rate_limited=self.rate_limited.labels(team),
                    upstream=self.upstream.labels(model),
                )
        return found

    def observe(self, row: dict[str, Any]) -> None:
        """Count one settled call from its call-log row (the values `core.gateway.settle` wrote)."""
        status = row["status"]
        model = OTHER_MODEL if status in UNRESOLVED else row["model"]
        key_id = row["key_id"]
        child = self.children(
            team_name(row["team_id"]),
            model,
            row["prompt_name"] or "",
            status,
            "" if key_id is None else str(key_id),
        )
        child.calls.inc()
        if row["input_tokens"]:
            child.input_tokens.inc(row["input_tokens"])
        if row["output_tokens"]:
            child.output_tokens.inc(row["output_tokens"])
        if row["cost_micro"]:
            child.cost.inc(row["cost_micro"])
        if row["cache_hit"]:
            child.cache_hits.inc()
        if status == "blocked":
            child.blocks.inc()
        elif status == "held":
            child.holds.inc()
        elif status == "rate_limited":
            child.rate_limited.inc()
        upstream_s = row["upstream_ms"] / 1000
        if upstream_s > 0:
            child.upstream.observe(upstream_s)
        self.added.observe(max(0.0, row["latency_ms"] / 1000 - upstream_s))


_metrics: CallMetrics | None = None
_metrics_lock = threading.Lock()


def call_metrics() -> CallMetrics:
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = CallMetrics(key_ids=settings().metrics_key_ids)
    return _metrics


def observe_call(row: dict[str, Any]) -> None:
    """Count a settled call; never fails the call it counts."""
    try:
        call_metrics().observe(row)
        if row["upstream_ms"] > 0 and row["status"] not in UPSTREAM_FAILED:
            readiness.upstream_answered()
    except Exception:  # noqa: BLE001 - a metric is not worth a failed answer
        import logging

        logging.getLogger(__name__).exception("could not count a gateway call in the metrics")


def reset() -> None:
    """Start counting from zero with the current settings (tests)."""
    global _metrics
    with _metrics_lock:
        _metrics = None


# ---- read from the database at scrape time ------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped; `quorum_database_up` 0 when it cannot be read."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("quorum_database_up", "1 when /metrics could read the database.")
        try:
            families = list(_database_gauges())
        except Exception:  # noqa: BLE001 - the scrape answers, and says the database did not
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


def _database_gauges() -> Iterator[GaugeMetricFamily]:
    now = clock.now()
    with db.get_engine().connect() as connection:
        # Through the model's columns: the time is bound as each database stores it.
        holds = connection.execute(
            select(
                func.count(distinct(col(BudgetHold.reservation_id))),
                func.coalesce(func.sum(BudgetHold.amount_micro), 0),
            ).where(col(BudgetHold.expires_at) > now)
        ).one()
        yield _gauge("quorum_reservations_in_flight", "Budget reservations of calls not yet settled.", holds[0])
        yield _gauge(
            "quorum_reservations_in_flight_microdollars",
            "What the reservations in flight hold, in micro-dollars.",
            holds[1],
        )
        headroom = GaugeMetricFamily(
            "quorum_budget_headroom_microdollars",
            "What a team's budget has left this period (cap minus spent and reserved), in micro-dollars.",
            labels=["team"],
        )
        budgets = connection.execute(
            text(
                "SELECT b.id, b.period, b.cap_micro, t.name FROM budget b JOIN team t ON t.id = b.team_id "
                "WHERE b.scope = 'team' AND b.cap_micro IS NOT NULL"
            )
        ).all()
        keys = {kind: periods.period_key(kind, now) for kind in {row[1] for row in budgets}}
        for budget_id, kind, cap, name in sorted(budgets, key=lambda r: r[0]):
            used = connection.execute(
                text(
                    "SELECT spent_micro + reserved_micro FROM budget_period WHERE budget_id = :id AND period_key = :key"
                ),
                {"id": budget_id, "key": keys[kind]},
            ).scalar()
            headroom.add_metric([str(name)], int(cap) - int(used or 0))
        yield headroom
        head = connection.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar()
        yield _gauge("quorum_audit_head_seq", "The sequence number of the newest audit event.", head or 0)
        checkpoint = connection.execute(text("SELECT MAX(seq) FROM audit_checkpoint")).scalar()
        yield _gauge("quorum_audit_checkpoint_seq", "The newest signed audit checkpoint's sequence number.", checkpoint)
        verified = connection.execute(text("SELECT MAX(created_at) FROM audit_checkpoint WHERE verified")).scalar()
        yield _gauge(
            "quorum_audit_last_verification_timestamp_seconds",
            "When a clean verification last signed the chain's head (Unix time).",
            _unix(verified),
        )
        retention = connection.execute(
            text("SELECT MAX(finished_at) FROM retention_run WHERE status = 'done'")
        ).scalar()
        yield _gauge(
            "quorum_retention_last_run_timestamp_seconds",
            "When the last retention run finished (Unix time).",
            _unix(retention),
        )


def _unix(value: Any) -> float | None:
    """A stored UTC time as Unix time: PostgreSQL returns a datetime, SQLite its text."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    moment: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.timestamp()


# ---- the exposition ------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess() -> str:
    """Before starting gateway workers: the directory where each keeps its counts (made when none is set).

    Files left by an earlier run are removed (their counts would be added to this run's),
    as prometheus_client asks; the variable is inherited by the workers, which start afresh."""
    directory = multiprocess_dir()
    if directory is None:
        directory = tempfile.mkdtemp(prefix="quorum-metrics-")
        os.environ[MULTIPROC_ENV] = directory
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def exposition() -> bytes:
    """This host's metrics in Prometheus' text format (all processes' counts in multiprocess mode)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    else:
        for collector in call_metrics().collectors():
            registry.register(collector)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
