"""The gateway's call POSTs are answered before the app's own middleware and router
(core.http.call_path); everything else reaches the app as before."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.http.call_path import CALL_KINDS
from core.http.routes import http_middleware, http_routes
from tests.gateway_support import HELLO, MODEL, calls, new_key


class Seen:
    """Middleware standing for the dashboard's own (Streamlit's): records what reaches it."""

    paths: list[str] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@pytest.fixture
def app():
    Seen.paths = []
    return Starlette(routes=http_routes(), middleware=[*http_middleware(), Middleware(Seen)])


def _send(app, method: str, path: str, *, root_path: str = "", **options) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://quorum.test") as http:
            return await http.request(method, path, **options)

    return asyncio.run(go())


def test_an_sdk_call_is_answered_without_passing_the_app_s_middleware(app, gateway, session):
    key = new_key(session)

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            client = openai.AsyncOpenAI(
                base_url="http://quorum.test/v1", api_key=key.secret, http_client=http, max_retries=0
            )
            answer = await client.chat.completions.create(model=MODEL, messages=HELLO)
            listed = await client.models.list()
            return answer, listed

    answer, listed = asyncio.run(go())
    assert answer.choices[0].message.content
    assert [c.status for c in calls(session)] == ["ok"]  # governed as ever: in the call log
    assert MODEL in [m.id for m in listed.data]
    # The call never reached the dashboard's middleware; the model list (not a call) did.
    assert Seen.paths == ["GET /v1/models"]


@pytest.mark.parametrize("path", sorted(CALL_KINDS))
def test_every_call_path_is_answered_in_openai_s_shape_before_the_app(app, db_url, path):
    response = _send(app, "POST", path, json={"model": MODEL}, headers={"authorization": "Bearer qk-not-a-key"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert Seen.paths == []


def test_another_method_on_a_call_path_still_gets_the_405_naming_post(app, db_url):
    response = _send(app, "GET", "/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert Seen.paths == ["GET /v1/chat/completions"]


def test_a_path_that_only_starts_like_a_call_path_goes_to_the_app(app, db_url):
    for path in ("/v1/chat/completions/", "/v1/chat/completionsx", "/v2/chat/completions"):
        _send(app, "POST", path, json={})
    assert Seen.paths == [
        "POST /v1/chat/completions/",
        "POST /v1/chat/completionsx",
        "POST /v2/chat/completions",
    ]


def test_behind_a_proxy_prefix_the_call_is_matched_without_it_and_only_at_a_segment_boundary(app, db_url):
    bad_key = {"authorization": "Bearer qk-not-a-key"}
    answered = _send(app, "POST", "/gw/v1/chat/completions", root_path="/gw", json={}, headers=bad_key)
    assert answered.json()["error"]["code"] == "invalid_api_key"
    assert Seen.paths == []
    _send(app, "POST", "/gwx/v1/chat/completions", root_path="/gw", json={}, headers=bad_key)
    assert Seen.paths == ["POST /gwx/v1/chat/completions"]
