"""Reserve + settle operations per second, one caller and 16 concurrent callers.

    python bench/budgets.py                                  # a temporary SQLite file
    python bench/budgets.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/budgets.py --both --database-url postgresql+psycopg://...   # SQLite, then PostgreSQL

The PostgreSQL database's public schema is dropped and recreated. Prints the median of
--runs runs for each setting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import db, demo, migrate  # noqa: E402
from core.budgets import config, reservations, settlement  # noqa: E402
from core.budgets.pricing import Usage  # noqa: E402
from core.identity import people as identity  # noqa: E402
from core.permissions import Actor  # noqa: E402

USAGE = Usage(input_tokens=800, cached_input_tokens=200, output_tokens=150)


def prepare(url: str) -> int:
    migrate.recreate(url)
    with db.session(db.get_engine(url)) as session:
        demo.seed_directory(session)
        team = identity.team_by_name(session, "Support").id
        config.set_budget(
            session=session,
            actor=Actor.system("bench"),
            scope="team",
            target_id=team,
            data=config.BudgetInput(cap_usd="1000000"),
        )
        return team


def one_call(session, team: int) -> None:
    held = reservations.reserve(
        session=session, team_id=team, model="gpt-4.1-mini", max_tokens=300, input_tokens_upper_bound=1000
    )
    settlement.settle(session=session, reservation=held, usage=USAGE)
    session.commit()


def run(url: str, team: int, callers: int, seconds: float) -> float:
    engine = db.get_engine(url)
    counts = [0] * callers
    stop = time.perf_counter() + seconds
    barrier = threading.Barrier(callers)

    def worker(index: int) -> None:
        with db.session(engine) as session:
            barrier.wait()
            while time.perf_counter() < stop:
                one_call(session, team)
                counts[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def bench(url: str, label: str, runs: int, seconds: float) -> None:
    team = prepare(url)
    for callers in (1, 16):
        figures = [run(url, team, callers, seconds) for _ in range(runs)]
        print(
            f"{label:<10} {callers:>2} caller(s): median {statistics.median(figures):7.0f} reserve+settle/s "
            f"(runs: {', '.join(f'{f:.0f}' for f in figures)})",
            flush=True,
        )
    db.dispose_engines()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="Database to use (default: a temporary SQLite file).")
    parser.add_argument("--both", action="store_true", help="Also run on a temporary SQLite file first.")
    parser.add_argument("--runs", type=int, default=3, help="Runs per setting (the median is quoted).")
    parser.add_argument("--seconds", type=float, default=3.0, help="Length of each run in seconds.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.both or not args.database_url:
            bench(sqlite_url, "SQLite", args.runs, args.seconds)
        if args.database_url:
            bench(args.database_url, "PostgreSQL", args.runs, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
