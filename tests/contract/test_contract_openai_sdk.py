"""What an application sees when it points the official openai SDK (default settings, retries
included) or plain HTTP at Quorum: every method Quorum serves, every error class, streams
with and without usage, and a client that leaves a stream midway.

Each test runs against Quorum with its simulator and against Quorum in front of a
third-party mock server (see conftest.py). The mock's answers are canned, so against it
the tests assert shapes, governance and billing from the upstream's usage, not content.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from sqlmodel import Session

from core import clock
from core.budgets.pricing import cost_micro
from core.budgets.reservations import current_price_book
from core.budgets.tokens import text_tokens_estimate
from core.budgets.usage import usage_from_openai
from tests.contract.conftest import Running

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "What are your opening hours?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def sdk(quorum: Running, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=quorum.base_url, api_key=key or quorum.keys["caller"])


def expected_cost(quorum: Running, model: str, usage: dict) -> int:
    with Session(quorum.engine) as session:
        return cost_micro(current_price_book(session).price_at(model, clock.now()), usage_from_openai(usage))


def only_simulator(quorum: Running, why: str) -> None:
    if quorum.third_party:
        pytest.skip(f"the third-party upstream {why}")


# ---- models ----------------------------------------------------------------------------------


def test_models_list_and_retrieve(quorum):
    client = sdk(quorum)
    names = [m.id for m in client.models.list()]
    assert MODEL in names and "text-embedding-3-small" in names
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    assert [m.id for m in sdk(quorum, quorum.keys["legal"]).models.list()] == [MODEL]


# ---- chat completions --------------------------------------------------------------------------


def test_chat_completion_is_billed_from_the_upstream_usage(quorum):
    raw = sdk(quorum).chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.choices[0].message.content
    row = quorum.call_row(raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.http_status, row.simulated) == ("chat", "ok", 200, not quorum.third_party)
    assert (row.input_tokens, row.output_tokens) == (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert row.cost_micro == expected_cost(quorum, MODEL, completion.usage.model_dump()) > 0


def test_chat_stream_with_usage_ends_with_a_usage_chunk(quorum):
    raw = sdk(quorum).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    row = quorum.call_row(raw.headers["x-request-id"])
    assert row.stream and not row.usage_estimated and row.output_tokens == chunks[-1].usage.completion_tokens
    assert row.cost_micro == expected_cost(quorum, MODEL, chunks[-1].usage.model_dump())


def test_chat_stream_without_usage_has_none_but_is_billed_from_it(quorum):
    raw = sdk(quorum).chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, stream=True)
    chunks = list(raw.parse())
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    row = quorum.call_row(raw.headers["x-request-id"])
    assert row.output_tokens > 0 and not row.usage_estimated and row.cost_micro > 0


def test_tool_calls_across_turns(quorum):
    client = sdk(quorum)
    messages = [{"role": "user", "content": "What is the weather in Paris today?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    [call] = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["city"] == "Paris"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'},
    ]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.object == "chat.completion" and second.usage.prompt_tokens > 0
    if not quorum.third_party:  # the mock answers its canned tool call again
        assert second.choices[0].finish_reason == "stop" and "sunny" in second.choices[0].message.content


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {
                "name": "hours",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {"opens": {"type": "string"}},
                    "required": ["opens"],
                    "additionalProperties": False,
                },
            },
        },
    ],
)
def test_json_modes(quorum, response_format):
    completion = sdk(quorum).chat.completions.create(
        model=MODEL,
        response_format=response_format,
        messages=[{"role": "user", "content": "Opening hours as JSON, please."}],
    )
    content = completion.choices[0].message.content
    assert isinstance(content, str) and content
    if not quorum.third_party:
        parsed = json.loads(content)
        assert response_format["type"] == "json_object" or set(parsed) == {"opens"}


# ---- embeddings, moderations, prompts by name ---------------------------------------------------


def test_embeddings(quorum):
    only_simulator(quorum, "serves no embeddings")
    result = sdk(quorum).embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 1536 and result.usage.prompt_tokens > 0


def test_moderations_are_a_free_governed_passthrough(quorum):
    only_simulator(quorum, "serves no moderations")
    raw = sdk(quorum).moderations.with_raw_response.create(input=["I will kill you", "the weather is lovely"])
    assert [r.flagged for r in raw.parse().results] == [True, False]
    row = quorum.call_row(raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.cost_micro) == ("moderations", "ok", 0)


def test_a_catalog_prompt_by_name_over_raw_http(quorum):
    if quorum.third_party:
        name, variables = (
            "marketing-copy-review",
            {
                "copy_text": "Our new kettle boils water fast.",
                "channel": "email",
                "max_characters": 0,
                "brand_voice": ["Plain words"],
                "approved_facts": ["Boils 1 litre in 3 minutes"],
            },
        )
    else:
        name, variables = (
            "support-answer",
            {
                "customer_name": "Ana",
                "customer_id": "C-1001",
                "question": "Where is my parcel?",
                "kb_snippets": [],
                "channel": "email",
            },
        )
    reply = httpx.post(
        f"{quorum.base_url}/prompts/{name}/completions",
        json={"variables": variables},
        headers={"Authorization": f"Bearer {quorum.keys['caller']}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    message = reply.json()["choices"][0]["message"]
    assert message["role"] == "assistant" and (message.get("content") or message.get("tool_calls"))
    row = quorum.call_row(reply.headers["x-request-id"])
    assert (row.endpoint, row.prompt_name, row.status) == ("prompt", name, "ok") and row.cost_micro > 0


# ---- the Responses API -------------------------------------------------------------------------


def test_responses_create_is_billed_from_its_usage(quorum):
    raw = sdk(quorum).responses.with_raw_response.create(
        model=MODEL, instructions="Answer briefly.", input="What are your opening hours?"
    )
    response = raw.parse()
    assert response.object == "response" and response.output_text
    row = quorum.call_row(raw.headers["x-request-id"])
    assert (row.endpoint, row.status, row.response_id) == ("responses", "ok", response.id)
    assert (row.input_tokens, row.output_tokens) == (response.usage.input_tokens, response.usage.output_tokens)
    assert row.cost_micro == expected_cost(quorum, MODEL, response.usage.model_dump()) > 0


def test_responses_stream_is_billed_from_the_completed_event(quorum):
    client = sdk(quorum)
    with client.responses.stream(model=MODEL, input="What are your opening hours?") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed" and final.output_text
    raw = client.responses.with_raw_response.create(model=MODEL, input="Hello", stream=True)
    events = list(raw.parse())
    row = quorum.call_row(raw.headers["x-request-id"])
    usage = events[-1].response.usage
    assert row.stream and not row.usage_estimated and row.output_tokens == usage.output_tokens
    assert row.cost_micro == expected_cost(quorum, MODEL, usage.model_dump())


def test_a_stored_response_is_retrieved(quorum):
    only_simulator(quorum, "keeps no responses")
    client = sdk(quorum)
    created = client.responses.create(model=MODEL, input="Hello")
    assert client.responses.retrieve(created.id).output_text == created.output_text
    with pytest.raises(openai.NotFoundError):
        sdk(quorum, quorum.keys["legal"]).responses.retrieve(created.id)


# ---- every error class -------------------------------------------------------------------------


def test_a_wrong_key_is_an_authentication_error(quorum):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(quorum, "qk_live_not-a-real-key").chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


def test_a_model_outside_the_allow_list_is_permission_denied(quorum):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(quorum, quorum.keys["legal"]).chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "model_not_allowed" and caught.value.param == "model"


def test_an_exhausted_hard_budget_is_a_rate_limit_error_and_bills_nothing(quorum):
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(quorum, quorum.keys["data"]).responses.create(model=MODEL, input="Hello")
    assert caught.value.code == "budget_exceeded"
    row = quorum.call_row(caught.value.response.headers["x-request-id"])
    assert (row.status, row.http_status, row.cost_micro) == ("budget_exceeded", 429, 0)


def test_bad_requests_name_the_parameter(quorum):
    client = sdk(quorum)
    secret = "sk-proj-" + "Ab3x" * 12  # built at run time
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"key {secret}"}])
    assert caught.value.code == "guardrail_blocked" and caught.value.param.startswith("secret.")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Hello", instructions=f"use {secret}")
    assert caught.value.param.startswith("secret.")
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Hello", previous_response_id="resp_1")
    assert caught.value.param == "previous_response_id"


# ---- a client that leaves midway ---------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat/completions", "responses"])
def test_a_client_leaving_a_stream_midway_is_billed_for_what_it_received(quorum, endpoint):
    text = "Tell me a long story about tea."
    body = {"messages": [{"role": "user", "content": text}]} if endpoint == "chat/completions" else {"input": text}
    headers = {"Authorization": f"Bearer {quorum.keys['caller']}"}
    with httpx.stream(
        "POST",
        f"{quorum.base_url}/{endpoint}",
        headers=headers,
        timeout=30,
        json={"model": MODEL, "stream": True, **body},
    ) as reply:
        request_id = reply.headers["x-request-id"]
        deltas = 0
        for line in reply.iter_lines():
            deltas += line.startswith("data: ") and ('"delta"' in line)
            if deltas >= 3:
                break
    full = httpx.post(
        f"{quorum.base_url}/{endpoint}", headers=headers, timeout=30, json={"model": MODEL, **body}
    ).json()
    row = quorum.call_row(request_id)
    assert row.status == "ok" and row.cost_micro > 0 and row.output_tokens > 0
    if quorum.third_party:
        # Its chunks come 20 ms apart, so the client surely left before the end; its usage is canned,
        # so compare with the whole answer's text instead.
        whole = (
            full["choices"][0]["message"]["content"]
            if endpoint == "chat/completions"
            else full["output"][0]["content"][0]["text"]
        )
        assert row.usage_estimated and row.output_tokens < text_tokens_estimate(whole)
    else:
        # The simulator may finish before the server notices the client left: then the usage is exact.
        assert row.output_tokens <= full["usage"].get("completion_tokens", full["usage"].get("output_tokens"))
