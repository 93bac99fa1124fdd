"""The simulator's Responses API through the official SDK (in-process transport)."""

from __future__ import annotations

import openai
import pytest

from core.budgets.usage import Usage, usage_from_openai
from core.simulator import SimulatorConfig, simulated_client

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def test_a_streamed_response_ends_with_the_same_answer_and_usage_as_the_plain_one():
    client = simulated_client()
    plain = client.responses.create(model="o4-mini", input="Explain tea in a sentence.", max_output_tokens=4000)
    with client.responses.stream(model="o4-mini", input="Explain tea in a sentence.", max_output_tokens=4000) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == plain.output_text
    assert final.usage == plain.usage and plain.usage.output_tokens_details.reasoning_tokens > 0


def test_stored_responses_are_retrieved_and_continued():
    client = simulated_client()
    first = client.responses.create(model="gpt-4o-mini", input="Tell me about Paris.")
    assert client.responses.retrieve(first.id).output_text == first.output_text
    follow_up = client.responses.create(model="gpt-4o-mini", input="And its museums?", previous_response_id=first.id)
    assert follow_up.usage.input_tokens > first.usage.input_tokens  # the history counts as input
    unstored = client.responses.create(model="gpt-4o-mini", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o-mini", input="Hi", previous_response_id="resp_missing")
    assert caught.value.param == "previous_response_id"


def test_function_calls_across_turns():
    client = simulated_client()
    first = client.responses.create(model="gpt-4o-mini", input="What is the weather in Paris?", tools=TOOLS)
    [call] = first.output
    assert (call.type, call.name) == ("function_call", "get_weather") and "Paris" in call.arguments
    second = client.responses.create(
        model="gpt-4o-mini",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert "sunny" in second.output_text


def test_cached_tokens_are_reported_in_the_responses_usage_and_billed_as_such():
    client = simulated_client(SimulatorConfig(cached_prompt_fraction=0.5))
    usage = client.responses.create(model="gpt-4o-mini", input="Tea " * 50).usage
    assert usage.input_tokens_details.cached_tokens == usage.input_tokens // 2
    assert usage_from_openai(usage.model_dump()) == Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.input_tokens // 2,
        output_tokens=usage.output_tokens,
        reasoning_tokens=0,
    )


def test_a_responses_usage_with_null_details_counts_them_as_zero():
    # As some OpenAI-compatible servers send it.
    usage = {"input_tokens": 10, "input_tokens_details": None, "output_tokens": 5, "output_tokens_details": None}
    assert usage_from_openai(usage) == Usage(input_tokens=10, output_tokens=5)
