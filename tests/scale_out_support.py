"""Gateway processes for the scale-out tests: `quorum gateway serve` and the simulator, as
an operator starts them, and callers that hammer them over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from core.cli.main import main
from core.settings import PROJECT_ROOT
from core.simulator import SimulatorConfig
from core.simulator.server import create_app

START_TIMEOUT_S = 60  # a shared 2-core machine can take long to import and migrate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quorum_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli.main", *args]


def wait_listening(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


class Simulator:
    """The simulator's HTTP server with a fixed latency, in a thread of the test process: the
    gateway processes reach it over HTTP as they would reach OpenAI."""

    def __init__(self, latency_ms: float) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(SimulatorConfig(latency_ms=latency_ms)), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class GatewayServer:
    """`quorum gateway serve --workers N` over the test's database, its upstream `simulator`."""

    def __init__(self, *, workers: int, simulator: Simulator, **settings: str) -> None:
        self.port = free_port()
        self.workers = workers
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-simulator",
            "OPENAI_BASE_URL": simulator.base_url,
            "QUORUM_UPSTREAM_MAX_ATTEMPTS": "1",
            **settings,
        }
        self.process = subprocess.Popen(
            quorum_command("gateway", "serve", "--workers", str(workers), "--port", str(self.port)),
            cwd=PROJECT_ROOT,
            env=env,
        )
        wait_listening(self.port, self.process, "quorum gateway serve")
        self.wait_for_workers(workers)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        """The serving processes (uvicorn's supervisor starts them with multiprocessing's spawn)."""
        if self.workers == 1:
            return [self.process.pid]
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def busiest_worker(self) -> int:
        """The worker process holding the most client connections: the operating system hands
        each new connection to whichever worker accepts first, so under load one worker may
        hold them all, and killing the other would cut no call."""
        held = {pid: len(_socket_inodes(pid) & _established_on(self.port)) for pid in self.worker_pids()}
        return max(held, key=lambda pid: held[pid])

    def wait_for_workers(self, count: int) -> None:
        """Until `count` worker processes exist and the server answers /healthz."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if len(self.worker_pids()) >= count:
                try:
                    if httpx.get(f"{self.base_url}/healthz", timeout=5).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"quorum gateway serve did not start {count} workers")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(10)


@dataclass
class Outcome:
    """One call as the client saw it."""

    sent: float
    received: float
    status: int | None  # None: no answer (the connection broke)
    request_id: str | None = None
    message: str = ""


@dataclass
class Callers:
    """``count`` callers, each on its own kept-alive connection, calling until told to stop
    (or, with ``until_refused``, until its first 429), at most ``max_calls`` times each."""

    base_url: str
    key: str
    count: int
    max_tokens: int = 16
    until_refused: bool = False
    max_calls: int = 1_000_000
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> Callers:
        self.start()
        return self.join()

    def start(self) -> Callers:
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(self.count)
        self._threads = [threading.Thread(target=self._caller, args=(n,), daemon=True) for n in range(self.count)]
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 120) -> Callers:
        for thread in self._threads:
            thread.join(timeout)
        return self

    def answered(self) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.status == 200]

    def _caller(self, number: int) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as client:
            self._barrier.wait()
            attempt = 0
            while not self.stop.is_set() and attempt < self.max_calls:
                attempt += 1
                body = {
                    "model": "gpt-4o-mini",
                    "max_tokens": self.max_tokens,
                    "messages": [{"role": "user", "content": f"Caller {number}, call {attempt}: tell me about ships."}],
                }
                sent = time.monotonic()
                try:
                    response = client.post("/v1/chat/completions", json=body)
                except httpx.HTTPError as error:  # the process serving it was killed
                    outcome = Outcome(sent, time.monotonic(), None, message=type(error).__name__)
                else:
                    message = response.json().get("error", {}).get("message", "") if response.status_code != 200 else ""
                    outcome = Outcome(
                        sent, time.monotonic(), response.status_code, response.headers.get("x-request-id"), message
                    )
                with self._lock:
                    self.outcomes.append(outcome)
                if self.until_refused and outcome.status == 429:
                    return
                if outcome.status not in (200, 429, None):
                    return  # reported by the test


def audit_verify(capsys) -> tuple[int, str]:
    """`quorum audit verify` as an auditor runs it: its exit code and what it printed."""
    capsys.readouterr()
    code = main(["audit", "verify", "--no-checkpoint"])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of a process's open sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _established_on(port: int) -> set[str]:
    """The inodes of the established TCP connections whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes
