"""The simulator as an httpx transport, so the official SDK talks to it in-process:

    client = openai.OpenAI(
        base_url="http://simulator.local/v1",
        api_key="sk-sim",
        http_client=httpx.Client(transport=SimulatorTransport(config)),
    )

No socket is opened. Latency and faults behave as a network would show them: a hang
longer than the client's read timeout raises ``httpx.ReadTimeout`` after that timeout,
and a dropped connection raises ``httpx.RemoteProtocolError`` while the body is read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import TypedDict, Unpack

import anyio
import httpx
import openai

from core.simulator.exchange import PlannedReply, plan_reply
from core.simulator.faults import SimulatorConfig

SIMULATOR_BASE_URL = "http://simulator.local/v1"
SIMULATOR_API_KEY = "sk-sim"


class SimulatorTransport(httpx.BaseTransport):
    """Answers every request from the simulator engine, synchronously."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        planned = plan_reply(
            self.config,
            request.method,
            request.url.path,
            request.read(),
            query=request.url.query.decode(),
            request_headers=dict(request.headers),
        )
        time.sleep(planned.delay_s)
        wait, times_out = _hang(planned, request)
        time.sleep(wait)
        if times_out:
            raise httpx.ReadTimeout("Simulated upstream did not answer in time.", request=request)
        return httpx.Response(
            planned.status, headers=planned.headers, stream=_SyncParts(planned, request), request=request
        )


class AsyncSimulatorTransport(httpx.AsyncBaseTransport):
    """The same, for ``httpx.AsyncClient`` and ``openai.AsyncOpenAI``."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        planned = plan_reply(
            self.config,
            request.method,
            request.url.path,
            await request.aread(),
            query=request.url.query.decode(),
            request_headers=dict(request.headers),
        )
        await anyio.sleep(planned.delay_s)
        wait, times_out = _hang(planned, request)
        await anyio.sleep(wait)
        if times_out:
            raise httpx.ReadTimeout("Simulated upstream did not answer in time.", request=request)
        return httpx.Response(
            planned.status, headers=planned.headers, stream=_AsyncParts(planned, request), request=request
        )


class ClientOptions(TypedDict, total=False):
    """What a caller may set on a simulated client; the address and key are the simulator's."""

    max_retries: int
    # Quorum's gateway passes an ``httpx.Timeout``; the SDK converts it to its own.
    timeout: float | httpx.Timeout | None


def simulated_client(config: SimulatorConfig | None = None, **client_options: Unpack[ClientOptions]) -> openai.OpenAI:
    """An ``openai.OpenAI`` client wired to an in-process simulator.

    ``client_options`` (``max_retries``, ``timeout``) go to ``openai.OpenAI``. The
    config is reachable afterwards as ``client._client._transport.config``; keep your
    own reference to it instead when you want to read its counters.
    """
    http_client = httpx.Client(transport=SimulatorTransport(config))
    # The SDK's signature names only httpx2's client and timeout; it still takes httpx's
    # (openai._httpx2.is_legacy_httpx_sync_client), and the simulator is an httpx transport.
    return openai.OpenAI(
        base_url=SIMULATOR_BASE_URL,
        api_key=SIMULATOR_API_KEY,
        http_client=http_client,  # type: ignore[arg-type]  # an httpx client, accepted as above
        **client_options,  # type: ignore[arg-type]  # an httpx timeout, accepted as above
    )


def async_simulated_client(
    config: SimulatorConfig | None = None, **client_options: Unpack[ClientOptions]
) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` client wired to an in-process simulator."""
    http_client = httpx.AsyncClient(transport=AsyncSimulatorTransport(config))
    return openai.AsyncOpenAI(
        base_url=SIMULATOR_BASE_URL,
        api_key=SIMULATOR_API_KEY,
        http_client=http_client,  # type: ignore[arg-type]  # an httpx client: see simulated_client
        **client_options,  # type: ignore[arg-type]  # an httpx timeout: see simulated_client
    )


def _hang(planned: PlannedReply, request: httpx.Request) -> tuple[float, bool]:
    """How long a "timeout" fault waits, and whether the client gives up first."""
    if not planned.hang_s:
        return 0.0, False
    read_timeout = (request.extensions.get("timeout") or {}).get("read")
    if read_timeout is not None and read_timeout < planned.hang_s:
        return read_timeout, True
    return planned.hang_s, False


def _dropped(request: httpx.Request) -> httpx.RemoteProtocolError:
    # The error httpx raises when a server closes the connection mid-body.
    return httpx.RemoteProtocolError("Simulated connection drop: peer closed connection mid-body.", request=request)


class _SyncParts(httpx.SyncByteStream):
    def __init__(self, planned: PlannedReply, request: httpx.Request) -> None:
        self.planned, self.request = planned, request

    def __iter__(self) -> Iterator[bytes]:
        for index, part in enumerate(self.planned.parts):
            if index == self.planned.drop_after:
                raise _dropped(self.request)
            yield part


class _AsyncParts(httpx.AsyncByteStream):
    def __init__(self, planned: PlannedReply, request: httpx.Request) -> None:
        self.planned, self.request = planned, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index, part in enumerate(self.planned.parts):
            if index == self.planned.drop_after:
                raise _dropped(self.request)
            yield part
