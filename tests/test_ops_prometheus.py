"""A real Prometheus scrapes `quorum gateway serve --workers 2`: what it stores equals the call log.

Prometheus is Debian's package (`apt-get install prometheus`, as .ci/run does), started by
the test on a free port with its own storage, scraping every second. Two worker processes
answer the calls and the scrapes in turn, so the counts it sees are the sum of both.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter

import httpx
import pytest

from core.gateway import policies
from core.identity import keys
from core.identity.people import team_by_name
from core.models.gateway import GatewayCall
from core.permissions import Actor
from tests.ops_support import call_log
from tests.scale_out_support import GatewayServer, Simulator, free_port, wait_listening

ADMIN = Actor.system("test")
PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="Prometheus is not installed (apt-get install prometheus)"),
]
ANSWERED, BLOCKED = 24, 4
SECRET = "sk-proj-" + "Q7" * 22


class Prometheus:
    """Prometheus on a free port, scraping `target` every second, storing in `tmp_path`."""

    def __init__(self, tmp_path, target: str) -> None:
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: quorum\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.process, "prometheus")

    def query(self, expression: str) -> dict[tuple[tuple[str, str], ...], float]:
        answer = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": expression}, timeout=10)
        assert answer.status_code == 200, answer.text
        return {
            tuple(sorted(item["metric"].items())): float(item["value"][1]) for item in answer.json()["data"]["result"]
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def test_prometheus_counts_what_the_call_log_holds(session, directory, tmp_path):
    team = team_by_name(session, "Support").id
    policies.set_team_policy(session=session, actor=ADMIN, team_id=team, pii_action="redact", moderation="off")
    key = keys.create_key(session=session, actor=ADMIN, team_id=team, label="prometheus").secret
    upstream = Simulator(latency_ms=5)
    counts = tmp_path / "metrics"  # where each worker keeps its counts
    server = GatewayServer(workers=2, simulator=upstream, PROMETHEUS_MULTIPROC_DIR=str(counts))
    prometheus = Prometheus(tmp_path, f"127.0.0.1:{server.port}")
    try:
        # A connection per call, so that the kernel hands calls to both workers.
        headers = {"authorization": f"Bearer {key}", "connection": "close"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            for number in range(ANSWERED + BLOCKED):
                content = f"Call {number}: tell me about ships." if number >= BLOCKED else f"Is {SECRET} valid?"
                model = "gpt-4o-mini" if number % 3 else "gpt-4.1-mini"
                body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": content}]}
                answer = http.post("/v1/chat/completions", json=body)
                assert answer.status_code == (200 if number >= BLOCKED else 400), answer.text
        logged = call_log(session, GatewayCall.model, GatewayCall.status)
        assert sum(calls for calls, *_ in logged.values()) == ANSWERED + BLOCKED

        # Until a scrape after the last call is stored (both workers answer scrapes in turn).
        deadline = time.monotonic() + 60
        while sum(prometheus.query("sum(quorum_gateway_calls_total)").values()) < ANSWERED + BLOCKED:
            assert time.monotonic() < deadline, "Prometheus never saw every call"
            time.sleep(0.5)

        calls = prometheus.query("sum by (team, model, outcome) (quorum_gateway_calls_total)")
        assert _keyed(calls, "team", "model", "outcome") == Counter({key: values[0] for key, values in logged.items()})
        per_model = call_log(session, GatewayCall.model)
        for expression, index in (
            ('sum by (team, model) (quorum_gateway_tokens_total{kind="input"})', 1),
            ('sum by (team, model) (quorum_gateway_tokens_total{kind="output"})', 2),
            ("sum by (team, model) (quorum_gateway_cost_microdollars_total)", 3),
        ):
            assert _keyed(prometheus.query(expression), "team", "model") == +Counter(
                {key: values[index] for key, values in per_model.items()}
            ), expression
        assert _keyed(prometheus.query("sum by (team) (quorum_gateway_guardrail_blocks_total)"), "team") == {
            ("Support",): BLOCKED
        }
        assert prometheus.query("sum(quorum_gateway_added_latency_seconds_count)") == {(): ANSWERED + BLOCKED}
        assert prometheus.query("sum(up)") == {(): 1.0}
        # Both workers counted calls, and every scrape (of one worker or the other) summed them.
        assert len(list(counts.glob("counter_*.db"))) == 2
    finally:
        prometheus.stop()
        server.stop()
        upstream.stop()


def _keyed(result, *names: str) -> Counter:
    return +Counter({tuple(dict(labels)[n] for n in names): int(value) for labels, value in result.items()})
