"""How fast retention purges: a million expired stored payloads, in bounded batches.

Builds a fresh database, bulk-inserts `--rows` stored payloads (and their call-log rows'
worth of text) dated six years ago plus 10% recent ones that must survive, then runs
`enforce` and prints rows per second and the longest single transaction.
With --table usage, a million usage rows are anonymized instead.
Target: all in under 30 s on SQLite, no transaction longer than 1 s.

Run: python bench/retention.py [--rows 1000000] [--batch 5000] [--table payloads|usage] [--url sqlite:///bench/out/retention.db]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, insert, text  # noqa: E402

from core import db, migrate  # noqa: E402
from core.models.budgets import UsageRecord  # noqa: E402
from core.models.gateway import StoredPayload  # noqa: E402
from core.permissions import Actor  # noqa: E402
from core.retention import enforce  # noqa: E402

REQUEST = '{"request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Where is my order 1234?"}]}}'
RESPONSE = '{"choices": [{"message": {"role": "assistant", "content": "It ships tomorrow."}}]}'


def build(url: str, rows: int, table: str) -> None:
    migrate.recreate(url)
    now = datetime.now(UTC)
    # Past their class: payloads are kept 5 years, usage rows 7.
    old, fresh = now - timedelta(days=(8 if table == "usage" else 6) * 366), now - timedelta(days=30)
    engine = db.get_engine(url)
    chunk = 50_000
    total = rows + rows // 10
    with engine.begin() as conn:
        if table == "usage":
            conn.execute(
                text(
                    "INSERT INTO team (id, name, name_key, description, created_at) "
                    "VALUES (1, 'Bench', 'bench', '', :t)"
                ),
                {"t": now.replace(tzinfo=None)},
            )
        for start in range(0, total, chunk):
            if table == "usage":
                conn.execute(
                    insert(UsageRecord.__table__),
                    [
                        {
                            "occurred_at": old if i < rows else fresh,
                            "team_id": 1,
                            "person_id": 1 + i % 50,
                            "model": "gpt-4o-mini",
                            "input_tokens": 100,
                            "output_tokens": 20,
                            "cost_micro": 30,
                        }
                        for i in range(start, min(start + chunk, total))
                    ],
                )
                continue
            conn.execute(
                insert(StoredPayload.__table__),
                [
                    {
                        "request_id": f"req_{i:010d}",
                        "created_at": old if i < rows else fresh,
                        "team_id": 1 + i % 4,
                        "request_json": REQUEST,
                        "response_json": RESPONSE,
                    }
                    for i in range(start, min(start + chunk, total))
                ],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=enforce.BATCH_SIZE)
    parser.add_argument(
        "--table",
        choices=("payloads", "usage"),
        default="payloads",
        help="payloads: stored payloads, deleted; usage: usage rows, anonymized",
    )
    parser.add_argument("--url", default="sqlite:///" + str(Path(__file__).parent / "out" / "retention.db"))
    args = parser.parse_args()

    started = time.perf_counter()
    build(args.url, args.rows, args.table)
    print(
        f"built {args.rows:,} expired + {args.rows // 10:,} recent {args.table} rows "
        f"in {time.perf_counter() - started:.1f} s"
    )

    engine = db.get_engine(args.url)
    longest, opened = [0.0], {}

    @event.listens_for(engine, "begin")
    def _begin(conn):
        opened[id(conn)] = time.perf_counter()

    @event.listens_for(engine, "commit")
    def _commit(conn):
        began = opened.pop(id(conn), None)
        if began is not None:
            longest[0] = max(longest[0], time.perf_counter() - began)

    started = time.perf_counter()
    result = enforce.enforce(actor=Actor.system("bench"), engine=engine, batch_size=args.batch)
    elapsed = time.perf_counter() - started
    if args.table == "usage":
        deleted = result.counts["usage_record"]["anonymized"]
        check = "SELECT COUNT(*) FROM usage_record WHERE person_id IS NOT NULL"
    else:
        deleted = result.counts["stored_payload"]["deleted"]
        check = "SELECT COUNT(*) FROM stored_payload"
    with engine.connect() as conn:
        left = conn.execute(text(check)).scalar()
    print(
        f"{'anonymized' if args.table == 'usage' else 'purged'} {deleted:,} rows in {elapsed:.1f} s: "
        f"{deleted / elapsed:,.0f} rows/s, "
        f"batches of {args.batch:,}, longest transaction {longest[0] * 1000:.0f} ms; {left:,} recent rows kept"
    )
    ok = deleted == args.rows and left == args.rows // 10
    print("target (< 30 s, no transaction > 1 s): " + ("met" if ok and elapsed < 30 and longest[0] < 1 else "NOT met"))


if __name__ == "__main__":
    main()
