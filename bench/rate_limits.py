"""What rate limits cost a call: the in-process pipeline, a team with limits on its key,
team and people against a team without, calls interleaved one by one so that the
machine's noise falls on both alike.

    python bench/rate_limits.py [-n 400] [--concurrency 8] [--database-url postgresql+psycopg://...]

Both teams have a budget (every call reserves and settles) and moderation off; the
upstream is the simulator in process, so the difference is the admission's transaction.
Limits are set far above what the run sends: nothing is refused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400, help="Calls per team (default 400).")
    parser.add_argument("--database-url", default=None, help="Database (default: a fresh SQLite file).")
    parser.add_argument("--concurrency", type=int, default=8, help="Parallel callers (default 8; 0 skips it).")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("QUORUM_DEMO", "1")

    import httpx
    import openai

    from core import db, demo, migrate
    from core.budgets import config
    from core.gateway import policies
    from core.gateway.adapters import BudgetsGate, CatalogPromptSource
    from core.gateway.pipeline import Caller, Gateway, GatewayRequest
    from core.gateway.upstream import CircuitBreaker, Upstream
    from core.identity import key_auth, keys
    from core.identity.people import team_by_name
    from core.permissions import Actor
    from core.simulator import SIMULATOR_API_KEY, SIMULATOR_BASE_URL, SimulatorTransport

    migrate.recreate(url)
    admin = Actor.system("bench")
    callers = {}
    with db.write_session() as session:
        demo.seed_directory(session)
        for name, limited in (("Support", True), ("Marketing", False)):
            team = team_by_name(session, name).id
            policies.set_team_policy(session=session, actor=admin, team_id=team, pii_action="redact", moderation="off")
            config.set_budget(
                session=session, actor=admin, scope="team", target_id=team, data=config.BudgetInput(cap_usd="1000000")
            )
            if limited:
                high = {"requests": 10**9, "tokens": 10**11}
                policies.set_rate_limits(
                    session=session, actor=admin, team_id=team, limits={"key": high, "team": high, "person": high}
                )
            secret = keys.create_key(session=session, actor=admin, team_id=team, label="bench").secret
            callers["with limits" if limited else "without"] = Caller.for_key(
                key_auth.authenticate(secret, client_ip="127.0.0.1")
            )

    client = openai.OpenAI(
        base_url=SIMULATOR_BASE_URL,
        api_key=SIMULATOR_API_KEY,
        max_retries=0,
        http_client=httpx.Client(transport=SimulatorTransport()),
    )
    gateway = Gateway(
        upstream=Upstream(client, name="bench-sim", simulated=True, breaker=CircuitBreaker()),
        prompts=CatalogPromptSource(),
        budget=BudgetsGate(),
    )

    cpu: dict[str, list[float]] = {path: [] for path in callers}

    def call(path: str, i: int) -> float:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Question {i} of {path}"}]}
        started, cpu_started = time.perf_counter(), time.process_time()
        gateway.call(caller=callers[path], request=GatewayRequest(kind="chat", body={**body, "max_tokens": 50}))
        cpu[path].append((time.process_time() - cpu_started) * 1000)  # whole process: meaningful when sequential
        return (time.perf_counter() - started) * 1000

    for i in range(20):  # warm-up: caches, pools, first windows
        call("with limits", -i), call("without", -i)
    times: dict[str, list[float]] = {path: [] for path in callers}
    for values in cpu.values():
        values.clear()
    for i in range(args.n):
        for path in callers if i % 2 else reversed(list(callers)):
            times[path].append(call(path, i))
    print(f"database: {url.split(':', 1)[0]}; {args.n} sequential calls per team, interleaved")
    for path, values in times.items():
        print(
            f"  {path:12} p50 {statistics.median(values):6.2f} ms, "
            f"CPU {statistics.mean(cpu[path]):5.2f} ms per call (mean; p50 {statistics.median(cpu[path]):5.2f})"
        )
    added = statistics.median(times["with limits"]) - statistics.median(times["without"])
    print(f"  rate limits add {added:+.2f} ms p50 per call (key and team windows)")
    if args.concurrency:
        # Rounds of each team in turn, so that drift in the machine's load falls on both.
        spent = dict.fromkeys(callers, 0.0)
        rounds, per_round = 4, max(1, args.n // 4)
        for r in range(rounds):
            for path in callers:
                started = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(lambda i, p=path: call(p, 10**6 * (r + 1) + i), range(per_round)))
                spent[path] += time.perf_counter() - started
        for path in callers:
            print(f"  {path:12} {rounds * per_round / spent[path]:6.0f} calls/s with {args.concurrency} callers")


if __name__ == "__main__":
    main()
