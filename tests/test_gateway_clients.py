"""The gateway as an application team meets it: the official openai SDK with its default
settings (retries included) and raw HTTP, pointed at Quorum instead of OpenAI.

A client's mistake is a 400 naming the parameter, never a 500; a refusal that retrying
cannot fix is not retried by the SDK; every /v1 path answers JSON in OpenAI's shape.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import openai
import pytest
from sqlalchemy import select
from starlette.responses import HTMLResponse
from starlette.routing import Route

from core import clock
from core.budgets import config as budget_config
from core.budgets import periods
from core.gateway.wiring import set_gateway
from core.models.budgets import BudgetHold
from tests.gateway_support import ADMIN, HELLO, MODEL, Server, calls, client, new_key, team_id
from tests.test_gateway_http import ledger, moderation_off


def holds(session) -> int:
    session.rollback()
    return len(session.exec(select(BudgetHold)).all())


def post(server, key, path: str, *, json=None, content: bytes | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key.secret}", "content-type": "application/json"}
    return httpx.post(server.base_url + path, json=json, content=content, headers=headers, timeout=10)


def assert_openai_error(
    response: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


# ---- malformed requests: 400 naming the parameter, nothing held --------------------------


MALFORMED = [
    pytest.param({"model": MODEL, "messages": ["What are your opening hours?"]}, "messages[0]", id="string-message"),
    pytest.param({"model": MODEL, "messages": [None]}, "messages[0]", id="null-message"),
    pytest.param(
        {"model": MODEL, "messages": HELLO, "response_format": "json"}, "response_format", id="response-format-string"
    ),
    pytest.param(
        {"model": MODEL, "messages": HELLO, "stream": True, "stream_options": "yes"},
        "stream_options",
        id="stream-options-string",
    ),
    pytest.param({"model": MODEL, "messages": HELLO, "temperature": "warm"}, "temperature", id="temperature-text"),
    pytest.param(
        {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]},
        "messages[0].content[0].text",
        id="content-part-number",
    ),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED)
def test_a_malformed_chat_body_is_a_400_naming_the_parameter_and_holds_nothing(
    server, gateway, session, sim, capfd, body, param
):
    moderation_off(session)
    response = post(server, new_key(session), "/chat/completions", json=body)
    error = assert_openai_error(response, 400, code="invalid_request", param=param)
    assert error["type"] == "invalid_request_error" and param in error["message"]
    assert response.headers["x-should-retry"] == "false"
    assert holds(session) == 0 and ledger(session) == [] and sim.bodies("/chat/completions") == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_lone_surrogate_in_content_is_a_400_not_a_500(server, gateway, session, sim, capfd):
    moderation_off(session)
    raw = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    response = post(server, new_key(session), "/chat/completions", content=raw)
    error = assert_openai_error(response, 400, param="messages[0].content")
    assert "surrogate" in error["message"]
    assert holds(session) == 0 and sim.bodies("/chat/completions") == []
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("path", "raw", "named"),
    [
        ("/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
         b'"temperature": NaN}', "NaN"),
        ("/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
         b'"metadata": {"score": -Infinity}}', "-Infinity"),
        ("/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
         b'"top_p": 1e400}', "1e400"),
        ("/responses", b'{"model": "gpt-4o-mini", "input": "hi", "temperature": Infinity}', "Infinity"),
        ("/embeddings", b'{"model": "text-embedding-3-small", "input": "hi", "x": NaN}', "NaN"),
        ("/moderations", b'{"input": "hi", "x": -1e999}', "-1e999"),
    ],
    ids=["nan", "infinity-in-metadata", "beyond-a-float", "responses", "embeddings", "moderations"],
)  # fmt: skip
def test_a_number_json_does_not_allow_is_a_400_not_a_500(server, gateway, session, sim, capfd, path, raw, named):
    """NaN and Infinity are what Python's json.dumps writes for such floats, so a Python client
    sends them; the parser here took them, and the call failed with a 500 when it was sent on."""
    moderation_off(session)
    response = post(server, new_key(session), path, content=raw)
    error = assert_openai_error(response, 400, code="invalid_request")
    assert error["message"].startswith("The request body is not valid JSON") and named in error["message"]
    assert holds(session) == 0 and ledger(session) == [] and sim.bodies(path) == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_float_that_json_allows_still_passes(server, gateway, session, sim):
    moderation_off(session)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 0.25, "top_p": 1e-3}
    response = post(server, new_key(session), "/chat/completions", json=body)
    assert response.status_code == 200, response.text
    sent = json.loads(sim.bodies("/chat/completions")[0])
    assert sent["temperature"] == 0.25 and sent["top_p"] == 1e-3


def test_the_sdk_sees_a_bad_request_naming_the_message_not_an_internal_error(server, gateway, session):
    moderation_off(session)
    sdk = openai.OpenAI(base_url=server.base_url, api_key=new_key(session).secret)  # default retries
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=[None])
    assert caught.value.param == "messages[0]" and caught.value.code == "invalid_request"


def test_a_malformed_embeddings_body_and_prompt_call_are_400s(server, gateway, session, sim):
    moderation_off(session)
    key = new_key(session)
    error = assert_openai_error(
        post(server, key, "/embeddings", json={"model": "text-embedding-3-small", "input": "x", "encoding_format": 3}),
        400,
        param="encoding_format",
    )
    assert "encoding_format" in error["message"]
    assert_openai_error(
        post(
            server,
            key,
            "/prompts/support-answer/completions",
            json={"variables": {}, "stream": True, "stream_options": "yes"},
        ),
        400,
        param="stream_options",
    )
    assert_openai_error(post(server, key, "/prompts/support-answer/completions", json={"label": 5}), 400, param="label")
    assert holds(session) == 0 and sim.received == []


def test_unknown_parameters_pass_through_to_the_upstream(server, gateway, session, sim):
    moderation_off(session)
    response = post(
        server,
        new_key(session),
        "/chat/completions",
        json={"model": MODEL, "messages": HELLO, "a_new_openai_option": {"x": 1}},
    )
    assert response.status_code == 200, response.text
    assert b'"a_new_openai_option"' in sim.bodies("/chat/completions")[-1]


# ---- a defect in the gateway: JSON 500 with an id, nothing held, body not logged ------------


class _DefectiveBudgets:
    """The real budget gate, except that pricing the call fails (after the reservation)."""

    def __init__(self, secret_text: str) -> None:
        from core.gateway.adapters import BudgetsGate

        self._real, self._secret = BudgetsGate(), secret_text

    def __getattr__(self, name):
        return getattr(self._real, name)

    def cost_micro(self, reservation, model, usage):
        raise RuntimeError(f"defect while pricing {self._secret}")


def test_an_unexpected_error_is_a_json_500_with_a_request_id_and_releases_the_hold(
    server, gateway, session, sim, caplog
):
    from core.gateway.pipeline import Gateway

    moderation_off(session)
    marker = "opening-hours-" + "Zq9" * 4
    set_gateway(Gateway(upstream=gateway.upstream, prompts=gateway.prompts, budget=_DefectiveBudgets(marker)))
    response = post(
        server,
        new_key(session),
        "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": marker}]},
    )
    error = assert_openai_error(response, 500, code="internal_error")
    request_id = response.headers["x-request-id"]
    assert error["type"] == "api_error" and request_id in error["message"]
    assert "defect" not in response.text and "Traceback" not in response.text
    assert holds(session) == 0
    [row] = calls(session)
    assert (row.request_id, row.status, row.http_status) == (request_id, "error", 500)
    logged = caplog.text
    assert request_id in logged and "RuntimeError" in logged and marker not in logged


# ---- refusals the SDK must not retry, and those worth waiting for ---------------------------


def _spend_then_cap(server, session, period="month"):
    c = client(server, new_key(session))
    c.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=50)
    [spent] = ledger(session)
    budget_config.set_budget(
        session=session,
        actor=ADMIN,
        scope="team",
        target_id=team_id(session),
        data=budget_config.BudgetInput(cap_usd=f"{spent.cost_micro / 1e6:.6f}", period=period),
    )


def test_a_budget_refusal_is_not_retried_by_the_sdk(server, gateway, session):
    moderation_off(session)
    _spend_then_cap(server, session)
    sdk = openai.OpenAI(base_url=server.base_url, api_key=new_key(session).secret)  # default: 2 retries
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "And on Sundays?"}])
    assert time.monotonic() - started < 0.5  # no backoff waited
    assert caught.value.code == "budget_exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert [r.status for r in calls(session)] == ["ok", "budget_exceeded"]  # one refusal, not three


def test_a_daily_budget_resetting_in_seconds_says_when_to_retry(server, gateway, session):
    moderation_off(session)
    end = periods.period_at("day", clock.now()).end
    clock.set_clock(lambda: end - timedelta(seconds=20))
    _spend_then_cap(server, session, period="day")
    with pytest.raises(openai.RateLimitError) as caught:
        client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO)
    headers = caught.value.response.headers
    assert "x-should-retry" not in headers and 19 <= int(headers["retry-after"]) <= 21


def test_an_open_circuit_breaker_says_when_to_retry(server, sim, session, directory):
    from core.gateway.upstream import CircuitBreaker
    from tests.gateway_support import make_gateway

    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=30)
    breaker.record_failure()
    set_gateway(make_gateway(sim, breaker=breaker))
    moderation_off(session)
    with pytest.raises(openai.APIStatusError) as caught:
        client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 502 and 28 <= int(caught.value.response.headers["retry-after"]) <= 30


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_beyond_the_models_output_limit_is_a_400_not_a_budget_refusal(server, gateway, session, sim, field):
    moderation_off(session)
    sdk = openai.OpenAI(base_url=server.base_url, api_key=new_key(session).secret)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=HELLO, **{field: 10**9})
    assert caught.value.param == field
    assert "16,384" in caught.value.message and MODEL in caught.value.message
    assert holds(session) == 0 and sim.bodies("/chat/completions") == []


# ---- every /v1 path answers JSON ------------------------------------------------------------


@pytest.fixture
def app_server(db_url):
    """The routes as the real app mounts them: the dashboard's catch-all after Quorum's."""
    from core.gateway import policies

    async def dashboard(_request):
        return HTMLResponse("<!doctype html><title>Quorum</title>")

    server = Server(extra_routes=[Route("/{path:path}", dashboard, methods=["GET", "HEAD"])]).start()
    yield server
    server.stop()
    set_gateway(None)
    policies.forget()


def test_a_model_is_retrieved_by_id_and_an_unknown_one_is_model_not_found(app_server, gateway, session):
    sdk = client(app_server, new_key(session))
    found = sdk.models.retrieve(MODEL)
    assert (found.id, found.object) == (MODEL, "model")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("gpt-unknown")
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/chat/completions", 405, "POST"),
        ("PUT", "/models", 405, "GET"),
        ("GET", "/no/such/thing", 404, None),
        ("POST", "/completions", 404, None),
        ("GET", "/", 404, None),
    ],
)
def test_every_v1_path_answers_json_never_the_dashboard(app_server, gateway, session, method, path, status, allow):
    key = new_key(session)
    response = httpx.request(
        method,
        app_server.base_url + path,
        headers={"authorization": f"Bearer {key.secret}"},
        json={} if method != "GET" else None,
    )
    error = assert_openai_error(response, status, code="method_not_allowed" if allow else "unknown_url")
    assert path in error["message"]
    if allow:
        assert response.headers["allow"] == allow
    assert httpx.get(f"http://127.0.0.1:{app_server.port}/some/page").status_code == 200  # the dashboard still is


def test_the_sdk_gets_an_error_not_a_page_from_an_endpoint_quorum_lacks(app_server, gateway, session):
    sdk = client(app_server, new_key(session))
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.completions.create(model=MODEL, prompt="Say hi")
    assert caught.value.code == "unknown_url"
