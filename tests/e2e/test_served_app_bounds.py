"""What a stranger can make the served dashboard (`quorum run`) hold before anyone signs in.

The page and its websocket are open to whoever reaches the port. A head of any length, or a
websocket message up to Streamlit's 200 MB, was read whole (a 150 MB message grew the server
by 290 MB). Here the real served app, as the browser tests run it, with raw sockets. (That
the browser's own messages pass is what every browser test shows.)
"""

from __future__ import annotations

import asyncio
import socket
import time

import websockets

from pages.ui.server import BROWSER_MESSAGE_BYTES


def test_a_head_past_the_bound_is_a_431_from_the_served_app(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: quorum\r\n")
        answer = b""
        for _ in range(200):  # 200 lines of 8 KiB: far past the bound, never the head's end
            try:
                connection.sendall(b"X-Padding: " + b"a" * 8192 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_websocket_message_past_the_bound_is_refused_at_its_header(server):
    async def send(size: int) -> int | None:
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/_stcore/stream", max_size=None, subprotocols=["streamlit"]
        ) as ws:
            try:
                await ws.send(b"\\0" * size)
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    started = time.monotonic()
    assert asyncio.run(send(BROWSER_MESSAGE_BYTES + 1)) == 1009  # message too big
    assert time.monotonic() - started < 10
