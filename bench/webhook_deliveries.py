"""What recording a webhook delivery costs the background sender, and that the table stays
bounded.

Writes `--posts` delivery records (as the sender does after a post's last attempt: one short
write transaction that inserts the row and prunes the setting past `KEEP_PER_TARGET`) spread
over `--settings` webhook settings, on a fresh SQLite file or the PostgreSQL database given.
Printed: the median and 95th-percentile CPU time of this process per record (the database
server's own work on PostgreSQL is not in it), the wall time beside it, and the rows left.

Run: python bench/webhook_deliveries.py [--database-url URL] [--posts 2000] [--settings 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from core import db, migrate  # noqa: E402
from core.anomalies import deliveries  # noqa: E402
from core.background import Outcome  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--settings", type=int, default=5)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    migrate.upgrade(url)
    engine = db.get_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM webhook_delivery"))
    now = datetime.now(UTC)
    body = {"type": "anomaly.alert", "alert_id": 1, "detector": "spend_surge", "series": "key:3"}
    cpu, wall = [], []
    for n in range(args.posts):
        outcome = Outcome(attempts=1 + n % 4, delivered=n % 7 != 0, status=200 if n % 7 else 503, error="")
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        deliveries.record(
            engine,
            settings=[("team", str(n % args.settings))],
            url_masked="https://hooks.example.com/…",
            body=body,
            outcome=outcome,
            started_at=now,
            finished_at=now,
        )
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT count(*) FROM webhook_delivery")).scalar()
    print(
        f"database: {engine.dialect.name}; {args.posts} records over {args.settings} settings; load {os.getloadavg()}"
    )
    print(f"CPU per record: {_spread(cpu)}")
    print(f"wall per record: {_spread(wall)}")
    print(f"rows kept: {rows} (at most {args.settings} x {deliveries.KEEP_PER_TARGET})")


def _spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {ordered[int(len(ordered) * 0.95)] * 1000:.2f} ms"


if __name__ == "__main__":
    main()
