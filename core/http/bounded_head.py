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
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024

_MESSAGE = b"The request's headers are too large.\n"
_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n\r\n" + _MESSAGE
)


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a request whose head passes MAX_HEAD_BYTES."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # a new connection starts with a request's head
        self._head_bytes = 0
        self._heads_read = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        open_before, heads_before = self._head_open, self._heads_read
        super().data_received(data)
        if open_before and self._head_open and self._heads_read == heads_before:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refused = True
                self.transport.write(_REFUSAL)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._heads_read += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open, self._head_bytes = True, 0  # the next request on this connection
