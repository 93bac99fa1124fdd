"""How fast the audit chain verifies and the audit page queries, on a million events.

Builds a fresh SQLite database (or reuses one built before with the same size), bulk-inserts
events with correctly chained hashes, then prints verification speed (events per second, and
per CPU-second: this process's threads plus, on PostgreSQL, the database's backends) serially,
with ranges in parallel, and incrementally (after a verified checkpoint `--tail` events back),
and the audit page's filtered first-page query time (p50/p95 over several filter combinations).
With `--database-url postgresql+psycopg://...` the same events are copied into that
PostgreSQL database (once) and verified there.

Run: python bench/audit.py [--events 1000000] [--db bench/out/audit.db] [--rebuild]
                           [--database-url URL] [--workers N] [--tail 1000] [--no-queries]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import random
import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from core import db, migrate  # noqa: E402
from core.audit import chain as audit_chain  # noqa: E402
from core.audit import query as audit_query  # noqa: E402
from core.audit import verify as audit_verify  # noqa: E402
from core.audit.query import AuditFilter  # noqa: E402
from core.permissions import Actor  # noqa: E402

ACTIONS = [
    "budget.set",
    "budget.alert.ack",
    "team.create",
    "team.member.add",
    "team.member.remove",
    "person.create",
    "person.role.grant",
    "prompt.version.create",
    "prompt.version.submit",
    "prompt.version.approve",
    "prompt.label.move",
    "key.create",
    "key.rotate",
    "price.set",
    "request.flag.review",
    "retention.policy.set",
    "gateway.call",
    "gateway.call.blocked",
]
# Gateway calls dominate a real log; governance actions are rarer.
WEIGHTS = [2, 1, 0.1, 0.5, 0.3, 0.2, 0.2, 3, 2, 1, 1, 0.2, 0.2, 0.1, 1, 0.1, 80, 5]
SYSTEM = Actor.system("bench")


def build(path: Path, count: int) -> None:
    """Write `count` chained events straight into a fresh database, then build its indexes.

    One transaction of executemany() over precomputed tuples; the indexes (and ANALYZE) come
    after the load, which is far faster than maintaining them row by row. Event ids start
    with the seq (still valid, unique UUIDs) so the event_id unique index grows at its end.
    """
    if path.exists():
        path.unlink()
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db.dispose_engines()
    rng = random.Random(7)
    rand, bits = rng.random, rng.getrandbits
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")  # 400 MB: the index builds sort in memory
    conn.execute("PRAGMA temp_store=MEMORY")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_event' AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("BEGIN")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=365) / count
    prev = audit_chain.GENESIS_HASH
    insert = (
        "INSERT INTO audit_event (seq, event_id, occurred_at, actor, action, target_type, target_id, "
        "team_id, before_json, after_json, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    began = time.perf_counter()
    actions = rng.choices(ACTIONS, WEIGHTS, k=count)
    target_types = {action: action.split(".")[0] for action in ACTIONS}
    payload, sha256, uuid_of = audit_chain.canonical_payload, hashlib.sha256, uuid.UUID
    batch = []
    for seq in range(1, count + 1):
        action = actions[seq - 1]
        team = int(rand() * 20) + 1
        occurred = audit_chain.canonical_time(start + step * seq)
        actor = f"person:{int(rand() * 300) + 1}" if rand() < 0.6 else f"key:{team}"
        target_id = str(int(rand() * 5000) + 1)
        before = None if rand() < 0.3 else f'{{"limit":{int(rand() * 10**6) + 1},"state":"draft"}}'
        after = f'{{"limit":{int(rand() * 10**6) + 1},"model":"gpt-4o-mini","state":"approved"}}'
        event_id = str(uuid_of(int=(seq << 96) | bits(96), version=4))
        row = (event_id, occurred, actor, action, target_types[action], target_id, team, before, after, prev)
        digest = sha256(payload(row).encode()).hexdigest()
        batch.append((seq, *row, digest))
        prev = digest
        if len(batch) == 100_000:
            conn.executemany(insert, batch)
            batch.clear()
    if batch:
        conn.executemany(insert, batch)
    conn.execute(
        "INSERT INTO audit_head (id, seq, head_hash, chain_id) VALUES (1, ?, ?, ?)", (count, prev, str(uuid.uuid4()))
    )
    conn.execute("COMMIT")
    loaded = time.perf_counter()
    for _name, index_sql in indexes:
        conn.execute(index_sql)
    conn.execute("ANALYZE")
    conn.close()
    print(
        f"built {count:,} chained events in {time.perf_counter() - began:.1f} s "
        f"({loaded - began:.1f} s rows, {time.perf_counter() - loaded:.1f} s indexes)"
    )


QUERIES = {
    "no filter": AuditFilter(),
    "action prefix budget.": AuditFilter(action="budget."),
    "exclude gateway.": AuditFilter(action="-gateway."),
    "one actor": AuditFilter(actor="person:42"),
    "team + action": AuditFilter(team_id=7, action="prompt."),
    "target type + id": AuditFilter(target_type="key", target_id="123"),
    "time range (one week)": AuditFilter(
        since=datetime(2025, 6, 1, tzinfo=UTC), until=datetime(2025, 6, 8, tzinfo=UTC)
    ),
    "actor + time range": AuditFilter(
        actor="person:42", since=datetime(2025, 3, 1, tzinfo=UTC), until=datetime(2025, 9, 1, tzinfo=UTC)
    ),
    "free text": AuditFilter(text="approved"),
    "rare action": AuditFilter(action="retention."),
}


def bench_queries(repeats: int) -> None:
    timings: dict[str, list[float]] = {}
    with db.session() as session:
        for name, filters in QUERIES.items():
            for i in range(repeats + 1):
                started = time.perf_counter()
                page = audit_query.search(session, actor=SYSTEM, filters=filters)
                if page.older is not None and i == 0:
                    audit_query.search(session, actor=SYSTEM, filters=filters, before_seq=page.older)
                elapsed = (time.perf_counter() - started) * 1000
                if i:  # the first run warms the page cache
                    timings.setdefault(name, []).append(elapsed)
    every = sorted(t for ts in timings.values() for t in ts)
    for name, ts in timings.items():
        print(f"  {name:<24} median {statistics.median(ts):7.1f} ms")
    p95 = every[int(len(every) * 0.95) - 1]
    print(
        f"audit page query over {len(QUERIES)} filter combinations: p50 {statistics.median(every):.1f} ms, "
        f"p95 {p95:.1f} ms"
    )


def copy_to_postgres(source: Path, url: str, count: int) -> None:
    """Copy the SQLite file's events into the PostgreSQL database at `url` (migrated, emptied first)."""
    import psycopg

    migrate.upgrade(url)
    db.dispose_engines()
    columns = (
        "seq, event_id, occurred_at, actor, action, target_type, target_id, team_id, "
        "before_json, after_json, prev_hash, hash"
    )
    began = time.perf_counter()
    src = sqlite3.connect(source)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        pg.execute("TRUNCATE audit_event, audit_head, audit_checkpoint")
        with pg.cursor().copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
            for row in src.execute(f"SELECT {columns} FROM audit_event ORDER BY seq"):
                copy.write_row((*row[:2], row[2] + "+00", *row[3:]))
        pg.execute(
            "INSERT INTO audit_head (id, seq, head_hash, chain_id) VALUES (1, %s, %s, %s)",
            src.execute("SELECT seq, head_hash, chain_id FROM audit_head").fetchone(),
        )
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE audit_event")
    print(f"copied {count:,} events into PostgreSQL in {time.perf_counter() - began:.1f} s")


def _backend_cpu(engine) -> float:
    """CPU seconds used so far by this database's PostgreSQL backends (on this host), or by the
    verifier's worker processes on SQLite."""
    if engine.dialect.name != "postgresql":
        try:
            from core.audit.range_processes import worker_pids
        except ImportError:  # before ranges were checked in processes
            return 0.0
        return _cpu_of(worker_pids())
    with engine.connect() as conn:
        pids = [
            r[0] for r in conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ]
    return _cpu_of(pids)


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user and system) used so far by the processes `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def bench_verify(engine, label: str, **options) -> None:
    accepted = inspect.signature(audit_verify.verify_chain).parameters
    if options == {"workers": 1} and "workers" not in accepted:
        options = {}  # before parallel ranges, the walk was serial
    if any(name not in accepted for name in options):
        print(f"{label}: not available in this version")
        return
    with db.session(engine) as session:
        audit_verify.verify_chain(session=session, actor=SYSTEM, **options)  # warm: page cache, pooled connections
        server = _backend_cpu(engine)
        started, cpu = time.perf_counter(), time.process_time()
        result = audit_verify.verify_chain(session=session, actor=SYSTEM, **options)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        server = _backend_cpu(engine) - server
    assert result.ok, result.lines()[:5]
    # CPU time too: on a shared machine the wall clock also counts other processes' turns.
    where = "the database" if engine.dialect.name == "postgresql" else "worker processes"
    database = f", of which {where} {server:.2f} s" if server else ""
    if getattr(result, "ranges", 0):
        label += f" ({result.ranges} ranges)"
    print(
        f"{label}: {result.events:,} events in {elapsed * 1000:,.0f} ms = {result.events / elapsed:,.0f} events/s "
        f"({result.events / (cpu + server):,.0f} events per CPU-second = {(cpu + server) / result.events * 1e6:.2f} "
        f"CPU-µs per event{database}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def bench_incremental(engine, workers: int, tail: int) -> None:
    """Time incremental verification with `tail` events after a verified checkpoint (removed afterwards)."""
    from core.audit import checkpoints as audit_checkpoints
    from core.settings import reset_settings

    if "incremental" not in inspect.signature(audit_verify.verify_chain).parameters:
        print("incremental: not available in this version")
        return
    out = Path(__file__).resolve().parent / "out" / "checkpoints"
    os.environ["QUORUM_AUDIT_SIGNING_KEY"] = hashlib.sha256(b"quorum bench only").hexdigest()
    os.environ["QUORUM_AUDIT_CHECKPOINT_DIR"] = str(out)
    reset_settings()
    try:
        with db.session(engine) as session:
            last = session.execute(text("SELECT MAX(seq) FROM audit_event")).scalar()
            seq = last - tail
            anchor = session.execute(text(f"SELECT hash FROM audit_event WHERE seq = {seq}")).scalar()
            audit_checkpoints.sign_head(session=session, seq=seq, head_hash=anchor, verified=True)
        bench_verify(
            engine, f"incremental, {tail:,} events after the verified checkpoint", incremental=True, workers=workers
        )
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_checkpoint")
        if audit_checkpoints.checkpoint_file().exists():
            audit_checkpoints.checkpoint_file().unlink()
        for name in ("QUORUM_AUDIT_SIGNING_KEY", "QUORUM_AUDIT_CHECKPOINT_DIR"):
            os.environ.pop(name, None)
        reset_settings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="How many events to build.")
    parser.add_argument(
        "--db", default=str(Path(__file__).resolve().parent / "out" / "audit.db"), help="SQLite file to build."
    )
    parser.add_argument("--rebuild", action="store_true", help="Build again even if the file exists.")
    parser.add_argument("--repeats", type=int, default=10, help="Runs per filter combination.")
    parser.add_argument("--database-url", help="Verify in this PostgreSQL database (the events are copied there).")
    parser.add_argument("--workers", type=int, default=2, help="Workers of the parallel verification (default 2).")
    parser.add_argument("--tail", type=int, default=1000, help="Events after the verified checkpoint (incremental).")
    parser.add_argument("--no-queries", action="store_true", help="Skip the audit page's query timings.")
    args = parser.parse_args()
    path = Path(args.db)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    if args.rebuild or not path.exists() or _count(path) != args.events:
        build(path, args.events)
    if args.database_url:
        url = args.database_url
        with db.get_engine(url).connect() as conn:
            present = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'audit_event'"
            ).scalar()
            count = conn.exec_driver_sql("SELECT COUNT(*) FROM audit_event").scalar() if present else -1
        if args.rebuild or count != args.events:
            copy_to_postgres(path, url, args.events)
    engine = db.get_engine(url)
    print(f"{engine.dialect.name}, {args.events:,} events, {os.cpu_count()} cores")
    bench_verify(engine, "serial walk", workers=1)
    bench_verify(engine, f"{args.workers} workers", workers=args.workers)
    bench_incremental(engine, args.workers, args.tail)
    if args.no_queries:
        return
    os.environ["DATABASE_URL"] = url
    from core.settings import reset_settings

    reset_settings()
    bench_queries(args.repeats)


def _count(path: Path) -> int:
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT COUNT(*) FROM audit_event").fetchone()[0]
    except sqlite3.Error:
        return -1


if __name__ == "__main__":
    main()
