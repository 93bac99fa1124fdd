"""Properties of the Responses API's text slots: personal data is redacted wherever it sits,
the rest of the body is untouched, and the input bound is above what the simulator bills."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from core.gateway import responses
from core.guardrails import GuardrailPolicy, apply_input_guardrails
from core.simulator.responses import ResponseStore, create_response

EMAIL = "ana.lopez@example.com"
words = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=30).filter(str.strip)


def _message(text):
    return st.one_of(
        st.builds(lambda t, role: {"role": role, "content": t}, text, st.sampled_from(["user", "assistant"])),
        st.builds(lambda t: {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}, text),
    )


def _items(text):
    call = st.builds(
        lambda t: {"type": "function_call", "call_id": "call_7", "name": "lookup", "arguments": json.dumps({"q": t})},
        text,
    )
    output = st.builds(lambda t: {"type": "function_call_output", "call_id": "call_7", "output": t}, text)
    return st.lists(st.one_of(_message(text), call, output), min_size=1, max_size=4)


def bodies(text=words):
    tools = st.lists(
        st.builds(
            lambda d: {
                "type": "function",
                "name": "lookup",
                "description": d,
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
            text,
        ),
        max_size=2,
    )
    return st.fixed_dictionaries(
        {"model": st.just("gpt-4o-mini"), "input": st.one_of(text, _items(text))},
        optional={"instructions": text, "tools": tools},
    )


def _with_email_somewhere(body: dict, index: int) -> dict:
    slots = responses.text_slots(body)
    path, text = slots[index % len(slots)]
    return responses.with_texts(
        body, [{"role": "user", "content": f"{t} write to {EMAIL}" if p == path else t} for p, t in slots]
    )


@settings(max_examples=60, deadline=None)
@given(bodies(), st.integers(min_value=0))
def test_personal_data_in_any_slot_is_redacted_and_nothing_else_changes(body, index):
    dirty = _with_email_somewhere(body, index)
    assert EMAIL in json.dumps(dirty)
    outcome = apply_input_guardrails(responses.scan_messages(dirty), GuardrailPolicy(pii_action="redact"))
    clean = responses.with_texts(dirty, outcome.messages)
    assert EMAIL not in json.dumps(clean)
    assert responses.with_texts(clean, [{"content": t} for _, t in responses.text_slots(dirty)]) == dirty
    assert [p for p, _ in responses.text_slots(clean)] == [p for p, _ in responses.text_slots(dirty)]


@settings(max_examples=60, deadline=None)
@given(bodies())
def test_the_reserved_input_bound_covers_what_the_simulator_bills(body):
    billed = create_response(body, store=ResponseStore())["usage"]["input_tokens"]
    assert billed <= responses.input_tokens_upper_bound(body)
