"""Streamlit's command line with one fix to its server socket; `quorum run` starts the app so.

    python -m pages.ui.server run app.py --server.port 8501 ...

Streamlit binds its listening socket itself, as ``socket.socket(family)``: protocol 0, and
asyncio turns Nagle's algorithm off only on connections whose socket says TCP. uvicorn
writes an answer's headers and body separately, so on a kept-alive connection (every
OpenAI SDK client of the gateway) the body waited for the client's delayed ACK: about
40 ms added to every call. Accepted connections inherit TCP_NODELAY from the listening
socket, so setting it there once covers them all.

And three to its uvicorn options: uvicorn believes ``X-Forwarded-For`` from any caller
on loopback and replaces the client's address with it before Quorum sees the request;
Quorum decides whom to believe itself (core.http.client_address, QUORUM_TRUSTED_PROXIES),
so the server is told to pass the connecting address through untouched. And its HTTP
protocol bounds a request's headers, which httptools reads at any length
(core.http.bounded_head), and a browser's websocket messages are bounded well below the
200 MB Streamlit allows (BROWSER_MESSAGE_BYTES).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

_PATCHED = "_quorum_no_delay"
# What a browser sends the dashboard in one websocket message: widget values (a prompt or a
# pasted test set is at most 1 MB, core.catalog.yaml_io); files go by HTTP upload instead.
# Streamlit lets a message be as large as the largest it sends (server.maxMessageSize, 200 MB),
# and the socket is open before anyone signs in: a 150 MB message from a stranger grew the
# server by 290 MB before it was refused. This bound is read from the frame's header, so a
# larger message is refused before its body is read. (What the server sends is not bounded here.)
BROWSER_MESSAGE_BYTES = 8_000_000
_OWN_OPTIONS = "_quorum_own_options"


def no_delay(bind: Callable[..., socket.socket]) -> Callable[..., socket.socket]:
    """`bind`, with TCP_NODELAY set on the socket it returns (inherited by each connection)."""

    def bind_without_nagle(*args, **kwargs) -> socket.socket:
        sock = bind(*args, **kwargs)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    setattr(bind_without_nagle, _PATCHED, True)
    return bind_without_nagle


def with_quorum_options(options: Callable[[], dict]) -> Callable[[], dict]:
    """uvicorn options with its own X-Forwarded-For handling turned off, its HTTP protocol
    bounding a request's headers (core.http.bounded_head), and a smaller bound on what a
    browser may send in one websocket message (BROWSER_MESSAGE_BYTES)."""
    from core.http.bounded_head import BoundedHeadProtocol

    def quorum_options() -> dict:
        given = options()
        return {
            **given,
            "proxy_headers": False,
            "http": BoundedHeadProtocol,
            "ws_max_size": min(given.get("ws_max_size") or BROWSER_MESSAGE_BYTES, BROWSER_MESSAGE_BYTES),
        }

    setattr(quorum_options, _OWN_OPTIONS, True)
    return quorum_options


def install() -> None:
    """Wrap Streamlit's socket binding and uvicorn options; fails loudly if Streamlit no
    longer builds them that way."""
    from streamlit.web.server.starlette import starlette_server

    for name in ("_bind_socket", "_get_uvicorn_config_kwargs"):
        if getattr(starlette_server, name, None) is None:
            raise RuntimeError(
                f"streamlit.web.server.starlette.starlette_server.{name} is gone: check how this "
                "Streamlit version binds its socket and configures uvicorn before serving the gateway"
            )
    bind, options = starlette_server._bind_socket, starlette_server._get_uvicorn_config_kwargs
    if not getattr(bind, _PATCHED, False):
        starlette_server._bind_socket = no_delay(bind)
    if not getattr(options, _OWN_OPTIONS, False):
        starlette_server._get_uvicorn_config_kwargs = with_quorum_options(options)


def main() -> None:
    install()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *sys.argv[1:]]
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
