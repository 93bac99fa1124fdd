"""What finance's month costs: reconciling days of the demo's ledger against the simulated
provider, closing a month, and a team's statement, on a fresh demo database.

    python bench/finance.py [--days 14] [--database-url postgresql+psycopg://...]

Also the simulated provider's cost per answered call, in memory (tests, `quorum simulator
serve`) and appended to its billing log file (the app's own simulator).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14, help="UTC days to reconcile (default 14).")
    parser.add_argument("--database-url", default=None, help="Database (default: a fresh SQLite file).")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp()
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch}/bench.db"
    os.environ["QUORUM_DEMO"] = "1"
    os.environ["QUORUM_SIMULATOR_BILLING_LOG"] = f"{scratch}/billing.jsonl"
    os.environ["QUORUM_AUDIT_CHECKPOINT_DIR"] = f"{scratch}/checkpoints"

    from core import clock, db, demo, migrate
    from core.finance import close, reconcile, statements
    from core.identity import people as identity
    from core.permissions import Actor
    from core.simulator.billing import BillingLog

    system = Actor.system("bench")
    if args.database_url:
        migrate.recreate(os.environ["DATABASE_URL"])
    else:
        migrate.upgrade(os.environ["DATABASE_URL"])
    started = time.perf_counter()
    with db.write_session() as session:
        demo.seed(session)
    print(f"demo seed (the finance step included): {time.perf_counter() - started:.1f} s")

    yesterday = clock.now().date() - timedelta(days=1)
    started = time.perf_counter()
    results = reconcile.reconcile_days(actor=system, first=yesterday - timedelta(days=args.days - 1), last=yesterday)
    elapsed = time.perf_counter() - started
    print(f"reconcile {len(results)} days: {elapsed:.2f} s ({elapsed / len(results) * 1000:.0f} ms a day)")

    month = (clock.now().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    with db.write_session() as session:
        started = time.perf_counter()
        close.close_month(session=session, actor=system, month=month)
        print(f"close {month}: {(time.perf_counter() - started) * 1000:.0f} ms")
        support = identity.team_by_name(session, "Support").id
        started = time.perf_counter()
        found = statements.statement(session, actor=system, month=month, team_id=support)
        took = (time.perf_counter() - started) * 1000
        print(f"statement of Support for {month} ({len(found.lines)} lines): {took:.0f} ms")

    for label, path in (("in memory", None), ("appended to a file", f"{scratch}/per-call.jsonl")):
        log, calls = BillingLog(path), 5000
        started = time.perf_counter()
        for _ in range(calls):
            log.add_usage(at=datetime.now(UTC), kind="completions", model="gpt-4o-mini", input_tokens=100)
        print(f"billing an answered call, {label}: {(time.perf_counter() - started) / calls * 1e6:.1f} us")


if __name__ == "__main__":
    main()
