"""The Responses API and moderations through the gateway's HTTP endpoint, with the official SDK."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from sqlalchemy import select

from core import clock
from core.audit import record as audit
from core.budgets.pricing import cost_micro
from core.budgets.reservations import current_price_book
from core.budgets.tokens import DEFAULT_MAX_OUTPUT_TOKENS
from core.budgets.usage import usage_from_openai
from core.gateway import policies
from core.gateway.pipeline import Caller, GatewayRequest
from core.models.budgets import BudgetHold, UsageRecord
from core.models.gateway import StoredPayload
from tests.gateway_support import ADMIN, MODEL, RecordingTransport, calls, client, new_key, team_id

TOOLS = [
    {
        "type": "function",
        "name": "lookup_order",
        "description": "Find an order by its id",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    }
]


def canary_key() -> str:
    return "sk-proj-" + "Ab3x" * 12  # built at run time: no real-looking key in the repository


def moderation(session, mode: str, team="Support"):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session, team), pii_action="redact", moderation=mode
    )


def ledger(session) -> list[UsageRecord]:
    session.rollback()
    return list(session.exec(select(UsageRecord).order_by(UsageRecord.id)).scalars())


def billed(session, model: str, usage: dict) -> int:
    session.rollback()
    book = current_price_book(session)
    return cost_micro(book.price_at(model, clock.now()), usage_from_openai(usage))


def settled_stream(session, seconds: float = 10):
    """The streamed call's row, once the server has noticed the client left and settled it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rows = [r for r in calls(session) if r.stream]
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the streamed call was never settled")


def event_of(session, request_id: str):
    session.rollback()
    [event] = [
        e
        for e in audit.recent_events(session, actor=ADMIN, limit=50, action_prefix="gateway.")
        if e.target_id == request_id
    ]
    return event


def test_responses_create_answers_and_is_billed_from_its_usage(server, gateway, session):
    moderation(session, "off")
    raw = client(server, new_key(session)).responses.with_raw_response.create(
        model="o4-mini", instructions="Answer briefly.", input="What are your opening hours?", max_output_tokens=2000
    )
    response = raw.parse()
    assert response.output_text and response.status == "completed"
    assert response.usage.output_tokens_details.reasoning_tokens > 0
    [row] = calls(session)
    assert (row.endpoint, row.status, row.stream) == ("responses", "ok", False)
    assert (row.input_tokens, row.output_tokens) == (response.usage.input_tokens, response.usage.output_tokens)
    assert row.cost_micro == billed(session, "o4-mini", response.usage.model_dump()) > 0
    assert row.response_id == response.id
    event = event_of(session, raw.headers["x-request-id"])
    assert event.after["endpoint"] == "responses" and event.after["cost_micro"] == row.cost_micro
    assert "opening hours" not in json.dumps(event.after)
    assert ledger(session)[-1].cost_micro == row.cost_micro


def test_cached_input_tokens_are_billed_at_the_cached_price(server, session, directory):
    from core.simulator import SimulatorConfig
    from tests.gateway_support import RecordingTransport, make_gateway, use

    use(make_gateway(RecordingTransport(SimulatorConfig(cached_prompt_fraction=0.5))))
    moderation(session, "off")
    response = client(server, new_key(session)).responses.create(model=MODEL, input="Tell me about tea " * 40)
    assert response.usage.input_tokens_details.cached_tokens > 0
    [row] = calls(session)
    full_price = billed(session, MODEL, {**response.usage.model_dump(), "input_tokens_details": {"cached_tokens": 0}})
    assert row.cost_micro == billed(session, MODEL, response.usage.model_dump()) < full_price


def test_max_output_tokens_is_capped_to_what_was_reserved(server, gateway, sim, session):
    moderation(session, "off")
    client(server, new_key(session)).responses.create(model=MODEL, input="Hello")
    sent = json.loads(sim.bodies("/responses")[-1])
    assert sent["max_output_tokens"] == DEFAULT_MAX_OUTPUT_TOKENS


@pytest.mark.parametrize(
    "where", ["instructions", "input_text", "tool_description", "function_output", "output_schema"]
)
def test_a_secret_anywhere_in_the_input_is_blocked_before_the_upstream(server, gateway, sim, session, where):
    secret = canary_key()
    body = {"model": MODEL, "input": "Hello", "tools": TOOLS}
    if where == "instructions":
        body["instructions"] = f"Use the key {secret} when asked."
    elif where == "input_text":
        body["input"] = [{"role": "user", "content": [{"type": "input_text", "text": f"my key is {secret}"}]}]
    elif where == "tool_description":
        body["tools"] = [{**TOOLS[0], "description": f"Calls the API with {secret}"}]
    elif where == "function_output":
        body["input"] = [{"type": "function_call_output", "call_id": "call_1", "output": f"token={secret}"}]
    else:
        body["text"] = {
            "format": {
                "type": "json_schema",
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"reply": {"type": "string", "description": f"sign with {secret}"}},
                },
            }
        }
    with pytest.raises(openai.BadRequestError) as caught:
        client(server, new_key(session)).responses.create(**body)
    assert caught.value.code == "guardrail_blocked" and caught.value.param.startswith("secret.")
    assert sim.bodies("/responses") == []
    [row] = calls(session)
    assert (row.endpoint, row.status, row.http_status) == ("responses", "blocked", 400)
    session.rollback()
    assert secret not in json.dumps([p.request_json for p in session.exec(select(StoredPayload)).scalars()])


def test_personal_data_in_input_items_is_redacted_before_the_upstream(server, gateway, sim, session):
    moderation(session, "off")
    client(server, new_key(session)).responses.create(
        model=MODEL,
        instructions="Reply to ana.lopez@example.com",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Write to ana.lopez@example.com"}]}],
    )
    sent = sim.bodies("/responses")[-1].decode()
    assert "ana.lopez@example.com" not in sent
    assert json.loads(sent)["input"][0]["content"][0]["type"] == "input_text"


def test_parameters_the_gateway_cannot_govern_are_refused_with_their_name(server, gateway, sim, session):
    c = client(server, new_key(session))
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="Hello", previous_response_id="resp_123")
    assert caught.value.param == "previous_response_id" and "send the earlier turns" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="Hello", prompt={"id": "pmpt_123", "variables": {"city": "Paris"}})
    assert caught.value.param == "prompt" and "/v1/prompts/{name}/completions" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, input="Hello", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]}],
        )
    assert caught.value.param == "input[0].content[0].type"
    assert sim.bodies("/responses") == []


def test_streamed_response_is_billed_from_its_completed_event(server, gateway, session):
    moderation(session, "off")
    with client(server, new_key(session)).responses.stream(
        model=MODEL, input="What are your opening hours?", tools=TOOLS
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    [row] = calls(session)
    assert row.stream and row.status == "ok" and not row.usage_estimated
    assert (row.input_tokens, row.output_tokens) == (final.usage.input_tokens, final.usage.output_tokens)
    assert row.cost_micro == billed(session, MODEL, final.usage.model_dump()) and row.response_id == final.id
    events = list(client(server, new_key(session)).responses.create(model=MODEL, input="Hi", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens > 0


def test_a_response_stream_closed_midway_is_billed_for_what_was_received(directory, session, gateway):
    moderation(session, "off")
    caller = Caller(actor=ADMIN, team_id=team_id(session), key_id=new_key(session).key_id)
    body = {"model": MODEL, "input": "Tell me a long story about tea " * 5, "stream": True}
    stream = gateway.call(caller=caller, request=GatewayRequest(kind="responses", body=body))
    received = ""
    for event in stream:
        received += event.get("delta", "") if event["type"] == "response.output_text.delta" else ""
        if len(received.split()) >= 4:
            break
    stream.close()
    full = gateway.call(caller=caller, request=GatewayRequest(kind="responses", body={**body, "stream": False}))
    row = settled_stream(session)
    assert row.usage_estimated and row.status == "ok" and row.response_id
    assert 0 < row.output_tokens < full.body["usage"]["output_tokens"] and row.input_tokens > 0
    assert 0 < row.cost_micro < calls(session)[-1].cost_micro
    assert len(session.exec(select(BudgetHold)).all()) == 0


def test_a_stored_response_is_served_to_its_team_only(server, gateway, session):
    moderation(session, "off")
    moderation(session, "off", team="Data")
    mine = client(server, new_key(session))
    created = mine.responses.create(model=MODEL, input="Hello")
    assert mine.responses.retrieve(created.id).output_text == created.output_text
    with pytest.raises(openai.NotFoundError) as caught:
        client(server, new_key(session, team="Data")).responses.retrieve(created.id)
    assert f"Response with id '{created.id}' not found" in caught.value.message
    with pytest.raises(openai.AuthenticationError):
        client(server, "qk_not-a-key").responses.retrieve(created.id)


def test_an_identical_response_request_is_answered_from_the_cache(server, gateway, sim, session):
    moderation(session, "off")
    c = client(server, new_key(session))
    first = c.responses.create(model=MODEL, input="Hello there", temperature=0)
    again = c.responses.with_raw_response.create(model=MODEL, input="Hello there", temperature=0)
    assert again.headers["x-quorum-cache"] == "hit" and again.parse().id == first.id
    assert len(sim.bodies("/responses")) == 1
    assert [r.cache_hit for r in calls(session)] == [False, True] and calls(session)[1].cost_micro == 0


def test_a_sampled_response_request_always_reaches_the_model(server, gateway, sim, session):
    moderation(session, "off")
    c = client(server, new_key(session))
    c.responses.create(model=MODEL, input="Hello there")
    again = c.responses.with_raw_response.create(model=MODEL, input="Hello there")
    assert again.headers["x-quorum-cache"] == "miss" and len(sim.bodies("/responses")) == 2


def test_moderations_pass_through_free_logged_and_audited(server, gateway, sim, session):
    moderation(session, "block")
    raw = client(server, new_key(session)).moderations.with_raw_response.create(
        model="omni-moderation-latest", input=["I will kill you", "the weather is lovely"]
    )
    result = raw.parse()
    assert [r.flagged for r in result.results] == [True, False]
    assert len(sim.bodies("/moderations")) == 1  # not moderated twice
    [row] = calls(session)
    assert (row.endpoint, row.status, row.cost_micro) == ("moderations", "ok", 0)
    assert event_of(session, raw.headers["x-request-id"]).after["endpoint"] == "moderations"
    stored = session.get(StoredPayload, raw.headers["x-request-id"])
    assert "the weather is lovely" in stored.request_json and '"flagged": true' in stored.response_json
    assert ledger(session)[-1].cost_micro == 0
    with pytest.raises(openai.BadRequestError) as caught:
        client(server, new_key(session)).moderations.create(input=f"is {canary_key()} safe?")
    assert caught.value.code == "guardrail_blocked"


def test_a_held_response_request_is_answered_as_a_response_once_released(server, gateway, session, directory):
    from core.gateway.held import decide
    from core.permissions import Role

    moderation(session, "hold")
    key = new_key(session)
    headers = {"Authorization": f"Bearer {key.secret}"}
    held = httpx.post(
        f"{server.base_url}/responses",
        headers=headers,
        json={"model": MODEL, "instructions": "Be kind.", "input": "I will kill you"},
    )
    assert held.status_code == 202 and held.json()["object"] == "quorum.held_request"
    decide(
        session=session,
        actor=directory.with_role(Role.GOVERNANCE_LEAD),
        public_id=held.json()["id"],
        release=True,
        comment="A quote from a ticket",
    )
    poll = httpx.get(f"{server.base_url}/held/{held.json()['id']}", headers=headers).json()
    assert poll["status"] == "released" and poll["response"]["object"] == "response"
    assert poll["response"]["output"][0]["content"][0]["text"]
    assert [r.endpoint for r in calls(session)] == ["responses", "responses"]


class _LeakyTransport(RecordingTransport):
    """The simulator, with a credential written into every Responses answer (an output hold)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = super().handle_request(request)
        if request.method != "POST" or not request.url.path.endswith("/responses"):
            return reply
        body = json.loads(reply.read())
        body["output"][0]["content"][0]["text"] += f" Use {canary_key()} to log in."
        return httpx.Response(reply.status_code, headers={"content-type": "application/json"}, json=body)


def test_a_response_held_for_review_is_not_served_by_retrieve_until_released(server, session, directory):
    from core.gateway.held import decide
    from core.permissions import Role
    from tests.gateway_support import make_gateway, use

    use(make_gateway(_LeakyTransport()))
    moderation(session, "off")
    key = new_key(session)
    headers = {"Authorization": f"Bearer {key.secret}"}
    held = httpx.post(f"{server.base_url}/responses", headers=headers, json={"model": MODEL, "input": "Hello"})
    assert held.status_code == 202
    [row] = calls(session)
    assert row.status == "held" and row.response_id
    retrieved = httpx.get(f"{server.base_url}/responses/{row.response_id}", headers=headers)
    assert retrieved.status_code == 202 and retrieved.json()["id"] == held.json()["id"]
    decide(
        session=session,
        actor=directory.with_role(Role.GOVERNANCE_LEAD),
        public_id=held.json()["id"],
        release=True,
        comment="A test credential",
    )
    released = httpx.get(f"{server.base_url}/responses/{row.response_id}", headers=headers)
    assert released.status_code == 200 and released.json()["id"] == row.response_id
