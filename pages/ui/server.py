"""Streamlit's command line with one fix to its server socket; `quorum run` starts the app so.

    python -m pages.ui.server run app.py --server.port 8501 ...

Streamlit binds its listening socket itself, as ``socket.socket(family)``: protocol 0, and
asyncio turns Nagle's algorithm off only on connections whose socket says TCP. uvicorn
writes an answer's headers and body separately, so on a kept-alive connection (every
OpenAI SDK client of the gateway) the body waited for the client's delayed ACK: about
40 ms added to every call. Accepted connections inherit TCP_NODELAY from the listening
socket, so setting it there once covers them all.
"""

from __future__ import annotations

import socket
import sys
from typing import Callable

_PATCHED = "_quorum_no_delay"


def no_delay(bind: Callable[..., socket.socket]) -> Callable[..., socket.socket]:
    """`bind`, with TCP_NODELAY set on the socket it returns (inherited by each connection)."""

    def bind_without_nagle(*args, **kwargs) -> socket.socket:
        sock = bind(*args, **kwargs)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    setattr(bind_without_nagle, _PATCHED, True)
    return bind_without_nagle


def install() -> None:
    """Wrap Streamlit's socket binding; fails loudly if Streamlit no longer binds it that way."""
    from streamlit.web.server.starlette import starlette_server

    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None:
        raise RuntimeError("streamlit.web.server.starlette.starlette_server._bind_socket is gone: "
                           "check how this Streamlit version binds its socket before serving the gateway")
    if not getattr(bind, _PATCHED, False):
        starlette_server._bind_socket = no_delay(bind)


def main() -> None:
    install()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *sys.argv[1:]]
    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
