"""Gateway overhead and throughput, each figure beside the direct path's in the same run.

The same calls go to the upstream directly, through the in-process pipeline, and through
Quorum's HTTP endpoint (all with the official openai SDK).

    python bench/gateway.py [-n 300] [--callers 8,32] [--workers 2] [--upstream-ms 5]
                            [--postgres postgresql+psycopg://...] [--api chat|responses]

The upstream is the simulator in its own process (`quorum simulator serve --latency-ms 5`,
an OpenAI-compatible server), and Quorum's servers are started as an operator starts them,
each in processes of their own, so the benchmark client shares a GIL with none of them:
`quorum run` (Streamlit's server with the dashboard, one process) and `quorum gateway serve
--workers N` (the gateway alone, N processes over one database). With ``--postgres`` the
same is measured on PostgreSQL as well (that database is emptied first).

The sequential pairs are measured a second time while another thread scrapes /metrics every
50 ms, and the metrics hook's own cost per call is printed at the end: it runs in every
Quorum call measured here (core.gateway.settle calls it after each commit).

Every figure is printed beside the direct path measured in the same run, and their ratio.
Sequential latency: the paths are called in turn, call by call, so the machine's noise falls
on all of them alike; "added" is the median of each call's difference to the direct call
made just before it. Throughput: the paths run in alternating rounds of `n` calls each.
CPU per call: user+system time of the server's processes over the throughput rounds, beside
the simulator's own; and the whole machine's, by part (this benchmark's client, the
upstream, the gateway, and PostgreSQL's processes when it runs on this machine), since on a
small machine their sum bounds the calls per second of every path. The gateway is the real
one: catalog, budgets (a team budget, so every call reserves and settles against it),
guardrails, the ledger and the audit chain. The team's moderation is off (a moderation call
is a second upstream call, not gateway overhead); distinct prompts per call, so the cache
never answers (a hit would flatter us).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TICKS = os.sysconf("SC_CLK_TCK")
ROUNDS = 2  # alternating rounds per path in a throughput run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _pct(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (a server's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants so far."""
    total = 0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


@dataclass
class Setup:
    url: str
    team: int
    key: object  # the created key (its secret for the HTTP client)


def _prepare(url: str) -> Setup:
    """An empty database with the demo directory, a team budget and a key."""
    os.environ["DATABASE_URL"] = url
    from core import db, demo, migrate
    from core.budgets import config
    from core.gateway import policies
    from core.identity import keys
    from core.identity.people import team_by_name
    from core.permissions import Actor
    from core.settings import reset_settings

    reset_settings()
    migrate.recreate(url)
    admin = Actor.system("bench")
    with db.write_session() as session:
        demo.seed_directory(session)
        team = team_by_name(session, "Support").id
        policies.set_team_policy(session=session, actor=admin, team_id=team, pii_action="redact", moderation="off")
        config.set_budget(
            session=session, actor=admin, scope="team", target_id=team, data=config.BudgetInput(cap_usd="1000000")
        )
        key = keys.create_key(session=session, actor=admin, team_id=team, label="bench")
    db.dispose_engines()
    return Setup(url, team, key)


def _server(kind: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    if kind == "run":
        # As `quorum run` serves it: Streamlit's server with its middleware, one process.
        command = [
            sys.executable,
            "-m",
            "pages.ui.server",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "core.cli.main",
            "gateway",
            "serve",
            "--workers",
            str(workers),
            "--port",
            str(port),
        ]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


def _throughput(paths: dict, n: int, callers: int, cpu_of: dict, machine: dict) -> tuple[dict, dict, dict]:
    """Calls/s of each path with `callers` at once, in alternating rounds; CPU ms per call of
    the processes in `cpu_of` (by path) over its rounds; and of each part of the machine in
    `machine` ({part: pid, or None for this process, the client}) over each path's rounds."""
    took = {name: 0.0 for name in paths}
    cpu = {name: 0.0 for name in paths}
    parts = {name: dict.fromkeys(machine, 0.0) for name in paths}

    def part_seconds() -> dict:
        return {part: time.process_time() if pid is None else _cpu_seconds(pid) for part, pid in machine.items()}

    with ThreadPoolExecutor(callers) as pool:
        for name, call in paths.items():  # warm-up: every worker connected, caches filled
            list(pool.map(lambda i: call(f"warm-parallel-{name}-{i}"), range(callers * 4)))
        for round_ in range(ROUNDS):
            for name, call in paths.items():
                before, parts_before = _cpu_seconds(cpu_of[name]), part_seconds()
                started = time.perf_counter()
                list(pool.map(lambda i: call(f"parallel-{round_}-{name}-{i}"), range(n)))
                took[name] += time.perf_counter() - started
                cpu[name] += _cpu_seconds(cpu_of[name]) - before
                for part, seconds in part_seconds().items():
                    parts[name][part] += seconds - parts_before[part]
    calls = n * ROUNDS
    return (
        {name: calls / took[name] for name in paths},
        {name: 1000 * cpu[name] / calls for name in paths},
        {name: {part: 1000 * seconds / calls for part, seconds in found.items()} for name, found in parts.items()},
    )


def _database_pid(url: str) -> int | None:
    """PostgreSQL's main process when it runs on this machine (its processes' CPU is read from
    /proc), else None. SQLite runs inside the gateway's processes."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        parent = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None  # another host's server: its CPU is not this machine's
    finally:
        engine.dispose()
    return parent


def _measure(setup: Setup, *, kind: str, args, sim_url: str, sim_pid: int, sequential: bool) -> dict:
    """Start one Quorum server over `setup`'s database and measure it against the direct path."""
    import openai

    from core.gateway.pipeline import Caller, GatewayRequest
    from core.identity import key_auth

    port = _free_port()
    database_pid = _database_pid(setup.url)
    env = {**os.environ, "DATABASE_URL": setup.url, "OPENAI_API_KEY": "sk-sim", "OPENAI_BASE_URL": sim_url}
    server = _server(kind, port, env, args.workers)
    try:
        _wait(port, server)
        upstream_client = openai.OpenAI(base_url=sim_url, api_key="sk-sim", max_retries=0)
        quorum_client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=setup.key.secret, max_retries=0, timeout=60
        )

        def body(i):
            question = f"Question {i}: opening hours?"
            if args.api == "responses":
                return {"model": "gpt-4o-mini", "input": question}
            return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}

        def create(client):
            return client.responses.create if args.api == "responses" else client.chat.completions.create

        paths = {
            "direct": lambda i: create(upstream_client)(**body(i)),
            "http": lambda i: create(quorum_client)(**body(i)),
        }
        found: dict = {}
        if sequential:
            gateway = _gateway(sim_url)
            identity = key_auth.KeyIdentity(key_id=setup.key.key_id, team_id=setup.team, prefix=setup.key.prefix)
            caller = Caller.for_key(identity)
            in_process = {
                "in-process": lambda i: gateway.call(caller=caller, request=GatewayRequest(kind=args.api, body=body(i)))
            }
            ordered = {"direct": paths["direct"], **in_process, "http": paths["http"]}
            for name, fn in ordered.items():
                for i in range(20):  # warm-up
                    fn(f"warm-{name}-{i}")
            samples = {name: [] for name in ordered}
            for i in range(args.n):
                for name, fn in ordered.items():
                    t0 = time.perf_counter()
                    fn(f"{name}-{i}")
                    samples[name].append((time.perf_counter() - t0) * 1000)
            found["sequential"] = samples
            found["scraped"] = _while_scraped(port, {"direct": paths["direct"], "http": paths["http"]}, args.n)
        for callers in args.callers:
            machine = {"client": None, "upstream": sim_pid, "gateway": server.pid}
            if database_pid is not None:
                machine["database"] = database_pid
            found[callers] = _throughput(paths, args.n, callers, {"direct": sim_pid, "http": server.pid}, machine)
        return found
    finally:
        server.terminate()
        server.wait(30)


SCRAPE_EVERY_S = 0.05  # far more often than any Prometheus (15 s by default), so its cost cannot hide


def _while_scraped(port: int, paths: dict, n: int) -> dict:
    """The sequential pairs again while another thread scrapes /metrics every SCRAPE_EVERY_S."""
    import threading

    import httpx

    stop, scrapes = threading.Event(), []

    def scrape() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                client.get(f"http://127.0.0.1:{port}/metrics").raise_for_status()
                scrapes.append(1)
                stop.wait(SCRAPE_EVERY_S)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    samples = {name: [] for name in paths}
    try:
        for i in range(n):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn(f"scraped-{name}-{i}")
                samples[name].append((time.perf_counter() - t0) * 1000)
    finally:
        stop.set()
        scraper.join(30)
    samples["scrapes"] = len(scrapes)
    return samples


def _hook_cost(calls: int = 100_000) -> tuple[float, float]:
    """Microseconds per call of the metrics hook and of the call's log line when logs are text (off)."""
    from core.ops import logs, metrics

    hook = metrics.CallMetrics(key_ids=False)
    row = {"status": "ok", "model": "gpt-4o-mini", "team_id": None, "prompt_name": None, "key_id": 3,
           "input_tokens": 12, "output_tokens": 30, "cost_micro": 27, "cache_hit": False,
           "upstream_ms": 5.2, "latency_ms": 7.9}  # fmt: skip
    started = time.perf_counter()
    for _ in range(calls):
        hook.observe(row)
    observe_us = (time.perf_counter() - started) / calls * 1e6
    started = time.perf_counter()
    for _ in range(calls):
        logs.log_call(row)
    return observe_us, (time.perf_counter() - started) / calls * 1e6


def _gateway(sim_url: str):
    import openai

    from core.gateway.adapters import BudgetsGate, CatalogPromptSource
    from core.gateway.pipeline import Gateway
    from core.gateway.upstream import CircuitBreaker, Upstream

    client = openai.OpenAI(base_url=sim_url, api_key="sk-sim", max_retries=0)
    return Gateway(
        upstream=Upstream(client, name="bench-sim", simulated=True, breaker=CircuitBreaker()),
        prompts=CatalogPromptSource(),
        budget=BudgetsGate(),
    )


def _callers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--callers: {text!r} is not a list of whole numbers like 8,32") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("--callers: give one or more numbers of at least 1, like 8,32")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="Calls per path and round (default 300).")
    parser.add_argument("--callers", type=_callers, default=[8, 32], help="Parallel callers to measure (default 8,32).")
    parser.add_argument("--workers", type=int, default=2, help="Processes of `quorum gateway serve` (default 2).")
    parser.add_argument("--upstream-ms", type=float, default=5.0, help="The simulator's latency in ms (default 5).")
    parser.add_argument(
        "--postgres",
        default=None,
        help="Also measure on this PostgreSQL database (EMPTIED first), e.g. postgresql+psycopg://...",
    )
    parser.add_argument(
        "--api", choices=("chat", "responses"), default="chat", help="Which OpenAI API the calls use (default chat)."
    )
    args = parser.parse_args()
    if args.n < 1 or args.workers < 1:
        parser.error("-n and --workers must be at least 1")
    os.environ.setdefault("QUORUM_DEMO", "1")

    databases = {"SQLite": f"sqlite:///{tempfile.mkdtemp()}/bench.db"}
    if args.postgres:
        databases["PostgreSQL"] = args.postgres
    sim_port = _free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli.main",
            "simulator",
            "serve",
            "--port",
            str(sim_port),
            "--latency-ms",
            str(args.upstream_ms),
        ],
        cwd=ROOT,
    )
    results: dict[tuple[str, str], dict] = {}
    try:
        _wait(sim_port, simulator)
        sim_url = f"http://127.0.0.1:{sim_port}/v1"
        for database, url in databases.items():
            setup = _prepare(url)
            for kind in ("run", "serve"):
                results[database, kind] = _measure(
                    setup,
                    kind=kind,
                    args=args,
                    sim_url=sim_url,
                    sim_pid=simulator.pid,
                    sequential=(database == "SQLite" and kind == "run"),
                )
    finally:
        simulator.terminate()
        simulator.wait(10)
    _print_table(results, args)
    observe_us, log_us = _hook_cost()
    print(f"metrics hook per settled call (in the measured path above): {observe_us:.2f} us; "
          f"its log line with text logs: {log_us:.2f} us")  # fmt: skip


def _print_table(results: dict, args) -> None:
    names = {"run": "quorum run", "serve": f"gateway serve --workers {args.workers}"}
    print(
        f"api: {args.api}, upstream: the simulator at {args.upstream_ms:g} ms, n={args.n} per path and round, "
        f"{os.cpu_count()} cores"
    )
    print(f"{'figure':<62} {'Quorum':>9} {'direct':>9} {'ratio':>6}")

    def line(figure: str, quorum: float, direct: float, note: str = "") -> None:
        print(f"{figure:<62} {quorum:9.2f} {direct:9.2f} {quorum / direct:6.2f}{'  ' + note if note else ''}")

    for (database, kind), found in results.items():
        for callers in args.callers:
            rate, _cpu, _machine = found[callers]
            line(f"{database}, {names[kind]}, {callers} callers (calls/s)", rate["http"], rate["direct"])
    sequential = results["SQLite", "run"].get("sequential")
    if sequential:
        base = sequential["direct"]
        for name, label in (("http", "over HTTP (quorum run)"), ("in-process", "in-process")):
            paired = [v - b for v, b in zip(sequential[name], base)]
            line(
                f"added latency p50 {label}, SQLite, sequential (ms)",
                statistics.median(paired),
                statistics.median(base),
                f"p50 {statistics.median(sequential[name]):.2f} ms, added p95 {_pct(paired, 0.95):.2f} ms",
            )
    scraped = results["SQLite", "run"].get("scraped")
    if scraped:
        paired = [v - b for v, b in zip(scraped["http"], scraped["direct"])]
        line(
            f"added latency p50 over HTTP, /metrics scraped every {SCRAPE_EVERY_S * 1000:g} ms (ms)",
            statistics.median(paired),
            statistics.median(scraped["direct"]),
            f"added p95 {_pct(paired, 0.95):.2f} ms, {scraped['scrapes']} scrapes",
        )
    for (database, kind), found in results.items():
        for callers in args.callers:
            _rate, cpu, _machine = found[callers]
            line(
                f"CPU per call, {names[kind]} processes, {database}, {callers} callers (ms)",
                cpu["http"],
                cpu["direct"],
                "direct: the simulator's own",
            )
    # The whole machine's CPU per call, by part: on 2 cores the client, the upstream and the
    # database share the cores with the gateway, so calls/s is bounded by their sum.
    for (database, kind), found in results.items():
        for callers in args.callers:
            machine = found[callers][2]
            line(
                f"CPU per call, whole machine, {names[kind]}, {database}, {callers} callers (ms)",
                sum(machine["http"].values()),
                sum(machine["direct"].values()),
                "Quorum: " + _parts(machine["http"]) + "; direct: " + _parts(machine["direct"]),
            )


def _parts(found: dict) -> str:
    return ", ".join(f"{part} {ms:.2f}" for part, ms in found.items() if ms >= 0.005)


if __name__ == "__main__":
    main()
