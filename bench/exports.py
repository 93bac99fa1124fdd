"""How fast exports stream and how much memory they take, on a million audit events.

Builds (or reuses) the audit database of bench/audit.py, then exports every event as CSV and
as JSON Lines to a file, each in a fresh process, and prints rows per second (wall clock and
per CPU-second: on a shared machine the wall clock also counts other processes' turns), the
process's peak RSS (its own high-water mark, imports and connections included) and how far
above its idle RSS the export took it.

Run: python bench/exports.py [--events 1000000] [--db bench/out/audit.db] [--database-url URL]
With --database-url (PostgreSQL), the events are copied there first if it holds fewer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ONE_RUN = r"""
import json, os, sys, time
from core import db, exports
from core.audit import export
from core.audit.query import AuditFilter
from core.permissions import Actor

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def high_water():
    # This process's own peak RSS, exact (no sampling). Not getrusage()'s ru_maxrss: exec() carries
    # over the peak of the process it replaces, here a copy of the (larger) benchmark driver.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def backend_cpu(engine):
    # PostgreSQL builds the lines on backend processes: their CPU is part of the export's cost.
    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        pids = [r[0] for r in conn.exec_driver_sql(query)]
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


url, fmt, out = sys.argv[1:4]
engine = db.get_engine(url)
actor = Actor.system("bench")
with db.session(engine) as session:
    exports.write_file(export.prepare(session=session, actor=actor, filters=AuditFilter(target_id="7"), fmt=fmt), out)
    server = backend_cpu(engine)
    before, warm_peak = rss(), high_water()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak starts again from here: what the export alone adds
    wall, cpu = time.perf_counter(), time.process_time()
    rows = exports.write_file(export.prepare(session=session, actor=actor, filters=AuditFilter(), fmt=fmt), out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = high_water()
    server = backend_cpu(engine) - server
print(json.dumps({
    "rows": rows, "wall": wall, "cpu": cpu, "server": server, "grew_mb": (peak - before) / 2**20,
    "idle_rss_mb": before / 2**20, "peak_rss_mb": max(peak, warm_peak) / 2**20,
    "size_mb": os.path.getsize(out) / 2**20,
}))
"""


def run(url: str, fmt: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ONE_RUN, url, fmt, str(out)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def copy_to(url: str, sqlite_path: Path, count: int) -> None:
    """The SQLite events into the database at `url` (PostgreSQL), once."""
    import sqlite3

    from sqlalchemy import create_engine, text

    from core import migrate

    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        have = conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one()
    if have >= count:
        return
    columns = (
        "seq, event_id, occurred_at, actor, action, target_type, target_id, team_id, before_json, after_json, "
        "prev_hash, hash"
    )
    source = sqlite3.connect(sqlite_path)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_event"))
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
            for row in source.execute(f"SELECT {columns} FROM audit_event ORDER BY seq"):
                copy.write_row((*row[:2], row[2] + "+00", *row[3:]))
        conn.execute(text("ANALYZE audit_event"))
    print(f"copied {count:,} events to {url.rsplit('@', 1)[-1]}")


def count_events(path: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT count(*) FROM audit_event").fetchone()[0]
    except sqlite3.Error:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="How many audit events.")
    parser.add_argument("--db", default=str(ROOT / "bench" / "out" / "audit.db"), help="The SQLite file.")
    parser.add_argument("--database-url", help="Also (only) export from this database, e.g. PostgreSQL.")
    args = parser.parse_args()
    import audit  # bench/audit.py: builds the chained events

    path = Path(args.db)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or count_events(path) != args.events:
        audit.build(path, args.events)
    url = f"sqlite:///{path}"
    if args.database_url:
        copy_to(args.database_url, path, args.events)
        url = args.database_url
    print(f"exports of {args.events:,} audit events from {url.split(':', 1)[0]}; load average {os.getloadavg()[0]:.1f}")
    for fmt in ("csv", "jsonl"):
        r = run(url, fmt, path.parent / f"export.{fmt}")
        print(
            f"  {fmt:<5} {r['rows']:,} rows, {r['size_mb']:,.0f} MB: {r['rows'] / r['wall']:,.0f} rows/s "
            f"({r['rows'] / (r['cpu'] + r.get('server', 0)):,.0f} per CPU-second = "
            f"{(r['cpu'] + r.get('server', 0)) / r['rows'] * 1e6:.2f} CPU-µs per row"
            + (f", of which the database {r['server']:.2f} s" if r.get("server") else "")
            + f", load average {os.getloadavg()[0]:.1f}); peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(idle {r['idle_rss_mb']:.0f} MB, the export's peak {r['grew_mb']:.1f} MB above it)"
        )


if __name__ == "__main__":
    main()
