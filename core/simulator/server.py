"""The simulator over HTTP: a Starlette app serving OpenAI's paths, and ``serve``.

Point any OpenAI client at ``http://127.0.0.1:8800/v1``. The app carries out the same
plans as the in-process transport (see ``exchange``), so latency, faults, headers and
bodies are identical whichever way a test or demo reaches the simulator.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from core.simulator.exchange import PlannedReply, plan_reply
from core.simulator.faults import SimulatorConfig

log = logging.getLogger(__name__)

# How often a hanging reply checks whether the client has already given up.
_HANG_POLL_S = 0.05


class SimulatedDisconnect(Exception):
    """Raised inside a streamed body to cut the connection (the ``drop_stream`` fault).

    Raising is the only way an ASGI app can make the server close a connection mid-body;
    the server logs it as a crash, which ``_HideSimulatedDisconnects`` suppresses.
    """


class _HideSimulatedDisconnects(logging.Filter):
    """Keeps an intended fault out of uvicorn's error log (we log one line ourselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, SimulatedDisconnect):
                return False
            error = error.__cause__ or error.__context__
        return True


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """A Starlette app answering ``/v1/...`` like OpenAI, with ``config``'s latency and faults.

    The config lives on ``app.state.simulator_config``: read its counters there, or
    assign a new config to change the faults of a running server.
    """

    async def endpoint(request: Request) -> Response:
        planned = plan_reply(
            request.app.state.simulator_config,
            request.method,
            request.url.path,
            await request.body(),
            query=request.url.query,
            request_headers=dict(request.headers),
        )
        await anyio.sleep(planned.delay_s)
        if planned.hang_s and await _client_left_during(request, planned.hang_s):
            return Response(status_code=499)  # nobody is listening any more
        if planned.drop_after is None and not planned.is_stream:
            return Response(b"".join(planned.parts), status_code=planned.status, headers=planned.headers)
        return StreamingResponse(_parts(planned), status_code=planned.status, headers=planned.headers)

    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideSimulatedDisconnects) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_HideSimulatedDisconnects())
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    app.state.simulator_config = config or SimulatorConfig()
    return app


def serve(
    host: str = "127.0.0.1", port: int = 8800, config: SimulatorConfig | None = None, *, log_level: str = "info"
) -> None:
    """Run the simulator over HTTP until interrupted (blocks).

    ``host``/``port``: where to listen; the OpenAI base URL is then
    ``http://{host}:{port}/v1``. ``config``: latency and faults (default: none).
    """
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=1)


async def _parts(planned: PlannedReply) -> AsyncIterator[bytes]:
    for index, part in enumerate(planned.parts):
        if index == planned.drop_after:
            log.info("drop_stream fault: connection cut after %d body parts", index)
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
