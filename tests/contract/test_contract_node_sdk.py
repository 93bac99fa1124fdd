"""An application written in JavaScript, with the official OpenAI Node.js SDK and only its base
URL changed, against Quorum: every call it makes works as it would against OpenAI, is billed
from the upstream's usage, and every refusal reaches it as the SDK's own error class.

The Node SDK differs from the Python one where a gateway can break it: it asks for base64
embeddings unless told otherwise, reads `x-request-id` into `_request_id`, aborts a stream
the application leaves with `break`, and retries on its own rules (`x-should-retry`,
`retry-after-ms`). tests/contract/node/client.mjs runs the scenarios once per upstream
(Quorum's simulator, and Quorum in front of the third-party mock server); each test checks
one scenario's result against Quorum's database.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.budgets.tokens import text_tokens_estimate
from tests.contract.conftest import Running
from tests.contract.test_contract_openai_sdk import MODEL, expected_cost, only_simulator
from tests.node_packages import node_and_npm, npm_ci

CLIENT_DIR = Path(__file__).parent / "node"
# What the third-party mock server cannot serve: embeddings, moderations, stored responses.
SIMULATOR_ONLY = {"embeddings", "moderations", "storedResponse"}
SCENARIOS = [
    "models",
    "chat",
    "chatStream",
    "chatStreamHelper",
    "streamLeftMidway",
    "tools",
    "jsonSchema",
    "responses",
    "responsesStream",
    "storedResponse",
    "embeddings",
    "moderations",
    "errors",
]


@pytest.fixture(scope="module")
def node_run(quorum: Running) -> dict:
    """Every scenario's result, from one run of the Node application against `quorum`."""
    node, npm = node_and_npm("the official OpenAI Node.js SDK (tests/contract/node)")
    npm_ci(npm, CLIENT_DIR, "openai")
    scenarios = [name for name in SCENARIOS if not (quorum.third_party and name in SIMULATOR_ONLY)]
    env = {
        **os.environ,
        "QUORUM_BASE_URL": quorum.base_url,
        "QUORUM_KEYS": json.dumps(quorum.keys),
        "QUORUM_SCENARIOS": ",".join(scenarios),
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        env.pop(name, None)  # the application's settings are the ones it passes, nothing else
    done = subprocess.run([node, "client.mjs"], cwd=CLIENT_DIR, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def result(node_run: dict, scenario: str) -> dict:
    found = node_run[scenario]
    assert "unexpected" not in found, f"{scenario}: the Node application failed: {found}"
    return found


def test_models_are_listed_retrieved_and_a_missing_one_is_not_found(node_run):
    models = result(node_run, "models")
    assert MODEL in models["names"] and models["retrieved"] == MODEL
    assert models["missing"]["class"] == "NotFoundError" and models["missing"]["code"] == "model_not_found"


def test_a_chat_completion_is_billed_from_the_usage_the_application_saw(node_run, quorum):
    chat = result(node_run, "chat")
    assert chat["content"] and chat["finishReason"] == "stop"
    assert chat["sdkRequestId"] == chat["requestId"]  # the SDK's own `_request_id` is Quorum's id
    row = quorum.call_row(chat["requestId"])
    assert row.status == "ok" and row.input_tokens == chat["usage"]["prompt_tokens"]
    assert row.output_tokens == chat["usage"]["completion_tokens"]
    assert row.cost_micro == expected_cost(quorum, MODEL, chat["usage"]) > 0


def test_a_stream_with_usage_is_read_whole_and_billed_from_its_last_chunk(node_run, quorum):
    stream = result(node_run, "chatStream")
    assert stream["text"] and stream["chunks"] > 2 and stream["usage"]["completion_tokens"] > 0
    row = quorum.call_row(stream["requestId"])
    assert row.stream and not row.usage_estimated
    assert row.output_tokens == stream["usage"]["completion_tokens"]


def test_the_sdks_stream_helper_rebuilds_the_message(node_run):
    helper = result(node_run, "chatStreamHelper")
    assert helper["content"] and helper["usage"]["total_tokens"] > 0


def test_an_application_leaving_a_stream_is_billed_for_what_it_received(node_run, quorum):
    left = result(node_run, "streamLeftMidway")
    assert left["received"]
    row = quorum.call_row(left["requestId"])
    assert row.status == "ok" and row.stream and row.cost_micro > 0 and row.output_tokens > 0
    if quorum.third_party:
        # Its chunks come 20 ms apart, so the application surely left before the end; its usage
        # is canned, so compare with the whole answer's text.
        assert row.usage_estimated and row.output_tokens < text_tokens_estimate(left["wholeText"])
    else:
        # The simulator may finish before the server notices the application left: then it is exact.
        assert row.output_tokens <= left["wholeTokens"]


def test_a_tool_call_round_trip(node_run, quorum):
    tools = result(node_run, "tools")
    assert tools["toolCall"] is not None, "the model asked for no tool"
    assert tools["toolCall"]["name"] == "get_weather" and "city" in tools["toolCall"]["arguments"]
    if not quorum.third_party:  # the mock answers its canned tool call again
        assert tools["afterTool"]


def test_a_json_schema_answer_parses(node_run, quorum):
    only_simulator(quorum, "answers canned text, not the schema")
    answer = result(node_run, "jsonSchema")
    assert answer["parsed"] is not None, answer["content"]
    assert set(answer["parsed"]) == {"answer", "confidence"}


def test_the_responses_api_is_billed_from_its_usage(node_run, quorum):
    reply = result(node_run, "responses")
    assert reply["outputText"] and reply["id"].startswith("resp")
    row = quorum.call_row(reply["requestId"])
    assert row.status == "ok" and row.output_tokens == reply["usage"]["output_tokens"]


def test_a_responses_stream_ends_with_the_whole_answer(node_run):
    stream = result(node_run, "responsesStream")
    assert {"response.created", "response.output_text.delta", "response.completed"} <= set(stream["types"])
    assert stream["deltas"] == stream["outputText"] != ""
    assert stream["usage"]["output_tokens"] > 0


def test_a_stored_response_is_served_to_its_team_only(node_run, quorum):
    only_simulator(quorum, "keeps no responses")
    stored = result(node_run, "storedResponse")
    assert stored["retrievedId"] == stored["id"] and stored["sameText"]
    assert stored["otherTeam"]["class"] == "NotFoundError"


def test_embeddings_in_the_sdks_default_base64_decode_to_the_same_vectors(node_run, quorum):
    only_simulator(quorum, "serves no embeddings")
    embeddings = result(node_run, "embeddings")
    assert embeddings["count"] == 2 and embeddings["allNumbers"] and embeddings["sameAsFloat"]
    assert len(set(embeddings["dimensions"])) == 1 and embeddings["dimensions"][0] > 0
    assert embeddings["usage"]["prompt_tokens"] > 0


def test_moderations_answer_through_the_gateway(node_run, quorum):
    only_simulator(quorum, "serves no moderations")
    moderation = result(node_run, "moderations")
    assert moderation["flagged"] == [True, False] and moderation["model"]


@pytest.mark.parametrize(
    ("case", "error_class", "status", "code"),
    [
        ("wrongKey", "AuthenticationError", 401, "invalid_api_key"),
        ("notAllowed", "PermissionDeniedError", 403, "model_not_allowed"),
        ("budget", "RateLimitError", 429, "budget_exceeded"),
        ("badRequest", "BadRequestError", 400, "invalid_request"),
        ("secret", "BadRequestError", 400, "guardrail_blocked"),
    ],
)
def test_each_refusal_is_the_sdks_own_error_and_is_not_retried(node_run, quorum, case, error_class, status, code):
    refused = result(node_run, "errors")[case]
    assert (refused["class"], refused["status"], refused["code"]) == (error_class, status, code), refused
    # The SDK retries a 429 on its own unless told not to: a budget or a guardrail will not change.
    assert refused["requests"] == 1 and refused["shouldRetry"] == "false"


def test_refused_calls_are_on_record_and_billed_nothing(node_run, quorum):
    errors = result(node_run, "errors")
    for case, status in (("notAllowed", "not_allowed"), ("budget", "budget_exceeded"), ("secret", "blocked")):
        row = quorum.call_row(errors[case]["requestId"])
        assert (row.status, row.cost_micro) == (status, 0), case
