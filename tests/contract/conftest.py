"""The contract suite's servers: Quorum as `quorum run` starts it, in front of two upstreams.

`quorum` is module-scoped and parametrized: every contract test runs once against Quorum
with its built-in simulator, and once against Quorum whose upstream (``OPENAI_BASE_URL``,
``OPENAI_API_KEY`` of a dummy value) is llm-mock-api, an OpenAI-compatible mock server
from PyPI that Quorum did not write (offline, canned answers, Chat Completions and the
Responses API; no embeddings, moderations or stored responses). Both servers use one
seeded database (see seed_server.py); the third-party run calls as a team whose
moderation policy is off, because that upstream has no moderation endpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from core.models.gateway import GatewayCall
from core.settings import PROJECT_ROOT

SIMULATOR, THIRD_PARTY = "simulator", "llm-mock-api"
# Canned answers of the third-party server, matched on the last user message.
MOCK_RULES = {
    "rules": [
        {"when": "weather", "reply": {"tools": [{"name": "get_weather", "args": {"city": "Paris"}}]}},
        {"when": "long story", "reply": "Once upon a time there was a very long story about tea. " * 12},
    ]
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    upstream: str
    base_url: str  # Quorum's /v1
    keys: dict[str, str]  # team -> key secret: "caller" (moderation as the run needs), "legal", "data"
    engine: Engine = field(repr=False)

    @property
    def third_party(self) -> bool:
        return self.upstream == THIRD_PARTY

    def call_row(self, request_id: str, seconds: float = 10.0) -> GatewayCall:
        """The call's log row, waiting for a stream the client left to be settled."""
        deadline = time.monotonic() + seconds
        table = GatewayCall.__table__
        while True:
            with self.engine.connect() as connection:
                row = connection.execute(select(table).where(table.c.request_id == request_id)).first()
            if row is not None or time.monotonic() > deadline:
                assert row is not None, f"no call row for {request_id}"
                return row
            time.sleep(0.05)


def _database_url(tmp: Path) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return f"sqlite:///{tmp / 'contract.db'}"
    base, name = url.rsplit("/", 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    contract_name = f"{name}_contract{('_' + worker) if worker else ''}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{contract_name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{contract_name}"')
    admin.dispose()
    return f"{base}/{contract_name}"


@pytest.fixture(scope="session")
def contract_servers(tmp_path_factory) -> Iterator[dict[str, Running]]:
    """One seeded database, the mock server and both Quorum servers, started side by side
    (each takes seconds to come up) and stopped at the end of the run."""
    tmp = tmp_path_factory.mktemp("contract")
    url = _database_url(tmp)
    env = {**os.environ, "DATABASE_URL": url, "QUORUM_DEMO": "1", "QUORUM_SECRETS_FILE": str(tmp / "none.toml")}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    processes: list[subprocess.Popen] = []
    logs = {name: tmp / f"{name}.log" for name in (SIMULATOR, THIRD_PARTY, "mock")}
    mock_port, ports = free_port(), {SIMULATOR: free_port(), THIRD_PARTY: free_port()}
    rules = tmp / "rules.json5"
    rules.write_text(json.dumps(MOCK_RULES))
    engine = create_engine(url)
    try:
        processes.append(
            _start(
                [
                    sys.executable,
                    "-m",
                    "llm_mock_api.cli",
                    "start",
                    "-p",
                    str(mock_port),
                    "-H",
                    "127.0.0.1",
                    "-r",
                    str(rules),
                    "-l",
                    "20",
                    "-c",
                    "12",
                    "-f",
                    "A canned answer from the mock server.",
                    "--log-level",
                    "error",
                ],
                env,
                logs["mock"],
            )
        )
        seeded = subprocess.run(
            [sys.executable, "-m", "tests.contract.seed_server"],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        keys = json.loads(seeded.stdout.strip().splitlines()[-1])["keys"]
        upstream = {
            SIMULATOR: {},
            THIRD_PARTY: {
                "OPENAI_API_KEY": "dummy-upstream-key",
                "OPENAI_BASE_URL": f"http://127.0.0.1:{mock_port}/v1",
            },
        }
        for name in (SIMULATOR, THIRD_PARTY):
            processes.append(
                _start(
                    [
                        sys.executable,
                        "-m",
                        "pages.ui.server",
                        "run",
                        "app.py",
                        "--server.port",
                        str(ports[name]),
                        "--server.address",
                        "127.0.0.1",
                        "--server.headless",
                        "true",
                    ],
                    {**env, **upstream[name]},
                    logs[name],
                )
            )
        _wait_for(f"http://127.0.0.1:{mock_port}/v1/chat/completions", processes[0], logs["mock"], method="POST")
        for index, name in enumerate((SIMULATOR, THIRD_PARTY), start=1):
            _wait_for(f"http://127.0.0.1:{ports[name]}/healthz", processes[index], logs[name])
        # The third-party run calls as Marketing, whose moderation needs no upstream endpoint.
        callers = {SIMULATOR: keys["support"], THIRD_PARTY: keys["marketing"]}
        yield {
            name: Running(
                name,
                f"http://127.0.0.1:{ports[name]}/v1",
                {"caller": callers[name], "legal": keys["legal"], "data": keys["data"]},
                engine,
            )
            for name in (SIMULATOR, THIRD_PARTY)
        }
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)
        engine.dispose()
    for name in (SIMULATOR, THIRD_PARTY):
        assert "Traceback" not in logs[name].read_text(), logs[name].read_text()[-3000:]


@pytest.fixture(scope="module", params=[SIMULATOR, THIRD_PARTY])
def quorum(request, contract_servers) -> Running:
    return contract_servers[request.param]


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for(url: str, process: subprocess.Popen, log_path: Path, *, method: str = "GET", seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited:\n" + log_path.read_text()[-3000:])
        try:
            httpx.request(method, url, timeout=1, json={"model": "m", "messages": [{"role": "user", "content": "up?"}]})
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n" + log_path.read_text()[-3000:])
