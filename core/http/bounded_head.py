"""uvicorn's HTTP protocol (httptools) with a bound on a request's head.

httptools reads a request line and headers of any length: a client that can reach the port,
with no key at all, sent one header of 300 MB and the server held all of it (the process
grew by 370 MB for one connection). A load balancer in front usually refuses such a head (nginx
at 8 KB per header line), but `quorum run` and `quorum gateway serve` also serve clients
directly. This protocol answers 431 and closes the connection once a head passes
MAX_HEAD_BYTES (64 KiB: eight times nginx's 8 KB default, room for any real client's
cookies and headers).

A head is counted from the data the server reads while it is unfinished: a read during which
the same head stayed open was all head. A read in which one head ends and the next (pipelined)
one begins is not counted, since where it splits is unknown, so a head may pass the bound by
at most one read (up to 256 KiB) before it is refused.

And a head must be finished within HEAD_TIMEOUT_S of its turn (the connection's start, or
the end of the previous answer): a connection that sends nothing, or a head a byte
at a time, was kept open for as long as its client liked, so a few thousand of them held the
server's connections. Such a connection is answered 408 and closed (nginx waits 60 s by
default; 30 s is ample for any client that means to send a request).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 30.0


def _answer(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
    )


_TOO_LARGE = _answer(b"431 Request Header Fields Too Large", b"The request's headers are too large.\n")
_TOO_SLOW = _answer(b"408 Request Timeout", b"The request's headers did not arrive in time.\n")


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a request whose head passes MAX_HEAD_BYTES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # a new connection starts with a request's head
        self._head_bytes = 0
        self._heads_read = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        open_before, heads_before = self._head_open, self._heads_read
        super().data_received(data)
        if open_before and self._head_open and self._heads_read == heads_before:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_TOO_LARGE)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._heads_read += 1
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0  # the next request on this connection

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next head's time starts once this answer is out (a stream may take minutes).
        if not self.transport.is_closing():
            self._arm_head_timer()

    def _refuse(self, answer: bytes) -> None:
        self._refused = True
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_open and not self._refused:
            self._refuse(_TOO_SLOW)
