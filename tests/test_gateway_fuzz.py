"""Fuzzing the HTTP gateway with the bodies a careless or hostile client sends.

Bodies start valid and are then mutated: a parameter the openai SDK's request types name
(so the fuzzer follows the SDK as it grows) gets a wrong type, null, a huge number, a lone
surrogate, NaN or infinity, or deep nesting; messages get the same treatment. Each is POSTed with raw httpx
to the real test server. Whatever comes back: never a 5xx, every error in OpenAI's shape,
no traceback in the server's output, and no budget reservation left behind.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from openai.types.embedding_create_params import EmbeddingCreateParams
from sqlalchemy import select

from core.catalog.demo_seed import seed_catalog
from core.models.budgets import BudgetHold
from tests.gateway_support import MODEL, new_key

CHAT_KEYS = sorted(CompletionCreateParamsBase.__annotations__)
EMBEDDING_KEYS = sorted(EmbeddingCreateParams.__annotations__)
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    # NaN and infinities too: json.dumps below writes them as a Python client would (NaN, Infinity).
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "json", "", "user", "text", "auto", "gpt-4o-mini", "\x00"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12,
)
deep = st.integers(min_value=50, max_value=400).map(lambda n: json.loads("[" * n + "]" * n))
mutant = st.one_of(values, deep)

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "developer", "tool"]), "content": st.text(max_size=40)}
)


@st.composite
def chat_bodies(draw):
    body = {"model": MODEL, "messages": draw(st.lists(message, min_size=1, max_size=3))}
    for key in draw(st.lists(st.sampled_from(CHAT_KEYS), max_size=3, unique=True)):
        body[key] = draw(mutant)
    if draw(st.booleans()):
        index = (
            draw(st.integers(0, len(body["messages"]) - 1))
            if isinstance(body.get("messages"), list) and body["messages"]
            else None
        )
        if index is not None:
            target = body["messages"][index]
            if isinstance(target, dict) and draw(st.booleans()):
                target[draw(st.sampled_from(["role", "content", "name", "tool_calls"]))] = draw(mutant)
            else:
                body["messages"][index] = draw(mutant)
    return body


@st.composite
def embedding_bodies(draw):
    body = {"model": "text-embedding-3-small", "input": draw(st.text(max_size=30))}
    for key in draw(st.lists(st.sampled_from(EMBEDDING_KEYS), max_size=2, unique=True)):
        body[key] = draw(mutant)
    return body


@st.composite
def prompt_bodies(draw):
    body = {
        "variables": {
            "customer_name": "Ana",
            "customer_id": "C-1001",
            "question": "Where is my parcel?",
            "kb_snippets": [],
            "channel": "email",
        }
    }
    for key in draw(
        st.lists(st.sampled_from(["variables", "label", "stream", "stream_options", "user"]), max_size=2, unique=True)
    ):
        body[key] = draw(mutant)
    return body


def _post(server, key, path: str, body) -> httpx.Response:
    # Serialized here, surrogates and all, as a client in another language would send them.
    raw = json.dumps(body, ensure_ascii=True).encode()
    return httpx.post(
        server.base_url + path,
        content=raw,
        timeout=20,
        headers={"authorization": f"Bearer {key.secret}", "content-type": "application/json"},
    )


def _assert_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)


@pytest.fixture
def fuzz_target(server, gateway, session):
    seed_catalog(session)
    return server, new_key(session)


def _no_reservations_left(session) -> None:
    session.rollback()
    assert session.exec(select(BudgetHold)).all() == []


def test_fuzzed_chat_bodies_never_get_a_5xx_or_leave_a_reservation(fuzz_target, session, capfd):
    server, key = fuzz_target

    @FUZZ
    @given(body=chat_bodies())
    def run(body):
        _assert_answer(_post(server, key, "/chat/completions", body))

    run()
    _no_reservations_left(session)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("tool_calls", [["x"], "abc", [{"function": "x"}], [None]])
def test_tool_calls_on_a_user_message_are_passed_on_not_a_5xx(fuzz_target, session, tool_calls):
    """Found by the fuzzer: a user message carrying `tool_calls` (not a key of its type, so
    passed through) made the simulator fail with a 500."""
    server, key = fuzz_target
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello", "tool_calls": tool_calls}]}
    response = _post(server, key, "/chat/completions", body)
    assert response.status_code == 200, response.text
    _no_reservations_left(session)


def test_fuzzed_embedding_and_prompt_bodies_never_get_a_5xx(fuzz_target, session, capfd):
    server, key = fuzz_target

    @FUZZ
    @given(body=embedding_bodies())
    def embeddings(body):
        _assert_answer(_post(server, key, "/embeddings", body))

    @settings(FUZZ, max_examples=30)
    @given(body=prompt_bodies())
    def prompts(body):
        _assert_answer(_post(server, key, "/prompts/support-answer/completions", body))

    embeddings()
    prompts()
    _no_reservations_left(session)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/prompts/support-answer/completions", {"variables": {}, "label": "\x00"}, "label"),
        ("/chat/completions", {"model": "\x00", "messages": [{"role": "user", "content": "hi"}]}, "model"),
        (
            "/chat/completions",
            {"model": MODEL, "messages": [{"role": "user", "content": "a\x00b"}]},
            "messages[0].content",
        ),
        ("/prompts/support%00answer/completions", {"variables": {}}, "name"),
    ],
)
def test_a_nul_character_is_a_400_naming_where_it_is(fuzz_target, session, path, body, param):
    """Found by the fuzzer on PostgreSQL, whose text cannot hold NUL: a label of "\\x00" was a 500."""
    server, key = fuzz_target
    response = _post(server, key, path, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param and "NUL" in response.json()["error"]["message"]
    _no_reservations_left(session)
