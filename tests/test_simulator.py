"""The simulator, exercised through the official openai SDK (never patched).

Each behaviour that depends on the carrier runs twice: in-process through the httpx
transport, and over HTTP against a real uvicorn server on a free port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import jsonschema
import openai
import pytest
import uvicorn

from core.simulator import (
    SIMULATED_HEADER,
    SIMULATOR_BASE_URL,
    SYSTEM_FINGERPRINT,
    SimulatorConfig,
    SimulatorTransport,
    async_simulated_client,
    engine,
    simulated_client,
)
from core.simulator.prompt import estimate_tokens
from core.simulator.server import create_app

QUESTION = [{"role": "user", "content": "How should a finance team forecast monthly cloud spending for analytics?"}]
FAST_RETRY = {"retry_after_s": 0.01}


@pytest.fixture(scope="module")
def http_server():
    """A real uvicorn server on a free port; tests swap ``app.state.simulator_config``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started:
        assert time.monotonic() < deadline, "simulator server did not start within 5 s"
        time.sleep(0.01)
    yield app, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=5)


class Carrier:
    """Builds clients that reach the simulator one way: in-process or over HTTP."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind, self.request, self.opened = kind, request, []

    def openai(self, config: SimulatorConfig | None = None, **options) -> openai.OpenAI:
        config = config or SimulatorConfig()
        if self.kind == "transport":
            client = simulated_client(config, **options)
        else:
            client = openai.OpenAI(base_url=self._serve(config), api_key="sk-sim", **options)
        self.opened.append(client)
        return client

    def http(self, config: SimulatorConfig | None = None) -> httpx.Client:
        """A plain httpx client, for requests the SDK would never send (malformed JSON)."""
        config = config or SimulatorConfig()
        if self.kind == "transport":
            client = httpx.Client(transport=SimulatorTransport(config), base_url=SIMULATOR_BASE_URL)
        else:
            client = httpx.Client(base_url=self._serve(config))
        self.opened.append(client)
        return client

    def _serve(self, config: SimulatorConfig) -> str:
        app, base_url = self.request.getfixturevalue("http_server")
        app.state.simulator_config = config
        return base_url


@pytest.fixture(params=["transport", "http"])
def carrier(request):
    carrier = Carrier(request.param, request)
    yield carrier
    for client in carrier.opened:
        client.close()


def ask(client: openai.OpenAI, messages=QUESTION, model: str = "gpt-4o", **params):
    return client.chat.completions.create(model=model, messages=messages, **params)


# --- completions -------------------------------------------------------------------


def test_completion_has_usage_consistent_with_its_text_and_is_marked_simulated(carrier):
    client = carrier.openai()
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=QUESTION)
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert raw.headers[SIMULATED_HEADER] == "true"
    assert completion.system_fingerprint == SYSTEM_FINGERPRINT
    assert completion.choices[0].finish_reason == "stop"
    assert "finance" in text  # the answer reflects the prompt's key words
    usage = completion.usage
    assert usage.completion_tokens == estimate_tokens(text)
    assert usage.prompt_tokens > estimate_tokens(QUESTION[0]["content"])  # plus message overhead
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_same_request_same_answer_and_different_prompt_or_model_differ():
    client = simulated_client()
    first = ask(client).choices[0].message.content
    assert ask(client).choices[0].message.content == first
    other_prompt = [{"role": "user", "content": "Which vacation destinations suit a family with toddlers?"}]
    assert ask(client, other_prompt).choices[0].message.content != first
    assert ask(client, model="gpt-4.1-mini").choices[0].message.content != first


def test_reasoning_models_bill_reasoning_tokens_inside_completion_tokens():
    completion = ask(simulated_client(), model="o4-mini")
    usage = completion.usage
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    assert usage.completion_tokens == reasoning + estimate_tokens(completion.choices[0].message.content)


def test_json_schema_output_is_an_instance_of_the_schema():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 40},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "author": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"], "minimum": 18}},
                "required": ["name", "age"],
                "additionalProperties": False,
            },
        },
        "required": ["title", "sentiment", "score", "tags", "author"],
        "additionalProperties": False,
    }
    completion = ask(
        simulated_client(),
        [{"role": "user", "content": "Review: the new dashboard is fast and the budgets page is clear."}],
        response_format={"type": "json_schema", "json_schema": {"name": "review", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


@pytest.mark.parametrize(
    "schema",
    [
        {  # OpenAI's chain-of-thought example: $defs and $ref
            "$defs": {
                "step": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {
                "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
                "final_answer": {"type": "string"},
            },
            "required": ["steps", "final_answer"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "exclusiveMinimum": 5, "maximum": 7},
                "labels": {"type": "array", "uniqueItems": True, "items": {"enum": ["a", "b", "c"]}, "minItems": 2},
                "due": {"type": "string", "format": "date-time"},
                "note": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 30}]},
                "flags": {"allOf": [{"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]},
                                    {"properties": {"y": {"const": 3}}, "required": ["y"]}]},
            },
            "required": ["count", "labels", "due", "note", "flags"],
        },
    ],
)  # fmt: skip
def test_schema_features_used_by_structured_outputs_are_honoured(schema):
    for prompt in ("Plan the quarterly budget review.", "List risks of the vendor contract renewal."):
        body = {
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": prompt}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}},
        }
        jsonschema.validate(json.loads(engine.chat_completion(body)["choices"][0]["message"]["content"]), schema)


def test_simulator_never_imports_streamlit():
    import pathlib

    for path in (pathlib.Path(__file__).parents[1] / "core" / "simulator").glob("*.py"):
        assert "streamlit" not in path.read_text(), path


def test_json_object_mode_returns_an_object_and_requires_the_word_json():
    client = simulated_client()
    messages = [{"role": "system", "content": "Answer in JSON."}, *QUESTION]
    content = ask(client, messages, response_format={"type": "json_object"}).choices[0].message.content
    assert isinstance(json.loads(content), dict)
    with pytest.raises(openai.BadRequestError):
        ask(client, response_format={"type": "json_object"})


def test_tool_call_arguments_are_valid_against_the_function_schema():
    parameters = {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "unit"],
        "additionalProperties": False,
    }
    tools = [
        {"type": "function", "function": {"name": "send_email", "description": "Send an email", "parameters": {}}},
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": parameters},
        },
    ]
    client = simulated_client()
    completion = ask(client, [{"role": "user", "content": "What is the weather in Lisbon right now?"}], tools=tools)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, parameters)
    assert arguments["location"] == "Lisbon"
    # A message unrelated to any tool is answered in text, unless the choice forces a call.
    unrelated = [{"role": "user", "content": "Tell me a short poem about autumn leaves."}]
    assert ask(client, unrelated, tools=tools).choices[0].finish_reason == "stop"
    forced = ask(client, unrelated, tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    jsonschema.validate(json.loads(forced.choices[0].message.tool_calls[0].function.arguments), parameters)


def test_max_tokens_truncates_and_reports_length():
    client = simulated_client()
    completion = ask(client, max_tokens=5)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens <= 5
    assert ask(client).choices[0].message.content.startswith(completion.choices[0].message.content)


def test_n_other_than_one_is_refused():
    with pytest.raises(openai.BadRequestError):
        ask(simulated_client(), n=2)


def test_prompt_shapes_summary_and_clarifying_question():
    summary = engine.chat_completion({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Summarize the user's text with a TL;DR and key points."},
        {"role": "user", "content": "Revenue grew 12%. Hiring raised costs. The board approved the budget."},
    ]})["choices"][0]["message"]["content"]  # fmt: skip
    assert summary.startswith("TL;DR:") and "Key points:" in summary
    clarify = engine.chat_completion({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "If a request is vague, ask for clarification."},
        {"role": "user", "content": "fix it"},
    ]})["choices"][0]["message"]["content"]  # fmt: skip
    assert clarify.rstrip().endswith("?")


# --- streaming ---------------------------------------------------------------------


def test_stream_with_usage_matches_the_whole_answer(carrier):
    client = carrier.openai()
    whole = ask(client)
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for d in deltas if d) >= 3
    assert "".join(deltas) == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_dropped_stream_surfaces_as_a_connection_error(carrier):
    client = carrier.openai(SimulatorConfig(faults=["drop_stream"], drop_after_chunks=2))
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in ask(client, stream=True):
            received.append(chunk)
    assert len(received) == 2  # what arrived before the cut is still delivered


# --- embeddings, moderation, models ------------------------------------------------


def test_embeddings_have_model_dimensions_unit_length_and_are_deterministic():
    client = simulated_client()
    small = client.embeddings.create(model="text-embedding-3-small", input=["budget forecast", "budget forecast"])
    assert len(small.data[0].embedding) == 1536
    assert small.data[0].embedding == small.data[1].embedding
    assert abs(sum(v * v for v in small.data[0].embedding) - 1) < 1e-4
    large = client.embeddings.create(model="text-embedding-3-large", input="budget forecast", encoding_format="float")
    assert len(large.data[0].embedding) == 3072
    short = client.embeddings.create(model="text-embedding-3-small", input="budget forecast", dimensions=256)
    assert len(short.data[0].embedding) == 256
    other = client.embeddings.create(model="text-embedding-3-small", input="holiday photos")
    assert other.data[0].embedding != small.data[0].embedding
    assert small.usage.prompt_tokens > 0


def test_moderation_flags_violence_and_passes_plain_english():
    result = (
        simulated_client()
        .moderations.create(
            model="omni-moderation-latest",
            input=["I am going to kill him with a knife.", "The quarterly budget review is on Tuesday."],
        )
        .results
    )
    assert result[0].flagged and result[0].categories.violence
    assert result[0].category_scores.violence > 0.5
    assert not result[1].flagged


def test_models_list_includes_chat_and_embedding_models():
    ids = {m.id for m in simulated_client().models.list()}
    assert {"gpt-4o", "o3", "text-embedding-3-small"} <= ids


# --- errors and faults -------------------------------------------------------------


def test_rate_limit_then_success_is_retried_by_the_sdk(carrier):
    config = SimulatorConfig(faults=["429", "ok"], **FAST_RETRY)
    completion = ask(carrier.openai(config, max_retries=2))
    assert completion.choices[0].message.content
    assert config.calls == 2
    assert config.fault_counts() == {"429": 1, "ok": 1}


def test_server_error_without_retries_raises(carrier):
    with pytest.raises(openai.InternalServerError):
        ask(carrier.openai(SimulatorConfig(faults=["500"]), max_retries=0))


def test_unknown_model_is_not_found(carrier):
    with pytest.raises(openai.NotFoundError) as raised:
        ask(carrier.openai(), model="gpt-imaginary")
    assert raised.value.code == "model_not_found"


def test_malformed_json_body_is_a_400_in_openai_error_shape(carrier):
    response = carrier.http().post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers[SIMULATED_HEADER] == "true"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def test_timeout_fault_lets_the_client_time_out():
    client = simulated_client(SimulatorConfig(faults=["timeout"], timeout_s=5), max_retries=0, timeout=0.1)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client)
    assert time.monotonic() - started < 1


def test_latency_and_scripted_faults_are_counted_across_threads():
    config = SimulatorConfig(latency_ms=20, jitter_ms=10, faults=["500"] * 3)
    client = simulated_client(config, max_retries=0)
    outcomes: list[str] = []

    def call() -> None:
        try:
            ask(client)
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["500"] * 3 + ["ok"] * 5
    assert config.calls == 8
    assert time.monotonic() - started >= 0.02


# --- async ---------------------------------------------------------------------------


def test_async_client_completes_streams_and_retries():
    async def scenario() -> None:
        config = SimulatorConfig(faults=["429"], **FAST_RETRY)
        client = async_simulated_client(config, max_retries=1)
        whole = await client.chat.completions.create(model="gpt-4o", messages=QUESTION)
        assert config.calls == 2
        stream = await client.chat.completions.create(model="gpt-4o", messages=QUESTION, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
        assert text == whole.choices[0].message.content
        await client.close()

    asyncio.run(scenario())


def test_cached_prompt_share_is_configurable():
    usage = ask(simulated_client(SimulatorConfig(cached_prompt_fraction=0.5))).usage
    assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens // 2
