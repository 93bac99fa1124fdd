"""Shared helpers for the gateway tests: a recording simulator and a real HTTP server."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import openai
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette

from core.gateway.adapters import BudgetsGate, CatalogPromptSource
from core.gateway.pipeline import Gateway
from core.gateway.upstream import CircuitBreaker, RetryPolicy, Upstream
from core.gateway.wiring import set_gateway
from core.http.bounded_head import BoundedHeadProtocol
from core.http.routes import http_middleware, http_routes
from core.identity import keys
from core.identity.people import team_by_name
from core.models.gateway import GatewayCall
from core.permissions import Actor
from core.simulator import SIMULATOR_API_KEY, SIMULATOR_BASE_URL, SimulatorConfig, SimulatorTransport


class RecordingTransport(SimulatorTransport):
    """The in-process simulator, remembering every request it received (path, body bytes)."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config)
        self.received: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.received.append((request.url.path, request.read()))
        return super().handle_request(request)

    def bodies(self, path: str) -> list[bytes]:
        return [body for p, body in self.received if p.endswith(path)]


def make_gateway(transport: RecordingTransport, *, attempts: int = 3, breaker=None) -> Gateway:
    client = openai.OpenAI(
        base_url=SIMULATOR_BASE_URL,
        api_key=SIMULATOR_API_KEY,
        max_retries=0,
        timeout=5,
        http_client=httpx.Client(transport=transport),
    )
    upstream = Upstream(
        client,
        name="test-simulator",
        simulated=True,
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.001, max_delay_s=0.01),
        breaker=breaker or CircuitBreaker(),
        seed=1,
    )
    return Gateway(upstream=upstream, prompts=CatalogPromptSource(), budget=BudgetsGate())


class Server:
    """Quorum's HTTP routes served by uvicorn on a free port, in a thread."""

    def __init__(self, extra_routes=(), *, proxy_headers: bool = False) -> None:
        """``extra_routes``: mounted after Quorum's, as the dashboard's are in the real app."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # proxy_headers off, as `quorum run` serves (pages.ui.server): Quorum reads forwarding headers itself.
        config = uvicorn.Config(
            Starlette(routes=[*http_routes(), *extra_routes], middleware=http_middleware()),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            proxy_headers=proxy_headers,
            http=BoundedHeadProtocol,  # as both of Quorum's servers read requests
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


# ---- helpers of the HTTP tests (their fixtures server, sim and gateway are in conftest.py) ----

ADMIN = Actor.system("test")
MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "What are your opening hours?"}]


def use(gateway_obj):
    set_gateway(gateway_obj)
    return gateway_obj


def team_id(session, name="Support"):
    return team_by_name(session, name).id


def new_key(session, team="Support", **options):
    return keys.create_key(session=session, actor=ADMIN, team_id=team_id(session, team), **options)


def client(server, key, **options) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url, api_key=key.secret if hasattr(key, "secret") else key, max_retries=0, **options
    )


def calls(session) -> list[GatewayCall]:
    session.rollback()
    return list(session.exec(select(GatewayCall).order_by(GatewayCall.id)).scalars())
