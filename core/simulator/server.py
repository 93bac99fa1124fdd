"""The simulator over HTTP: a Starlette app serving OpenAI's paths, and ``serve``.

Point any OpenAI client at ``http://127.0.0.1:8800/v1``. The app carries out the same
plans as the in-process transport (see ``exchange``), so latency, faults, headers and
bodies are identical whichever way a test or demo reaches the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from core.simulator.exchange import PlannedReply, plan_reply
from core.simulator.faults import SimulatorConfig

# How often a hanging reply checks whether the client has already given up.
_HANG_POLL_S = 0.05


class SimulatedDisconnect(Exception):
    """Raised inside a streamed body to cut the connection (the ``drop_stream`` fault)."""


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """A Starlette app answering ``/v1/...`` like OpenAI, with ``config``'s latency and faults.

    The config is kept on ``app.state.simulator_config`` so callers can read its counters.
    """
    config = config or SimulatorConfig()

    async def endpoint(request: Request) -> Response:
        planned = plan_reply(config, request.method, request.url.path, await request.body())
        await anyio.sleep(planned.delay_s)
        if planned.hang_s and await _client_left_during(request, planned.hang_s):
            return Response(status_code=499)  # nobody is listening any more
        if planned.drop_after is None and not planned.is_stream:
            return Response(b"".join(planned.parts), status_code=planned.status, headers=planned.headers)
        return StreamingResponse(_parts(planned), status_code=planned.status, headers=planned.headers)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    app.state.simulator_config = config
    return app


def serve(host: str = "127.0.0.1", port: int = 8800, config: SimulatorConfig | None = None, *, log_level: str = "info") -> None:
    """Run the simulator over HTTP until interrupted (blocks).

    ``host``/``port``: where to listen; the OpenAI base URL is then
    ``http://{host}:{port}/v1``. ``config``: latency and faults (default: none).
    """
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=1)


async def _parts(planned: PlannedReply) -> AsyncIterator[bytes]:
    for index, part in enumerate(planned.parts):
        if index == planned.drop_after:
            raise SimulatedDisconnect("drop_stream fault: connection cut before the end of the body")
        yield part


async def _client_left_during(request: Request, seconds: float) -> bool:
    """Waits ``seconds`` unless the client disconnects first (then returns True)."""
    with anyio.move_on_after(seconds):
        while True:
            if await request.is_disconnected():
                return True
            await anyio.sleep(_HANG_POLL_S)
    return False
