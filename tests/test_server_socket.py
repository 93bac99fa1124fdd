"""The served app's connections run without Nagle's algorithm (pages.ui.server).

Without it, every answer on a kept-alive connection (the OpenAI SDK keeps its connections)
waited about 40 ms for the client's delayed ACK, because Streamlit's listening socket is
created with protocol 0 and asyncio then leaves Nagle on.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from streamlit.web.server.starlette import starlette_server

from core.cli.run_cmd import _streamlit_command
from pages.ui import server


def _nodelay_of_accepted_connection(listener: socket.socket) -> int:
    """TCP_NODELAY on a connection accepted by asyncio from `listener`, as uvicorn accepts it."""

    async def probe() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(
                    transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                )
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 5)
        finally:
            writer.close()
            server.close()

    return asyncio.run(probe())


@pytest.fixture
def restore_bind(monkeypatch):
    monkeypatch.setattr(starlette_server, "_bind_socket", starlette_server._bind_socket)
    monkeypatch.setattr(starlette_server, "_get_uvicorn_config_kwargs", starlette_server._get_uvicorn_config_kwargs)


def test_connections_of_the_served_socket_have_nagle_off(restore_bind):
    server.install()
    listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    assert _nodelay_of_accepted_connection(listener) != 0


def test_streamlits_own_socket_is_what_needed_the_fix(restore_bind):
    # Streamlit's unwrapped binding: asyncio leaves Nagle on. Should a Streamlit release
    # fix this, pages.ui.server can go.
    listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    assert _nodelay_of_accepted_connection(listener) == 0


def test_install_wraps_once(restore_bind):
    server.install()
    wrapped = starlette_server._bind_socket
    server.install()
    assert starlette_server._bind_socket is wrapped


def test_quorum_run_tells_uvicorn_to_leave_the_client_address_alone(restore_bind):
    # uvicorn's default believes X-Forwarded-For from loopback; Quorum decides that itself.
    assert starlette_server._get_uvicorn_config_kwargs().get("proxy_headers", True) is True
    server.install()
    assert starlette_server._get_uvicorn_config_kwargs()["proxy_headers"] is False


def test_quorum_run_reads_requests_with_the_bounded_head_protocol(restore_bind):
    from core.http.bounded_head import BoundedHeadProtocol

    assert "http" not in starlette_server._get_uvicorn_config_kwargs()  # httptools, unbounded
    server.install()
    assert starlette_server._get_uvicorn_config_kwargs()["http"] is BoundedHeadProtocol


def test_quorum_run_bounds_what_a_browser_sends_in_one_message(restore_bind):
    assert starlette_server._get_uvicorn_config_kwargs()["ws_max_size"] == 200_000_000  # Streamlit's
    server.install()
    assert starlette_server._get_uvicorn_config_kwargs()["ws_max_size"] == server.BROWSER_MESSAGE_BYTES


def test_install_refuses_a_streamlit_that_binds_otherwise(monkeypatch):
    monkeypatch.delattr(starlette_server, "_bind_socket")
    with pytest.raises(RuntimeError, match="_bind_socket is gone"):
        server.install()


def test_quorum_run_serves_through_the_fixed_command_line():
    command = _streamlit_command(port=8501, host="localhost")
    assert command[1:4] == ["-m", "pages.ui.server", "run"]
    assert command[4].endswith("app.py")
