"""Upstreams Quorum did not write: answers without usage, and numbers JSON does not allow.

OpenAI always reports an answer's tokens; a compatible server may not (left out, null, or
counts that are negative, fractional, text, or cached above the input). Such an answer was
billed at 0 tokens (every call through that upstream passed any budget), or refused with a
400 after the model ran; it is now billed at an estimate. A server written in Python may
answer NaN or Infinity (a logprob it would never sample), which was passed on as it came:
not JSON, so a JavaScript client could not read the answer; it is now null. And a body that
is no answer at all (a proxy's page sent with 200, JSON of another shape) was a 500 "defect
of the gateway"; it is the upstream's failure, a 502 `upstream_malformed`. The upstream here
is the simulator with its answers rewritten on the way back, as such a server sends them.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from core.budgets import config as budget_config
from core.gateway import policies
from core.gateway.pipeline import Caller, GatewayRequest
from core.models.budgets import BudgetHold, BudgetPeriod, UsageRecord
from core.models.gateway import GatewayCall, StoredPayload
from core.permissions import Actor, Role
from tests.gateway_support import MODEL, RecordingTransport, make_gateway, new_key

QUESTION = "What are your opening hours on public holidays, and can I return an item without a receipt?"
LEFT_OUT = object()


class Rewritten(RecordingTransport):
    """The simulator, each answer it gives a call (not the moderation check) rewritten."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        if answer.status_code != 200 or request.url.path.endswith("/moderations"):
            return answer
        return self.rewrite(answer)

    def rewrite(self, answer: httpx.Response) -> httpx.Response:
        raise NotImplementedError


class RewrittenUsage(Rewritten):
    """Its `usage` replaced (LEFT_OUT: removed)."""

    def __init__(self, usage) -> None:
        super().__init__()
        self.usage = usage

    def rewrite(self, answer: httpx.Response) -> httpx.Response:
        body = json.loads(answer.read())
        body.pop("usage", None)
        if self.usage is not LEFT_OUT:
            body["usage"] = self.usage
        # As a Python server writes it: NaN and Infinity included, which JSON does not allow.
        return httpx.Response(200, content=json.dumps(body), headers={"content-type": "application/json"})


class TextReplaced(Rewritten):
    """`old` replaced by `new` in its text, streams included."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__()
        self.old, self.new = old, new

    def rewrite(self, answer: httpx.Response) -> httpx.Response:
        text = answer.read().decode().replace(self.old, self.new)
        return httpx.Response(200, content=text.encode(), headers={"content-type": answer.headers["content-type"]})


class Replaced(Rewritten):
    """Replaced whole by `content`."""

    def __init__(self, content: bytes, content_type: str = "application/json") -> None:
        super().__init__()
        self.content, self.content_type = content, content_type

    def rewrite(self, answer: httpx.Response) -> httpx.Response:
        return httpx.Response(200, content=self.content, headers={"content-type": self.content_type})


@pytest.fixture
def caller(directory):
    policies.forget()
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    return Caller(actor=engineer, team_id=next(iter(engineer.team_ids)))


def _call(caller, usage, kind="chat", body=None):
    gateway = make_gateway(RewrittenUsage(usage))
    body = body or {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}
    return gateway.call(caller=caller, request=GatewayRequest(kind=kind, body=body))


def _only_call(session) -> tuple[GatewayCall, UsageRecord]:
    session.rollback()
    [row] = session.exec(select(GatewayCall)).all()
    [ledger] = session.exec(select(UsageRecord)).all()
    assert session.exec(select(BudgetHold)).all() == []
    return row, ledger


NO_CALL_HAS = {
    "left out": LEFT_OUT,
    "null": None,
    "empty": {},
    "a list": [1, 2],
    "negative": {"prompt_tokens": -1_000_000, "completion_tokens": 5},
    "fractional": {"prompt_tokens": 12.5, "completion_tokens": 3},
    "text": {"prompt_tokens": "12", "completion_tokens": "3"},
    "a boolean": {"prompt_tokens": True, "completion_tokens": 3},
    "cached above the input": {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 9},
    },
    "details not an object": {"prompt_tokens": 3, "completion_tokens": 3, "prompt_tokens_details": 7},
}


@pytest.mark.parametrize("usage", list(NO_CALL_HAS.values()), ids=list(NO_CALL_HAS))
def test_an_answer_without_usage_a_call_can_have_is_billed_at_an_estimate(session, caller, usage):
    answer = _call(caller, usage)
    assert answer.body["choices"][0]["message"]["content"]
    row, ledger = _only_call(session)
    assert row.status == "ok" and row.usage_estimated
    assert row.input_tokens >= len(QUESTION.split()) and row.output_tokens > 0
    assert ledger.input_tokens == row.input_tokens and ledger.cost_micro == row.cost_micro > 0


def test_a_usage_report_a_call_can_have_is_billed_as_reported_not_estimated(session, caller):
    _call(caller, {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28})
    row, ledger = _only_call(session)
    assert not row.usage_estimated and (row.input_tokens, row.output_tokens) == (21, 7)
    assert (ledger.input_tokens, ledger.output_tokens) == (21, 7)


def test_embeddings_and_the_responses_api_without_usage_are_estimated_too(session, caller):
    _call(caller, LEFT_OUT, "embeddings", {"model": "text-embedding-3-small", "input": [QUESTION, "and more"]})
    _call(caller, LEFT_OUT, "responses", {"model": MODEL, "input": QUESTION})
    session.rollback()
    rows = {row.endpoint: row for row in session.exec(select(GatewayCall)).all()}
    assert len(rows) == 2 and all(row.usage_estimated and row.cost_micro > 0 for row in rows.values())
    embeddings = next(row for endpoint, row in rows.items() if "embeddings" in endpoint)
    assert embeddings.input_tokens > 0 and embeddings.output_tokens == 0


def test_moderations_stay_free_without_usage(session, caller):
    _call(caller, LEFT_OUT, "moderations", {"input": QUESTION})
    row, ledger = _only_call(session)
    assert not row.usage_estimated and row.cost_micro == 0 == ledger.cost_micro


def test_what_an_estimated_call_costs_counts_against_the_team_budget(session, caller):
    budget_config.set_budget(
        session=session,
        actor=Actor.system("test"),
        scope="team",
        target_id=caller.team_id,
        data=budget_config.BudgetInput(cap_usd="100"),
    )
    session.commit()
    _call(caller, LEFT_OUT)
    row, _ledger = _only_call(session)
    spent = sum(period.spent_micro for period in session.exec(select(BudgetPeriod)).all())
    assert row.cost_micro > 0 and spent == row.cost_micro


usages = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "prompt_tokens",
                    "completion_tokens",
                    "input_tokens",
                    "output_tokens",
                    "prompt_tokens_details",
                    "cached_tokens",
                    "total_tokens",
                ]
            ),  # fmt: skip
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(usage=usages)
def test_whatever_usage_an_upstream_reports_the_call_is_answered_and_billed_at_0_or_more(session, caller, usage):
    answer = _call(caller, usage)
    assert answer.body["choices"]
    session.rollback()
    row = session.exec(select(GatewayCall).where(GatewayCall.request_id == answer.request_id)).one()
    assert row.status == "ok" and row.cost_micro >= 0 and row.input_tokens >= 0 and row.output_tokens >= 0


def _strict(text: str):
    def refuse(name: str):
        raise AssertionError(f"{name} in an answer: not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def nan_upstream(session, directory):
    from core.gateway.wiring import set_gateway
    from tests.test_gateway_http import moderation_off

    moderation_off(session)
    transport = TextReplaced('"logprobs": null', '"logprobs": {"nan": NaN, "least": -Infinity}')
    set_gateway(make_gateway(transport))
    return transport


def test_nan_and_infinity_in_an_answer_reach_the_client_as_null(server, nan_upstream, session):
    key = new_key(session)
    sent = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}
    answer = httpx.post(server.base_url + "/chat/completions", json=sent, headers=_auth(key))
    assert answer.status_code == 200
    assert _strict(answer.text)["choices"][0]["logprobs"] == {"nan": None, "least": None}
    session.rollback()
    [row] = session.exec(select(GatewayCall)).all()
    assert row.status == "ok"
    [payload] = session.exec(select(StoredPayload)).all()
    _strict(payload.response_json)


def test_nan_in_a_streamed_answer_reaches_the_client_as_null(server, nan_upstream, session):
    key = new_key(session)
    sent = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=sent, headers=_auth(key)) as answer:
        assert answer.status_code == 200
        events = [line[len("data: ") :] for line in answer.iter_lines() if line.startswith("data: {")]
    chunks = [_strict(event) for event in events]
    assert chunks and all(
        chunk["choices"][0]["logprobs"] == {"nan": None, "least": None} for chunk in chunks if chunk["choices"]
    )


def _auth(key) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


NO_ANSWER = {
    "a proxy's page": (b"<html><body>Sign in to the proxy</body></html>", "text/html"),
    "empty": (b"", "application/json"),
    "a list": (b"[1, 2]", "application/json"),
    "a string": (b'"ok"', "application/json"),
    "choices not a list": (b'{"choices": "x"}', "application/json"),
    "a null choice": (b'{"choices": [null]}', "application/json"),
    "a null message": (b'{"choices": [{"message": null}]}', "application/json"),
    "content a number": (b'{"choices": [{"message": {"content": 5}}]}', "application/json"),
    "tool calls not calls": (
        b'{"choices": [{"message": {"content": null, "tool_calls": [{"function": 3}]}}]}', "application/json"
    ),
}  # fmt: skip


@pytest.mark.parametrize(("content", "content_type"), list(NO_ANSWER.values()), ids=list(NO_ANSWER))
def test_a_body_that_is_no_answer_is_the_upstreams_failure_not_a_defect(session, caller, content, content_type):
    from core.gateway.errors import UpstreamFailed

    gateway = make_gateway(Replaced(content, content_type), attempts=2)
    with pytest.raises(UpstreamFailed) as failed:
        gateway.call(
            caller=caller,
            request=GatewayRequest(kind="chat", body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        )
    assert failed.value.status == 502 and failed.value.code == "upstream_malformed"
    assert "2 attempt(s)" in str(failed.value)  # retried, as a 5xx is
    session.rollback()
    [row] = session.exec(select(GatewayCall)).all()
    assert row.status == "upstream_error" and row.cost_micro == 0
    assert session.exec(select(BudgetHold)).all() == []


@pytest.mark.parametrize(
    ("kind", "body", "content"),
    [
        ("responses", {"model": MODEL, "input": "hi"}, b'{"output": [{"type": "message", "content": [{"text": 7}]}]}'),
        ("responses", {"model": MODEL, "input": "hi"}, b'{"output": {"type": "message"}}'),
        ("embeddings", {"model": "text-embedding-3-small", "input": "hi"}, b'{"data": [[0.1, 0.2]]}'),
    ],
)
def test_the_responses_api_and_embeddings_are_checked_too(session, caller, kind, body, content):
    from core.gateway.errors import UpstreamFailed

    with pytest.raises(UpstreamFailed) as failed:
        make_gateway(Replaced(content), attempts=1).call(caller=caller, request=GatewayRequest(kind=kind, body=body))
    assert failed.value.code == "upstream_malformed"


def test_over_http_a_proxys_page_is_a_502_in_openais_shape(server, session, directory):
    from core.gateway.wiring import set_gateway
    from tests.test_gateway_http import moderation_off

    moderation_off(session)
    set_gateway(make_gateway(Replaced(*NO_ANSWER["a proxy's page"]), attempts=1))
    answer = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        headers=_auth(new_key(session)),
    )
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_malformed" and "not JSON" in error["message"]


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
PATHS = [
    ("choices",),
    ("choices", 0),
    ("choices", 0, "message"),
    ("choices", 0, "message", "content"),
    ("choices", 0, "message", "tool_calls"),
    ("choices", 0, "finish_reason"),
    ("usage",),
    ("id",),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=values)
def test_whatever_an_answer_holds_the_call_is_answered_or_an_upstream_failure(session, caller, path, value):
    """A valid answer with one place replaced by anything: answered, or a 502; never a defect."""
    from core.gateway.errors import UpstreamFailed

    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Open 9 to 5."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    place = answer
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] = value
    gateway = make_gateway(Replaced(json.dumps(answer).encode()), attempts=1)
    try:
        gateway.call(
            caller=caller,
            request=GatewayRequest(kind="chat", body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        )
    except UpstreamFailed as failed:
        assert failed.code == "upstream_malformed"


def test_a_stream_whose_usage_no_call_has_ends_normally_billed_at_an_estimate(session, caller):
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    stream = make_gateway(TextReplaced('"prompt_tokens": ', '"prompt_tokens": -')).call(
        caller=caller, request=GatewayRequest(kind="chat", body=body)
    )
    chunks = list(stream)  # no error at the end: the whole answer arrived
    assert any(chunk.get("choices") for chunk in chunks)
    row, ledger = _only_call(session)
    assert row.status == "ok" and row.usage_estimated and row.input_tokens > 0 and ledger.cost_micro > 0


class LongerThanAsked(Rewritten):
    """Far more text than max_tokens allows, and no usage."""

    def rewrite(self, answer: httpx.Response) -> httpx.Response:
        body = json.loads(answer.read())
        body.pop("usage", None)
        body["choices"][0]["message"]["content"] = "many words " * 400
        return httpx.Response(200, json=body)


def test_an_estimate_never_bills_more_output_than_the_budget_held_room_for(session, caller):
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 10}
    make_gateway(LongerThanAsked()).call(caller=caller, request=GatewayRequest(kind="chat", body=body))
    row, ledger = _only_call(session)
    assert row.usage_estimated and row.output_tokens == 10 == ledger.output_tokens


def test_a_playground_or_ab_call_shows_the_answer_when_the_upstream_reports_odd_usage(session, caller):
    """The playground and A/B runs read the gateway's answer: odd usage made their cell an error."""
    from core.experiments.gateway_call import gateway_call
    from core.gateway.wiring import set_gateway

    set_gateway(make_gateway(RewrittenUsage({"prompt_tokens": -5, "completion_tokens": 3})))
    call = gateway_call(actor=caller.actor, team_id=caller.team_id)
    result = call([{"role": "user", "content": QUESTION}], MODEL, {}, None)
    assert result.text and result.cost_micro > 0
    row, _ledger = _only_call(session)
    assert row.usage_estimated and row.cost_micro == result.cost_micro
