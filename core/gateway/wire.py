"""The proxy path's HTTP/1.1 exchange on kept-alive sockets of its own, parsed by llhttp.

`DirectPost` builds the SDK's request once per path; what is left per call is sending it
and reading the answer. Through the SDK's HTTP library that costs about half a millisecond
of CPU per call in pure Python (its connection pool, the h11 state machine, the response
wrapper), more than the rest of the upstream call together; here about an eighth of a
millisecond (`bench/upstream.py` measures the three paths side by side). The head the
library would send (request line and headers, as it built them for this path) is
serialized once; each call sends head, Content-Length and body in one write, and the
answer is parsed by httptools (llhttp, the C parser uvicorn already uses for every
request Quorum serves), which also undoes chunked transfer encoding.

What stays the library's: the request (the same bytes: `DirectPost` builds it), the
TLS context (its pool's, so certificate checks are the same), the timeouts (connect, and
read and write per operation, as it applies them), the keep-alive expiry, decoding of any
Content-Encoding but gzip and deflate, cookies the provider sets (handed to the client's
jar; from then on the library sends, so the jar is its to apply), and every error answer
(built as the library's own response, so the SDK's status error is exactly its own).
A timeout is the SDK's `APITimeoutError`; a refused, reset or garbled connection is its
`APIConnectionError`, as the library's `RemoteProtocolError` becomes one.

Used only where the SDK would use the library's plain transport: no custom transport
(the tests' in-process ones keep the library), no proxy, HTTP/1.1, no event hooks. A
redirect is the library's to follow (`DirectPost` hands it the answer). Anything else
keeps `DirectPost`'s path through the library.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any

import httptools
import httpx
import openai

try:  # the SDK's own HTTP library (a fork of httpx)
    import httpx2
except ImportError:  # an SDK that uses httpx itself
    httpx2 = None

_PLAIN_TRANSPORTS = tuple(t for t in (httpx.HTTPTransport, getattr(httpx2, "HTTPTransport", None)) if t)
_MAX_IDLE = 100  # idle connections kept when the library's pool names no limit
_READ = 65536


class Answer:
    """An upstream answer as the proxy path reads it: the body and case-insensitive headers."""

    __slots__ = ("status_code", "content", "headers")

    def __init__(self, status_code: int, content: bytes, headers: Mapping[str, str]) -> None:
        self.status_code, self.content, self.headers = status_code, content, headers


class _Parsed:
    """httptools' callbacks: collect headers and body until the message is complete."""

    __slots__ = ("raw_headers", "body", "complete", "keep_alive", "parser")

    def __init__(self) -> None:
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = self.keep_alive = False
        self.parser: Any = None

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete the parser has moved on to the next one.
        self.keep_alive = self.parser.should_keep_alive()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    __slots__ = ("sock", "idle_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.idle_since = sock, 0.0


class Wire:
    """POSTs to one origin over kept-alive connections; see the module's story."""

    def __init__(self, http: Any, url: Any, timeout: Any) -> None:
        self._http = http
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        pool = http._transport._pool
        self._tls: ssl.SSLContext | None = pool._ssl_context if url.scheme == "https" else None
        self._expiry = pool._keepalive_expiry
        self._max_idle = pool._max_keepalive_connections or _MAX_IDLE
        self._connect_s, self._read_s, self._write_s = _seconds(timeout)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def for_http(cls, http: Any, url: Any, timeout: Any) -> Wire | None:
        """A `Wire` for the SDK's HTTP client `http`, or None where it would not send plainly."""
        transport = getattr(http, "_transport", None)
        pool = getattr(transport, "_pool", None)
        if type(transport) not in _PLAIN_TRANSPORTS or pool is None or getattr(http, "_mounts", None):
            return None
        plain_pool = all(getattr(pool, name, "?") is None for name in ("_proxy", "_uds", "_local_address"))
        if not plain_pool or getattr(pool, "_http2", True) or getattr(pool, "_retries", 1) or pool._socket_options:
            return None
        hooks = getattr(http, "event_hooks", {"?": ["?"]})
        if any(hooks.values()) or http.auth is not None or http.params:
            return None
        if url.scheme not in ("http", "https") or not url.host:
            return None
        return cls(http, url, timeout)

    def post(self, request: Any, head: bytes, content: bytes) -> Any:
        """Send `head` (up to the blank line, without Content-Length) and `content`; the answer:
        an `Answer`, or the library's own response for an error or a redirect to follow.
        `request` is the library's request for the same call (its errors name it)."""
        message = b"%scontent-length: %d\r\n\r\n%s" % (head, len(content), content)
        connection = self._take()
        try:
            if connection is None:
                connection = self._connect()
            status, raw_headers, body, keep = self._exchange(connection.sock, message)
        except TimeoutError as error:
            _close(connection)
            raise openai.APITimeoutError(request=request) from error
        except (OSError, httptools.HttpParserError, _Disconnected) as error:
            _close(connection)
            raise openai.APIConnectionError(request=request) from error
        if keep:
            self._give_back(connection)
        else:
            _close(connection)
        if status >= 300 or not _plainly_encoded(raw_headers):
            return self._library_answer(request, status, raw_headers, body)
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if "set-cookie" in headers:
            return self._library_answer(request, status, raw_headers, body)
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "deflate"):
            try:
                body = _decompress(body, encoding)
            except zlib.error as error:
                raise openai.APIConnectionError(request=request) from error
        return Answer(status, body, headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            _close(connection)

    # ---- connections ----------------------------------------------------------------------

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if now - connection.idle_since < self._expiry and _still_open(connection.sock):
                return connection
            _close(connection)

    def _give_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        _close(connection)

    def _connect(self) -> _Connection:
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _exchange(self, sock: socket.socket, message: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        sock.settimeout(self._write_s)
        sock.sendall(message)
        sock.settimeout(self._read_s)
        parsed = _Parsed()
        parser = parsed.parser = httptools.HttpResponseParser(parsed)
        while not parsed.complete:
            data = sock.recv(_READ)
            if not data:
                # Read to the end: an answer with neither a length nor chunks ends when the
                # connection does. Otherwise the provider hung up mid-answer (or, on a reused
                # connection, before it: the library raises RemoteProtocolError for both).
                if parsed.raw_headers and _delimited_by_close(parsed.raw_headers):
                    return parser.get_status_code(), parsed.raw_headers, b"".join(parsed.body), False
                raise _Disconnected("the provider closed the connection without a complete answer")
            parser.feed_data(data)
        return parser.get_status_code(), parsed.raw_headers, b"".join(parsed.body), parsed.keep_alive

    def _library_answer(self, request: Any, status: int, raw_headers: list, body: bytes) -> Any:
        """The answer as the library's own response (errors, cookies, encodings it decodes)."""
        library = type(self._http._transport).__module__.split(".")[0]
        module = httpx2 if library == "httpx2" and httpx2 is not None else httpx
        headers = [(n, v) for n, v in raw_headers if n.lower() not in (b"transfer-encoding", b"content-length")]
        response = module.Response(status, headers=headers, stream=module.ByteStream(body), request=request)
        response.read()
        if response.headers.get("set-cookie"):
            self._http.cookies.extract_cookies(response)
        if status >= 400 or (status >= 300 and self._http.follow_redirects and "location" in response.headers):
            return response
        return Answer(status, response.content, response.headers)


class _Disconnected(Exception):
    pass


def _seconds(timeout: Any) -> tuple[float | None, float | None, float | None]:
    if hasattr(timeout, "connect"):
        return timeout.connect, timeout.read, timeout.write
    return timeout, timeout, timeout


def _still_open(sock: socket.socket) -> bool:
    """Whether an idle connection may carry a request: a readable idle socket was closed by
    the provider (or holds bytes nobody asked for); the library checks the same way."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _delimited_by_close(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _value in raw_headers}
    return b"content-length" not in names and b"transfer-encoding" not in names


def _plainly_encoded(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in raw_headers:
        if name.lower() == b"content-encoding":
            return value.strip().lower() in (b"gzip", b"deflate", b"identity", b"")
    return True


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return zlib.decompress(body, zlib.MAX_WBITS | 16)
    try:  # deflate is zlib-wrapped by the standard, raw by some servers (the library accepts both)
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -zlib.MAX_WBITS)


def _close(connection: _Connection | None) -> None:
    if connection is not None:
        try:
            connection.sock.close()
        except OSError:
            pass
