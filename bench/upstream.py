"""The upstream client's own CPU per call: the SDK's POST, its HTTP client with the request built once, and the wire.

    python bench/upstream.py [-n 2000] [--rounds 3]

The simulator serves in its own process with no latency (`quorum simulator serve
--latency-ms 0`), so what is timed is this process's CPU (`time.process_time`) per
non-streamed chat call: the SDK's generic `client.post()`, `DirectPost` on the SDK's HTTP
client (the path a call takes where the wire is not used: test transports, proxies), and
`DirectPost` on `core.gateway.wire`'s own sockets (the proxy path's default). The three
alternate in rounds, so the machine's noise falls on all of them alike; medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway import _free_port, _wait  # noqa: E402 - the bench's own helpers

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Opening hours on Saturday?"}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="Calls per path and round (default 2000).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per path (default 3).")
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1:
        parser.error("-n and --rounds must be at least 1")

    import httpx
    import openai

    from core.gateway.direct_post import DirectPost

    port = _free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "core.cli.main", "simulator", "serve", "--port", str(port), "--latency-ms", "0"],
        cwd=ROOT,
    )
    try:
        _wait(port, simulator)
        url = f"http://127.0.0.1:{port}/v1"

        def client() -> openai.OpenAI:
            return openai.OpenAI(base_url=url, api_key="sk-sim", max_retries=0, timeout=30)

        sdk = client()
        library = DirectPost.for_client(client())
        wire = DirectPost.for_client(client())
        assert library is not None and wire is not None and wire._wire is not None
        library._wire = None  # the same poster, sending through the SDK's HTTP client

        paths = {
            "SDK client.post()": lambda: sdk.post("/chat/completions", body=BODY, cast_to=httpx.Response).content,
            "DirectPost, the SDK's HTTP client": lambda: library.post("/chat/completions", BODY).content,
            "DirectPost, the wire": lambda: wire.post("/chat/completions", BODY).content,
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for call in paths.values():  # warm-up: connections open, requests built
            for _ in range(200):
                call()
        for _ in range(args.rounds):
            for name, call in paths.items():
                started = time.process_time()
                for _ in range(args.n):
                    call()
                samples[name].append((time.process_time() - started) / args.n * 1000)
    finally:
        simulator.terminate()
        simulator.wait(10)
    base = statistics.median(samples["SDK client.post()"])
    print(f"upstream client CPU per call (this process), n={args.n} x {args.rounds} rounds, median")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:<36} {median:6.3f} ms  ({median / base:4.2f} of the SDK's)")


if __name__ == "__main__":
    main()
