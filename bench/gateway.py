"""Gateway overhead: the same N calls to the simulator directly, through the in-process
pipeline, and through Quorum's HTTP endpoint (all with the official openai SDK).

    python bench/gateway.py [-n 300] [--concurrency 8] [--database-url postgresql+psycopg://...]

The simulator runs in its own process (`quorum simulator serve`) and, for the HTTP path,
Quorum's server in another, started as `quorum run` starts it (Streamlit's server and
middleware, the gateway's upstream pointed at the simulator by OPENAI_BASE_URL), so the
benchmark client shares a GIL with neither.
"added" latency is the difference of medians/p95s against the direct baseline. The
gateway is the real one: catalog prompts, budgets (a team budget, so every call reserves
and settles against it), guardrails and the ledger. The team's moderation is off: a
moderation call is a second upstream call, not gateway overhead. Distinct prompts per
call so that the cache does not answer (a hit would flatter us).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _pct(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="Calls per path (default 300).")
    parser.add_argument("--database-url", default=None, help="Database (default: a fresh SQLite file).")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="Parallel callers of the throughput run (default 8; 0 skips it)."
    )
    parser.add_argument(
        "--api", choices=("chat", "responses"), default="chat", help="Which OpenAI API the calls use (default chat)."
    )
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("QUORUM_DEMO", "1")

    import openai

    from core import db, demo, migrate
    from core.budgets import config
    from core.gateway import policies
    from core.gateway.pipeline import Caller, GatewayRequest
    from core.identity import keys
    from core.identity.people import team_by_name
    from core.permissions import Actor

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

    processes = []
    try:
        sim_port, quorum_port = _free_port(), _free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "core.cli.main", "simulator", "serve", "--port", str(sim_port)], cwd=ROOT
            )
        )
        _wait(sim_port)
        sim_url = f"http://127.0.0.1:{sim_port}/v1"
        # Quorum's server as `quorum run` starts it (Streamlit's server with its middleware),
        # its upstream the simulator's HTTP server as an OpenAI-compatible endpoint.
        server_env = {**os.environ, "OPENAI_API_KEY": "sk-sim", "OPENAI_BASE_URL": sim_url}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pages.ui.server",
                    "run",
                    str(ROOT / "app.py"),
                    "--server.port",
                    str(quorum_port),
                    "--server.address",
                    "127.0.0.1",
                    "--server.headless",
                    "true",
                    "--browser.gatherUsageStats",
                    "false",
                ],
                cwd=ROOT,
                env=server_env,
                stdout=subprocess.DEVNULL,
            )
        )
        _wait(quorum_port)
        upstream_client = openai.OpenAI(base_url=sim_url, api_key="sk-sim", max_retries=0)
        gateway = _gateway(sim_url)
        quorum_client = openai.OpenAI(base_url=f"http://127.0.0.1:{quorum_port}/v1", api_key=key.secret, max_retries=0)
        caller = Caller.for_key(keys.KeyIdentity(key_id=key.key_id, team_id=team, prefix=key.prefix))

        def body(i):
            question = f"Question {i}: opening hours?"
            if args.api == "responses":
                return {"model": "gpt-4o-mini", "input": question}
            return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}

        def create(client):
            return client.responses.create if args.api == "responses" else client.chat.completions.create

        paths = {
            "direct": lambda i: create(upstream_client)(**body(i)),
            "in-process": lambda i: gateway.call(caller=caller, request=GatewayRequest(kind=args.api, body=body(i))),
            "http": lambda i: create(quorum_client)(**body(i)),
        }
        for name, fn in paths.items():
            for i in range(20):  # warm-up
                fn(f"warm-{name}-{i}")
        # Interleaved, one call per path in turn: the machine's noise (other processes, CPU
        # frequency) then falls on every path alike instead of on whichever ran last.
        samples = {name: [] for name in paths}
        cpu = dict.fromkeys(paths, 0.0)  # this thread's CPU per path (the in-process gateway runs here)
        for i in range(args.n):
            for name, fn in paths.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                fn(f"{name}-{i}")
                samples[name].append((time.perf_counter() - t0) * 1000)
                cpu[name] += time.thread_time() - c0
        # Throughput of a path: calls over the time spent in that path's calls.
        timings = {name: (values, 1000 * len(values) / sum(values)) for name, values in samples.items()}
        server_cpu = _cpu_s(processes[1].pid)
        parallel = (
            {name: _parallel_throughput(paths[name], args.n, args.concurrency) for name in ("direct", "http")}
            if args.concurrency > 0
            else {}
        )
        server_cpu = _cpu_s(processes[1].pid) - server_cpu
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
    base = timings["direct"][0]
    print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}, api: {args.api}, n={args.n}")
    for name, (samples, throughput) in timings.items():
        line = (
            f"{name:>10}: p50 {statistics.median(samples):6.2f} ms  p95 {_pct(samples, 0.95):6.2f} ms  "
            f"{throughput:7.1f} calls/s"
        )
        if name != "direct":
            line += (
                f"  | added p50 {statistics.median(samples) - statistics.median(base):5.2f} ms"
                f"  p95 {_pct(samples, 0.95) - _pct(base, 0.95):5.2f} ms"
                f"  throughput ratio {throughput / timings['direct'][1]:.2f}"
            )
        print(line)
    # Each call is paired with the direct call made just before it: the median of those
    # differences is the added latency with the machine's slower drifts taken out.
    targets = {"in-process": 2.0, "http": 5.0}  # ms of p50 added latency, on SQLite
    for name, (values, _throughput) in timings.items():
        if name != "direct":
            paired = [v - b for v, b in zip(values, base)]
            line = f"{name:>10}: paired added p50 {statistics.median(paired):5.2f} ms  p95 {_pct(paired, 0.95):5.2f} ms"
            if not url.startswith("postgresql"):
                met = statistics.median(paired) < targets[name]
                line += f"  (target < {targets[name]:.0f} ms: {'met' if met else 'MISSED'})"
            print(line)

    in_process_cpu = (cpu["in-process"] - cpu["direct"]) * 1000 / args.n
    print(f"CPU per call: in-process gateway {in_process_cpu:.2f} ms (over the direct client's)", end="")
    if parallel:
        print(f", Quorum's server process {server_cpu * 1000 / (args.n + 2 * args.concurrency):.2f} ms (parallel run)")
        print(
            f"{args.concurrency} parallel callers, {args.n} calls each path: direct {parallel['direct']:.0f} calls/s, "
            f"through Quorum's HTTP endpoint {parallel['http']:.0f} calls/s "
            f"(throughput ratio {parallel['http'] / parallel['direct']:.2f})"
        )


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parallel_throughput(call, n: int, concurrency: int) -> float:
    """Calls per second with `concurrency` callers at once (as many applications would call)."""
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: call(f"warm-parallel-{i}"), range(concurrency * 2)))
        started = time.perf_counter()
        list(pool.map(lambda i: call(f"parallel-{i}"), range(n)))
        return n / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
