"""The proxy path's own HTTP/1.1 exchange answers as the SDK does, against servers that misbehave.

A scripted provider on a real socket (not an httpx transport: the wire path is only taken
over the network) answers each request with the next scripted bytes: chunked, gzipped,
delimited by closing, cut off mid-answer, not HTTP at all, a redirect, a rate limit. Each
script is played twice, once through the SDK's own `client.post()` and once through the
wire path, and the caller must see the same outcome, after the same attempts.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
import zlib

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.gateway.direct_post import DirectPost
from core.gateway.errors import UpstreamFailed, UpstreamTimeout
from core.gateway.upstream import CircuitBreaker, RetryPolicy, Upstream

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Grüße, 東京"}], "max_tokens": 5}
OK = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 3}}
OK_BYTES = json.dumps(OK).encode()


def answer(status=200, body=OK_BYTES, headers=(), *, length=True, reason="OK"):
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", *headers]
    if length:
        head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chunked(body, sizes=(7, 1, 30), headers=()):
    head = ["HTTP/1.1 200 OK", "content-type: application/json", "transfer-encoding: chunked", *headers]
    out, rest, i = [("\r\n".join(head) + "\r\n\r\n").encode()], body, 0
    while rest:
        size = sizes[i % len(sizes)]
        part, rest, i = rest[:size], rest[size:], i + 1
        out.append(b"%x\r\n%s\r\n" % (len(part), part))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class Provider:
    """Answers each request with the next step of `script` (the last one repeats).

    A step is bytes to send, or a tuple of actions: bytes (sent as they are), a float (a
    pause), "close" (hang up). It records each request's head, body and connection."""

    def __init__(self, *script, tls=None):
        self.script, self.requests, self.connections, self.tls = list(script), [], 0, tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.getsockname()[1]}/v1"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn, number):
        buffer = b""
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused the certificate
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
                length = int(headers.get("content-length", 0))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append((lines[0], headers, body, number))
                step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
                for action in step if isinstance(step, tuple) else (step,):
                    if action == "close":
                        return
                    if isinstance(action, float):
                        time.sleep(action)
                    else:
                        conn.sendall(action)

    def close(self):
        self._stop = True
        self.server.close()


def _upstream(url, *, wire, timeout=5.0, attempts=3, http_client=None):
    timeout = httpx.Timeout(timeout, connect=2)
    options = {"http_client": http_client} if http_client is not None else {}
    client = openai.OpenAI(base_url=url, api_key="sk-test-key", max_retries=0, timeout=timeout, **options)
    upstream = Upstream(
        client,
        name=f"wire-test-{url}-{wire}",
        simulated=False,
        retry=RetryPolicy(max_attempts=attempts, base_delay_s=0.001, max_delay_s=0.01),
        breaker=CircuitBreaker(failure_threshold=100),
        sleep=lambda _s: None,
        direct=wire,
    )
    assert (upstream._direct is not None and upstream._direct._wire is not None) is wire
    return upstream


def _outcome(upstream, calls=1, pause=0.0):
    try:
        for call in range(calls):
            if call:
                time.sleep(pause)
            result = upstream.chat(dict(BODY))
        return ("ok", result.body, result.attempts)
    except (UpstreamFailed, UpstreamTimeout) as error:
        return (type(error).__name__, str(error), error.status, error.code, getattr(error, "retry_after_s", None))


def _both(*script, calls=1, pause=0.0, **options):
    """For the SDK's path, then the wire path: (outcome, requests seen, connections opened)."""
    results = []
    for wire in (False, True):
        provider = Provider(*script)
        try:
            outcome = _outcome(_upstream(provider.url, wire=wire, **options), calls, pause)
            results.append((outcome, [(line, body) for line, _h, body, _n in provider.requests], provider))
        finally:
            provider.close()
    return results


def test_the_wire_sends_the_bytes_the_sdk_sends():
    (sdk, sdk_requests, sdk_provider), (wire, wire_requests, wire_provider) = _both(answer(), calls=3)
    assert sdk == wire == ("ok", OK, 1)
    assert sdk_requests == wire_requests and len(wire_requests) == 3

    def headers(provider):  # each provider listens on a port of its own
        port = provider.url.split(":")[2].split("/")[0]
        return [{**h, "host": h["host"].replace(port, "PORT")} for _l, h, _b, _n in provider.requests]

    assert headers(sdk_provider) == headers(wire_provider)
    assert wire_provider.connections == 1  # kept alive, as the SDK keeps it


@pytest.mark.parametrize(
    "step",
    [
        chunked(OK_BYTES),
        answer(body=gzip.compress(OK_BYTES), headers=["content-encoding: gzip"]),
        answer(body=zlib.compress(OK_BYTES), headers=["content-encoding: deflate"]),
        chunked(gzip.compress(OK_BYTES), sizes=(3, 11), headers=["content-encoding: gzip"]),
        (answer(length=False, headers=["connection: close"]), "close"),
        (answer(length=False), "close"),
    ],
    ids=["chunked", "gzip", "deflate", "gzip-chunked", "until-close", "until-close-keep-alive-unsaid"],
)
def test_answers_framed_and_encoded_every_way_read_the_same(step):
    (sdk, _r, _p), (wire, _r2, _p2) = _both(step, calls=2)
    assert sdk == wire == ("ok", OK, 1)


@pytest.mark.parametrize(
    "script",
    [
        ((answer()[:40], "close"),),  # hangs up mid-head
        ((answer()[:-10], "close"),),  # hangs up mid-body
        (("close",),),  # hangs up before answering
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n",),  # not HTTP at all
        (answer(429, b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}', ["retry-after: 0"]),),
        (answer(500, b'{"error":{"message":"boom"}}'), answer()),
        (answer(400, gzip.compress(b'{"error":{"message":"bad","param":"messages"}}'), ["content-encoding: gzip"]),),
        (answer(503, b"{}", ["x-should-retry: false"]),),
        (answer(307, b"", ["location: /v1/elsewhere"], reason="Temporary Redirect"), answer()),
    ],
    ids=["mid-head", "mid-body", "no-answer", "not-http", "429", "500-then-ok", "400-gzip", "no-retry", "redirect"],
)
def test_failures_are_the_sdks_errors_after_the_same_attempts(script):
    (sdk, sdk_requests, _p), (wire, wire_requests, _p2) = _both(*script)
    assert sdk == wire
    assert sdk_requests == wire_requests


def test_an_idle_connection_the_provider_closed_is_not_used_again():
    # Every answer says keep-alive, then the provider hangs up: the next call needs a new connection.
    (sdk, _r, sdk_provider), (wire, _r2, wire_provider) = _both((answer(), "close"), calls=3, pause=0.05)
    assert sdk == wire == ("ok", OK, 1)
    assert sdk_provider.connections == wire_provider.connections == 3


def test_a_slow_answer_times_out_as_the_sdks_read_timeout():
    (sdk, _r, _p), (wire, _r2, _p2) = _both((0.6, answer()), timeout=0.3, attempts=2)
    assert sdk == wire
    assert sdk[0] == "UpstreamTimeout" and "2 attempt(s)" in sdk[1]


def test_a_provider_that_is_not_there_is_the_same_connection_error():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/v1"
    outcomes = [_outcome(_upstream(url, wire=wire, attempts=2)) for wire in (False, True)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "UpstreamFailed" and "Could not reach the model provider (2 attempt(s))" in outcomes[0][1]


def test_cookies_the_provider_sets_go_to_the_clients_jar_and_are_sent_back():
    results = _both(answer(headers=["set-cookie: __cf_bm=abc; Path=/"]), calls=3)
    headers = [[h.get("cookie") for _l, h, _b, _n in provider.requests] for _o, _r, provider in results]
    assert headers[0] == headers[1] == [None, "__cf_bm=abc", "__cf_bm=abc"]


def test_clients_the_library_would_send_differently_keep_the_library():
    def wire_of(**options):
        client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", **options)
        return DirectPost.for_client(client)._wire

    assert wire_of() is not None
    assert wire_of(http_client=httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))) is None
    assert wire_of(http_client=openai.DefaultHttpxClient(proxy="http://127.0.0.1:3128")) is None
    hooked = openai.DefaultHttpxClient(event_hooks={"request": [lambda request: None]})
    assert wire_of(http_client=hooked) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=8),
    framing=st.sampled_from(["length", "chunked", "gzip"]),
)
def test_any_answer_cut_into_any_packets_reads_as_sent(text, cuts, framing):
    body = json.dumps({**OK, "choices": [{"message": {"content": text}}]}, ensure_ascii=False).encode()
    if framing == "chunked":
        raw = chunked(body, sizes=tuple(cuts))
    elif framing == "gzip":
        raw = answer(body=gzip.compress(body), headers=["content-encoding: gzip"])
    else:
        raw = answer(body=body)
    packets, rest = [], raw
    for cut in cuts:
        packets += [rest[:cut], 0.001]
        rest = rest[cut:]
    provider = Provider((*packets, rest))
    try:
        result = _upstream(provider.url, wire=True).chat(dict(BODY))
    finally:
        provider.close()
    assert result.body == json.loads(body)


def _certificates():
    """A private CA and a certificate it signed for 127.0.0.1 (no network: made here)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import IPv4Address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def certificate(subject, key, issuer, issuer_key, *, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))])
            builder = builder.add_extension(names, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Quorum test CA", ca_key, "Quorum test CA", ca_key, ca=True)
    server = certificate("127.0.0.1", server_key, "Quorum test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), server.public_bytes(pem), key_pem


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    ca_pem, cert_pem, key_pem = _certificates()
    folder = tmp_path_factory.mktemp("tls")
    (folder / "server.pem").write_bytes(cert_pem + key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "server.pem")
    client = ssl.create_default_context(cadata=ca_pem.decode())
    return server, client


def test_over_tls_the_wire_checks_the_certificate_with_the_clients_own_context(tls):
    server, trusting = tls
    outcomes = []
    for wire in (False, True):
        provider = Provider(chunked(gzip.compress(OK_BYTES), headers=["content-encoding: gzip"]), tls=server)
        try:
            upstream = _upstream(provider.url, wire=wire, http_client=openai.DefaultHttpxClient(verify=trusting))
            outcomes.append((_outcome(upstream, calls=3), provider.connections))
        finally:
            provider.close()
    assert outcomes[0] == outcomes[1] == (("ok", OK, 1), 1)


def test_over_tls_a_certificate_the_client_does_not_trust_is_refused_as_the_sdk_refuses_it(tls):
    server, _trusting = tls
    outcomes = []
    for wire in (False, True):
        provider = Provider(answer(), tls=server)
        try:
            outcomes.append((_outcome(_upstream(provider.url, wire=wire, attempts=2)), len(provider.requests)))
        finally:
            provider.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0][0] == "UpstreamFailed" and outcomes[0][1] == 0  # no request was ever read
