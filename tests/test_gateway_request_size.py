"""What a request can make a gateway server read and hold before anybody knows who sent it.

A client without a valid team key is refused before its body is read, so a stranger who
can reach the port cannot make a server read, parse and hold a large body; and a key holder's
body is refused (413 `request_too_large`) as soon as it is known to pass
QUORUM_MAX_REQUEST_BYTES: by its Content-Length before anything is read, or while a chunked
body streams in. The tests speak raw HTTP where the point is what the server does before a
body arrives: a request whose body is never sent gets its answer only if nothing waited for it.
"""

from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest
from sqlalchemy import select

from core.identity import keys
from core.models.budgets import BudgetHold
from core.settings import reset_settings
from tests.gateway_support import ADMIN, MODEL, new_key
from tests.test_gateway_http import ledger, moderation_off

HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
# How long an answer may take to come back for a body that was never sent: an answer at
# all proves the server did not wait for the body (it would wait for minutes).
ANSWER_WITHIN_S = 5


def _answer_without_body(server, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    """POST `path` with `headers` (a Content-Length among them) and no body: the status and
    JSON the server answers before any body byte arrives (socket.timeout if it waits)."""
    lines = [f"POST /v1{path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, "the server closed the connection without an answer"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += connection.recv(65536)
    return status, json.loads(body[:length])


def _holds(session) -> int:
    session.rollback()
    return len(session.exec(select(BudgetHold)).all())


@pytest.fixture
def small_cap(monkeypatch):
    """A cap of a few kilobytes, so that the tests send little."""
    monkeypatch.setenv("QUORUM_MAX_REQUEST_BYTES", "4000")
    reset_settings()
    return 4000


@pytest.mark.parametrize("path", ["/chat/completions", "/responses", "/embeddings", "/feedback"])
@pytest.mark.parametrize(
    "authorization", ["", "Bearer qk_live_made-up", "Bearer sk-not-a-quorum-key"], ids=["none", "unknown", "foreign"]
)
def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(server, gateway, path, authorization):
    headers = {"Content-Length": "200000000"}
    if authorization:
        headers["Authorization"] = authorization
    status, answer = _answer_without_body(server, path, headers)
    assert status == 401 and answer["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_known_to_the_process_is_refused_before_the_body_too(server, gateway, session, sim):
    moderation_off(session)
    key = new_key(session)
    assert httpx.post(
        server.base_url + "/chat/completions", json=HELLO, headers={"authorization": f"Bearer {key.secret}"}
    ).is_success  # the key is now in the process's copy
    keys.revoke_key(session=session, actor=ADMIN, key_id=key.key_id)
    status, answer = _answer_without_body(
        server, "/chat/completions", {"Authorization": f"Bearer {key.secret}", "Content-Length": "200000000"}
    )
    assert status == 401 and "revoked" in answer["error"]["message"]


@pytest.mark.parametrize("path", ["/chat/completions", "/prompts/support-answer/completions", "/feedback"])
def test_a_declared_length_above_the_cap_is_a_413_before_anything_is_read(
    server, gateway, session, sim, small_cap, path
):
    moderation_off(session)
    key = new_key(session)
    status, answer = _answer_without_body(
        server, path, {"Authorization": f"Bearer {key.secret}", "Content-Length": str(small_cap + 1)}
    )
    assert status == 413
    assert answer["error"]["code"] == "request_too_large" and f"{small_cap:,} bytes" in answer["error"]["message"]
    assert _holds(session) == 0 and ledger(session) == [] and sim.bodies("/chat/completions") == []


def test_a_chunked_body_is_cut_off_at_the_cap_and_the_connection_serves_the_next_call(
    server, gateway, session, sim, small_cap
):
    moderation_off(session)
    key = new_key(session)
    big = json.dumps({**HELLO, "messages": [{"role": "user", "content": "x" * small_cap}]}).encode()

    def chunks():  # no Content-Length: httpx sends it chunked
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    with httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {key.secret}"}) as http:
        refused = http.post("/chat/completions", content=chunks())
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "request_too_large"
        assert refused.headers["x-should-retry"] == "false"
        assert http.post("/chat/completions", json=HELLO).status_code == 200
    assert len(sim.bodies("/chat/completions")) == 1 and len(ledger(session)) == 1


def test_a_body_of_exactly_the_cap_passes_and_one_byte_more_does_not(server, gateway, session, sim, monkeypatch):
    moderation_off(session)
    key = new_key(session)
    raw = json.dumps(HELLO).encode()
    headers = {"authorization": f"Bearer {key.secret}", "content-type": "application/json"}
    for cap, status in ((len(raw), 200), (len(raw) - 1, 413)):
        monkeypatch.setenv("QUORUM_MAX_REQUEST_BYTES", str(cap))
        reset_settings()
        assert httpx.post(server.base_url + "/chat/completions", content=raw, headers=headers).status_code == status


def test_the_official_sdk_sees_a_413_once_not_retried_and_its_next_call_works(server, gateway, session, sim, small_cap):
    moderation_off(session)
    sent: list[httpx.Request] = []
    counted = httpx.Client(event_hooks={"request": [sent.append]})
    sdk = openai.OpenAI(base_url=server.base_url, api_key=new_key(session).secret, http_client=counted)
    with pytest.raises(openai.APIStatusError) as refused:  # the SDK's default retries are on
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * small_cap}])
    assert refused.value.status_code == 413 and refused.value.code == "request_too_large"
    assert len(sent) == 1
    assert sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]).choices
    assert _holds(session) == 0 and len(ledger(session)) == 1
