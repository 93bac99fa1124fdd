"""How long the Observability page's queries take over a large call log.

Builds a fresh database with `--rows` gateway calls spread over the last 14 days, in time
order as the gateway writes them (4 teams, 3 models, 5 prompts, lognormal latencies, a few
errors, 429s, blocks and cache hits), then runs the queries the page runs for its default
view and for a few others, several times each, and prints the median per view.

Run: python bench/observability.py [--rows 1000000] [--repeat 5] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from core import db, migrate  # noqa: E402
from core.budgets import rollups  # noqa: E402
from core.gateway.observability import MetricsQuery, filter_options, gateway_metrics  # noqa: E402
from core.models.gateway import GatewayCall  # noqa: E402
from core.permissions import Actor  # noqa: E402

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
PROMPTS = (None, "support-answer", "ticket-triage", "invoice-extract", "summary")
OUTCOMES = (
    [("ok", 200)] * 90
    + [("upstream_error", 502), ("budget_exceeded", 429), ("blocked", 400), ("held", 202)]
    + [("ok", 200)] * 6
)


def build(url: str, rows: int) -> None:
    migrate.recreate(url)
    rng = random.Random(1)
    now = datetime.now(UTC)
    engine = db.get_engine(url)
    chunk = 50_000
    # In time order, as the gateway appends them.
    offsets = sorted((rng.uniform(0, 14 * 86400) for _ in range(rows)), reverse=True)
    with engine.begin() as conn:
        for start in range(0, rows, chunk):
            batch = []
            for i in range(start, min(start + chunk, rows)):
                status, http_status = OUTCOMES[i % len(OUTCOMES)]
                batch.append(
                    {
                        "request_id": f"req_{i:012d}",
                        "created_at": now - timedelta(seconds=offsets[i]),
                        "team_id": 1 + i % 4,
                        "actor": "key:1",
                        "endpoint": "chat",
                        "model": MODELS[i % 3],
                        "prompt_name": PROMPTS[i % 5],
                        "status": status,
                        "http_status": http_status,
                        "cache_hit": i % 17 == 0,
                        "latency_ms": rng.lognormvariate(math.log(400), 0.8),
                        "cost_micro": 30,
                    }
                )
            conn.execute(insert(GatewayCall.__table__), batch)
        rollups.rebuild(conn)  # what `quorum rollups rebuild` does: the page reads the roll-ups
    print(f"built {rows:,} calls")


VIEWS = {  # what the page asks for: the filter options, then one query
    "default (14 days per day, by team) + filter options": [None, MetricsQuery(by=("team",))],
    "14 days per hour, by team and model": [MetricsQuery(by=("team", "model"), granularity="hour")],
    "14 days per day, by prompt, one team": [MetricsQuery(by=("prompt",), team_ids=(2,))],
    "last day per hour, one prompt": [MetricsQuery(by=(), granularity="hour", days=1, prompts=("ticket-triage",))],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", default=None, help="Database (default: a fresh SQLite file).")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/observability.db"
    build(url, args.rows)
    actor = Actor.system("bench")
    engine = db.get_engine(url)
    print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}, {args.rows:,} calls")
    for name, queries in VIEWS.items():
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            with db.session(engine) as session:
                for query in queries:
                    if query is None:
                        filter_options(session, actor=actor, days=14)
                    else:
                        gateway_metrics(session, actor=actor, query=query)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"  {name:<55} median {statistics.median(timings):8.1f} ms  (of {args.repeat})")


if __name__ == "__main__":
    main()
