"""Gateway overhead: the same N calls to the simulator directly, through the in-process
pipeline, and through Quorum's HTTP endpoint (all with the official openai SDK).

    python bench/gateway.py [-n 300] [--database-url postgresql+psycopg://...]

The simulator is served over HTTP (uvicorn) so the direct baseline pays a real HTTP hop
too; "added" latency is the difference of medians/p95s against that baseline. The team's
moderation is off: a moderation call is a second upstream call, not gateway overhead.
Distinct prompts per call so that the cache does not answer (a hit would flatter us).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app) -> tuple[str, object]:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/v1", server


def _pct(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="Calls per path (default 300).")
    parser.add_argument("--database-url", default=None, help="Database (default: a fresh SQLite file).")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("QUORUM_DEMO", "1")

    import openai
    from starlette.applications import Starlette

    from core import db, demo, keys, migrate
    from core.gateway import policies, wiring
    from core.gateway.pipeline import Caller, Gateway, GatewayRequest
    from core.gateway.ports import FilePromptSource, UnlimitedBudgetGate
    from core.gateway.upstream import CircuitBreaker, Upstream
    from core.http.routes import http_routes
    from core.permissions import Actor
    from core.settings import PROJECT_ROOT
    from core.simulator.server import create_app

    if url.startswith("postgresql"):
        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    migrate.upgrade(url)
    admin = Actor.system("bench")
    with db.write_session() as session:
        demo.seed_directory(session)
        from core.identity import team_by_name

        team = team_by_name(session, "Support").id
        policies.set_team_policy(session=session, actor=admin, team_id=team, pii_action="redact", moderation="off")
        key = keys.create_key(session=session, actor=admin, team_id=team, label="bench")

    sim_url, _sim = _serve(create_app())
    upstream_client = openai.OpenAI(base_url=sim_url, api_key="sk-sim", max_retries=0)
    gateway = Gateway(upstream=Upstream(upstream_client, name="bench-sim", simulated=True, breaker=CircuitBreaker()),
                      prompts=FilePromptSource(PROJECT_ROOT / "prompts"), budget=UnlimitedBudgetGate())
    wiring.set_gateway(gateway)
    quorum_url, _quorum = _serve(Starlette(routes=http_routes()))
    quorum_client = openai.OpenAI(base_url=quorum_url, api_key=key.secret, max_retries=0)
    caller = Caller.for_key(keys.KeyIdentity(key_id=key.key_id, team_id=team, prefix=key.prefix))

    def body(i):
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question {i}: opening hours?"}]}

    paths = {
        "direct": lambda i: upstream_client.chat.completions.create(**body(i)),
        "in-process": lambda i: gateway.call(caller=caller, request=GatewayRequest(kind="chat", body=body(i))),
        "http": lambda i: quorum_client.chat.completions.create(**body(i)),
    }
    timings = {}
    for name, fn in paths.items():
        for i in range(20):  # warm-up
            fn(f"warm-{name}-{i}")
        samples = []
        started = time.perf_counter()
        for i in range(args.n):
            t0 = time.perf_counter()
            fn(f"{name}-{i}")
            samples.append((time.perf_counter() - t0) * 1000)
        timings[name] = (samples, args.n / (time.perf_counter() - started))
    base = timings["direct"][0]
    print(f"database: {'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}, n={args.n}")
    for name, (samples, throughput) in timings.items():
        line = (f"{name:>10}: p50 {statistics.median(samples):6.2f} ms  p95 {_pct(samples, 0.95):6.2f} ms  "
                f"{throughput:7.1f} calls/s")
        if name != "direct":
            line += (f"  | added p50 {statistics.median(samples) - statistics.median(base):5.2f} ms"
                     f"  p95 {_pct(samples, 0.95) - _pct(base, 0.95):5.2f} ms"
                     f"  throughput ratio {throughput / timings['direct'][1]:.2f}")
        print(line)


if __name__ == "__main__":
    main()
