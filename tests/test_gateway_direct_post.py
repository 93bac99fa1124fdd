"""The proxy path's direct POST behaves as the SDK's POST: same request, same errors, same retries.

Every test runs the same scripted provider twice, once through the SDK's `client.post()`
and once through `DirectPost`, and compares what a caller (and the provider) would see.
"""

from __future__ import annotations

import http.server
import json
import threading
import time

import httpx
import openai
import pytest

from core.gateway.direct_post import DirectPost
from core.gateway.errors import UpstreamFailed, UpstreamTimeout
from core.gateway.upstream import CircuitBreaker, RetryPolicy, Upstream

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Grüße, 東京"}], "max_tokens": 5}
OK = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 3}}


class Provider:
    """A scripted provider: answers from `script` in turn (the last one repeats), records requests."""

    def __init__(self, *script):
        self.script, self.requests = list(script), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        status, headers, body = step
        return httpx.Response(status, headers=headers, json=body)


def _upstream(provider: Provider, *, direct: bool, sleeps: list[float]) -> Upstream:
    client = openai.OpenAI(
        base_url="https://provider.example/v1",
        api_key="sk-test-key",
        max_retries=0,
        timeout=7,
        http_client=httpx.Client(transport=httpx.MockTransport(provider)),
    )
    upstream = Upstream(
        client,
        name="scripted",
        simulated=False,
        retry=RetryPolicy(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01),
        breaker=CircuitBreaker(failure_threshold=100),
        sleep=sleeps.append,
        seed=1,
        direct=direct,
    )
    assert (upstream._direct is not None) is direct
    return upstream


def _both(*script):
    """(outcome, attempts made, sleeps) for the SDK's path, then for the direct one."""
    results = []
    for direct in (False, True):
        provider, sleeps = Provider(*script), []
        upstream = _upstream(provider, direct=direct, sleeps=sleeps)
        try:
            outcome = upstream.chat(dict(BODY))
            outcome = ("ok", outcome.body, outcome.attempts)
        except (UpstreamFailed, UpstreamTimeout) as error:
            outcome = (
                type(error).__name__,
                str(error),
                error.status,
                error.code,
                getattr(error, "retry_after_s", None),
            )
        results.append((outcome, len(provider.requests), sleeps, provider.requests))
    return results


def test_the_direct_post_sends_the_request_the_sdk_sends():
    (sdk, direct) = _both((200, {}, OK))
    assert sdk[0] == direct[0] == ("ok", OK, 1)
    [a], [b] = sdk[3], direct[3]
    assert (a.method, str(a.url)) == (b.method, str(b.url)) == ("POST", "https://provider.example/v1/chat/completions")
    assert a.content == b.content and json.loads(b.content) == BODY  # the same bytes, non-ASCII as it is
    assert dict(a.headers) == dict(b.headers)
    assert b.headers["authorization"] == "Bearer sk-test-key"


def test_a_rate_limit_is_retried_after_what_retry_after_asks_on_both_paths():
    limited = (429, {"retry-after-ms": "1500"}, {"error": {"message": "Slow down", "code": "rate_limit_exceeded"}})
    sdk, direct = _both(limited, (200, {}, OK))
    assert sdk[0] == direct[0] == ("ok", OK, 2)
    assert sdk[2] == direct[2] and direct[2][0] >= 1.5


@pytest.mark.parametrize(
    "script",
    [
        [(400, {}, {"error": {"message": "Bad max_tokens", "param": "max_tokens", "code": "invalid_value"}})],
        [(500, {}, {"error": {"message": "Boom"}})],
        [(429, {"retry-after": "60"}, {"error": {"message": "Quota", "code": "insufficient_quota"}})],
        [httpx.ReadTimeout("slow")],
        [httpx.ConnectError("refused")],
    ],
    ids=["bad-request", "server-error", "long-retry-after", "timeout", "connection"],
)
def test_failures_are_the_same_errors_after_the_same_attempts(script):
    sdk, direct = _both(*script)
    assert sdk[0] == direct[0]
    assert sdk[1] == direct[1] and sdk[2] == direct[2]


@pytest.mark.parametrize(
    "response",
    [
        (400, {}, {"error": {"message": "Bad", "param": "messages"}}),
        (401, {}, {"error": {"message": "Bad key"}}),
        (429, {"retry-after": "2"}, {"error": {"message": "Slow down"}}),
        (503, {}, {"error": {"message": "Overloaded"}}),
    ],
)
def test_the_raw_status_errors_are_the_sdks_own_classes_with_body_and_headers(response):
    errors = []
    for direct in (False, True):
        provider = Provider(response)
        client = _upstream(provider, direct=direct, sleeps=[]).client
        with pytest.raises(openai.APIStatusError) as caught:
            if direct:
                DirectPost.for_client(client).post("/chat/completions", BODY)
            else:
                client.post("/chat/completions", body=BODY, cast_to=httpx.Response)
        error = caught.value
        errors.append((type(error), str(error), error.status_code, error.body, dict(error.response.headers)))
    assert errors[0] == errors[1]


def test_x_should_retry_false_stops_a_retry_and_true_asks_for_one_on_both_paths():
    refused = (503, {"x-should-retry": "false"}, {"error": {"message": "Do not retry"}})
    sdk, direct = _both(refused, (200, {}, OK))
    assert sdk[0] == direct[0] and direct[0][0] == "UpstreamFailed"
    assert sdk[1] == direct[1] == 1
    locked = (409, {"x-should-retry": "true"}, {"error": {"message": "Lock timeout"}})
    sdk, direct = _both(locked, (200, {}, OK))
    assert sdk[0] == direct[0] == ("ok", OK, 2)


def test_clients_whose_requests_differ_keep_the_sdks_post():
    assert DirectPost.for_client(openai.OpenAI(base_url="https://x/v1", api_key="k")) is not None
    azure = openai.AzureOpenAI(api_key="k", api_version="2024-06-01", azure_endpoint="https://x.openai.azure.com")
    assert DirectPost.for_client(azure) is None
    with_query = openai.OpenAI(base_url="https://x/v1", api_key="k", default_query={"tenant": "a"})
    assert DirectPost.for_client(with_query) is None


class _Handler(http.server.BaseHTTPRequestHandler):
    delay_s = 0.0

    def do_POST(self):  # noqa: N802 - the standard library's name
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(self.delay_s)
        payload = json.dumps(OK).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    _Handler.delay_s = 0.0


@pytest.mark.parametrize("direct", [False, True], ids=["sdk", "direct"])
def test_the_sdks_own_http_client_with_the_timeout_from_settings_answers_and_times_out(provider_url, direct):
    """As `Upstream.from_settings` builds it: the SDK's own HTTP client, an `httpx.Timeout`."""
    client = openai.OpenAI(
        base_url=provider_url, api_key="sk-test-key", max_retries=0, timeout=httpx.Timeout(0.5, connect=2.0)
    )
    sleeps: list[float] = []
    upstream = Upstream(
        client, name="local", simulated=False, retry=RetryPolicy(max_attempts=2), sleep=sleeps.append, direct=direct
    )
    assert (upstream._direct is not None) is direct
    assert upstream.chat(dict(BODY)).body == OK
    _Handler.delay_s = 1.0  # longer than the read timeout
    with pytest.raises(UpstreamTimeout, match=r"did not answer in time \(2 attempt\(s\)\)"):
        upstream.chat(dict(BODY))


def test_every_call_on_a_reused_request_sends_what_the_sdk_sends_with_its_own_body_and_key():
    bodies = [BODY, {**BODY, "max_tokens": 12345, "messages": [{"role": "user", "content": "x" * 500}]}, BODY]
    sent = []
    for direct in (False, True):
        provider = Provider((200, {}, OK))
        client = _upstream(provider, direct=direct, sleeps=[]).client
        poster = DirectPost.for_client(client)
        for index, body in enumerate(bodies):
            if index == 2:
                client.api_key = "sk-rotated-key"  # a new key is sent at once, not the one first built with
            if direct:
                poster.post("/chat/completions", body)
            else:
                client.post("/chat/completions", body=body, cast_to=httpx.Response)
        sent.append(
            [(r.method, str(r.url), r.content, dict(r.headers), r.extensions.get("timeout")) for r in provider.requests]
        )
    assert sent[0] == sent[1]
    assert [headers["content-length"] for _m, _u, _c, headers, _t in sent[1]] == [
        str(len(json.dumps(b, ensure_ascii=False, separators=(",", ":")).encode())) for b in bodies
    ]
    assert sent[1][2][3]["authorization"] == "Bearer sk-rotated-key"


def test_cookies_the_provider_set_are_sent_back_as_the_sdk_sends_them():
    sent = []
    for direct in (False, True):
        provider = Provider((200, {"set-cookie": "__cf_bm=abc; Path=/; Domain=provider.example"}, OK))
        client = _upstream(provider, direct=direct, sleeps=[]).client
        poster = DirectPost.for_client(client)
        for _ in range(3):
            if direct:
                poster.post("/chat/completions", BODY)
            else:
                client.post("/chat/completions", body=BODY, cast_to=httpx.Response)
        sent.append([dict(r.headers) for r in provider.requests])
    assert sent[0] == sent[1]
    assert sent[1][1].get("cookie") == "__cf_bm=abc"
