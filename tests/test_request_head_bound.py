"""A request's head (request line and headers) is bounded, so a stranger cannot make a server
hold a head of any length: httptools reads one without limit, and a single 300 MB header
grew a server by 370 MB. Past 64 KiB the server answers 431 and closes the connection,
before the head ends; real heads, keep-alive and pipelined requests are served as before.
The tests speak raw HTTP: a head that is never finished gets an answer only if the server
refused it."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from core.http.bounded_head import MAX_HEAD_BYTES
from tests.scale_out_support import GatewayServer, Simulator

ANSWER_WITHIN_S = 10


def _refused_before_the_head_ends(port: int, path: str = "/healthz") -> bytes:
    """Send a head that never ends, a header line of 8 KiB at a time, until the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: quorum\r\n".encode())
        line = b"X-Padding: " + b"a" * 8192 + b"\r\n"
        deadline = time.monotonic() + ANSWER_WITHIN_S
        connection.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                connection.sendall(line)
            except (BrokenPipeError, ConnectionResetError):
                break  # closed after its answer, which is waiting to be read
            try:
                answer = connection.recv(4096)
            except TimeoutError:
                continue
            return answer
        connection.settimeout(ANSWER_WITHIN_S)
        return connection.recv(4096)


def _exchange(port: int, raw: bytes, answers: int = 1) -> list[bytes]:
    """The status lines of `answers` answers to `raw` (requests on one connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(raw)
        received = b""
        while received.count(b"HTTP/1.1 ") < answers or not received.endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return re.findall(rb"HTTP/1\.1 \d{3} [^\r]*", received)  # answers follow each other's bodies directly


def _get(headers: bytes = b"") -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: quorum\r\n" + headers + b"\r\n"


def test_a_head_past_the_bound_is_a_431_before_it_ends(server):
    answer = _refused_before_the_head_ends(server.port)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"connection: close" in answer.lower()


def test_real_heads_keep_alive_and_pipelining_are_served_as_before(server):
    near_the_bound = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 1000) for i in range(MAX_HEAD_BYTES // 1100))
    assert _exchange(server.port, _get(near_the_bound)) == [b"HTTP/1.1 200 OK"]
    # Heads that together pass the bound, on one kept-alive connection: each is counted alone.
    half = b"X-Half: " + b"h" * (MAX_HEAD_BYTES // 2) + b"\r\n"
    assert _exchange(server.port, _get(half) + _get(half) + _get(half), answers=3) == [b"HTTP/1.1 200 OK"] * 3


def test_a_body_of_any_length_is_no_head(server, gateway, session):
    """The bound is on the head only: a chat body far above 64 KiB is read as before."""
    from tests.gateway_support import new_key
    from tests.test_gateway_http import moderation_off

    moderation_off(session)
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"word " * 60_000 + b'"}]}'
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: quorum\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + new_key(session).secret.encode() + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert _exchange(server.port, raw) == [b"HTTP/1.1 200 OK"]


@pytest.mark.timeout(120)
def test_quorum_gateway_serve_bounds_the_head_too(db_url):
    upstream = Simulator(latency_ms=0)
    gateway = GatewayServer(workers=1, simulator=upstream)
    try:
        assert _refused_before_the_head_ends(gateway.port).startswith(b"HTTP/1.1 431 ")
        assert _exchange(gateway.port, _get()) == [b"HTTP/1.1 200 OK"]
    finally:
        gateway.stop()
        upstream.stop()


@pytest.fixture
def quick_head_timeout(monkeypatch):
    from core.http import bounded_head

    monkeypatch.setattr(bounded_head, "HEAD_TIMEOUT_S", 0.5)
    return 0.5


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: quo"], ids=["nothing", "half a head"])
def test_a_head_not_finished_in_time_is_a_408_and_the_connection_closed(server, quick_head_timeout, sent):
    started = time.monotonic()  # before the connection: the server's clock starts when it accepts
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(sent)
        answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 ") and connection.recv(4096) == b""  # then closed
    # Not at once, and not long after (the event loop's timer may fire a little early).
    assert 0.8 * quick_head_timeout <= time.monotonic() - started < ANSWER_WITHIN_S


def test_an_answer_slower_than_the_head_timeout_is_not_cut_and_the_connection_serves_on(
    server, session, directory, quick_head_timeout
):
    """The next head's time starts when an answer is out, not when its request arrived."""
    from core.gateway.wiring import set_gateway
    from core.simulator import SimulatorConfig
    from tests.gateway_support import MODEL, RecordingTransport, make_gateway, new_key
    from tests.test_gateway_http import moderation_off

    moderation_off(session)
    set_gateway(make_gateway(RecordingTransport(SimulatorConfig(latency_ms=3 * quick_head_timeout * 1000))))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {new_key(session).secret}"}) as http:
        for _ in range(2):  # one kept-alive connection
            assert http.post("/chat/completions", json=body, timeout=ANSWER_WITHIN_S).status_code == 200
