"""``/v1/chat/completions``: validation, the completion object, and its streamed chunks.

Output kinds, in order of precedence: a function call (see ``tools``), a JSON Schema
instance (``response_format`` json_schema), a JSON object (json_object), else text
(see ``writer``). Token limits apply to everything the model produces: reasoning
tokens come first and count inside ``completion_tokens`` as they do at OpenAI, so a
small ``max_completion_tokens`` on a reasoning model can leave no visible content.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

from core.simulator.api_error import bad_request, model_not_found, wrong_endpoint
from core.simulator.catalog import is_reasoning_model, model_kind
from core.simulator.grounded import grounded_answer
from core.simulator.judge import judge_reply
from core.simulator.prompt import (
    estimate_tokens,
    keywords,
    last_user_text,
    prompt_tokens,
    proper_nouns,
    request_digest,
    seeded_rng,
    sentences,
    system_text,
    truncate_to_tokens,
)  # fmt: skip
from core.simulator.schema_instance import Hints, instance_for
from core.simulator.structured import structured_answer
from core.simulator.tools import call_arguments, chosen_function
from core.simulator.understanding import Reading
from core.simulator.writer import reply_text

SYSTEM_FINGERPRINT = "quorum-simulator"
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Reasoning tokens per effort; "medium" is OpenAI's default effort.
_REASONING_BASE = {"minimal": 0, "low": 64, "medium": 192, "high": 448}


def chat_completion(
    body: dict[str, Any], *, created: int = 0, response_id: str | None = None, cached_fraction: float = 0.0
) -> dict[str, Any]:
    """The ``ChatCompletion`` body for a parsed request (``stream`` is ignored here)."""
    _validate(body)
    model, messages = body["model"], body["messages"]
    digest = request_digest(body)
    rng = seeded_rng(digest)
    function = chosen_function(body)
    if function is not None:
        output = call_arguments(function, messages, rng, model)
    else:
        output = _content(body, rng)

    reasoning = _reasoning_tokens(body, rng)
    finish = "tool_calls" if function is not None else "stop"
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and reasoning + estimate_tokens(output) > limit:
        reasoning = min(reasoning, limit)
        output, finish = truncate_to_tokens(output, limit - reasoning), "length"

    message: dict[str, Any] = {"role": "assistant", "content": output, "refusal": None, "annotations": []}
    if function is not None:
        call = {
            "id": f"call_{digest[:24]}",
            "type": "function",
            "function": {"name": function["name"], "arguments": output},
        }
        # A help-desk answer may say what it found while it hands over, as OpenAI models do.
        grounded = grounded_answer(model, messages)
        message.update(content=grounded, tool_calls=[call])

    prompt = prompt_tokens(messages, body.get("tools"))
    completion = reasoning + estimate_tokens(output)
    return {
        "id": response_id or f"chatcmpl-{digest[:29]}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(prompt * cached_fraction), "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def chat_completion_chunks(
    body: dict[str, Any], *, created: int = 0, response_id: str | None = None, cached_fraction: float = 0.0
) -> list[dict[str, Any]]:
    """The same answer as ``chat_completion``, as ``chat.completion.chunk`` objects.

    Content (or function arguments) is split into deltas of a couple of words; with
    ``stream_options.include_usage`` every chunk carries ``usage: null`` and a last
    chunk with no choices carries the usage, as OpenAI sends it.
    """
    completion = chat_completion(body, created=created, response_id=response_id, cached_fraction=cached_fraction)
    choice, message = completion["choices"][0], completion["choices"][0]["message"]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {key: completion[key] for key in ("id", "created", "model", "system_fingerprint", "service_tier")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return {**out, "usage": None} if include_usage else out

    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": name, "arguments": ""}}
        chunks = [chunk({"role": "assistant", "content": None, "tool_calls": [head]})]
        for piece in split_deltas(arguments):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({"content": piece}) for piece in split_deltas(message["content"])]
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def split_deltas(text: str, words_per_delta: int = 2) -> list[str]:
    """Pieces of ``text`` that join back to exactly ``text``."""
    words = [w for w in re.findall(r"\S*\s*", text) if w]
    return ["".join(words[i : i + words_per_delta]) for i in range(0, len(words), words_per_delta)]


def _content(body: dict[str, Any], rng: random.Random) -> str:
    messages = body["messages"]
    graded = judge_reply(messages)
    if graded is not None:
        return graded
    response_format = body.get("response_format") or {"type": "text"}
    if response_format["type"] == "json_schema":
        user = last_user_text(messages)
        found = sentences(user)
        reading = Reading(body["model"], user, system_text(messages), rng)
        schema = response_format["json_schema"]["schema"]
        answer = structured_answer(schema, reading)
        if answer is not None:
            return json.dumps(answer)
        hints = Hints(
            words=keywords(user), places=proper_nouns(user), sentence=found[0] if found else "", reading=reading
        )
        return json.dumps(instance_for(response_format["json_schema"]["schema"], rng=rng, hints=hints))
    text = reply_text(body["model"], messages, rng)
    if response_format["type"] == "json_object":
        return json.dumps({"answer": text, "keywords": keywords(last_user_text(messages))})
    return text


def _reasoning_tokens(body: dict[str, Any], rng: random.Random) -> int:
    if not is_reasoning_model(body["model"]):
        return 0
    base = _REASONING_BASE.get(body.get("reasoning_effort") or "medium", 192)
    return base + (rng.randint(0, 63) if base else 0)


def _validate(body: dict[str, Any]) -> None:
    """OpenAI's 400s for the mistakes callers actually make; the 404 for unknown models."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise bad_request(f"Invalid value for 'messages[{index}].role'.", param=f"messages[{index}].role")
    kind = model_kind(model)
    if kind is None:
        raise model_not_found(model)
    if kind != "chat":
        raise wrong_endpoint(model, "v1/chat/completions")
    if body.get("n", 1) not in (1, None):
        raise bad_request("The simulator supports only n=1.", param="n", code="unsupported_parameter")
    _refuse_unimplemented(body)
    for key in ("max_tokens", "max_completion_tokens"):
        if key in body and body[key] is not None and (not isinstance(body[key], int) or body[key] < 1):
            raise bad_request(f"Invalid '{key}': integer below minimum value. Expected a value >= 1.", param=key)
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
        raise bad_request("Invalid 'temperature': expected a number between 0 and 2.", param="temperature")
    _validate_response_format(body.get("response_format"), messages)


# Parameters that change what the model returns in ways the simulator does not produce:
# accepting them silently would let a test pass against an answer OpenAI would not give.
# Sampling knobs (temperature, top_p, seed, penalties, stop...) are accepted: a simulated
# answer has no distribution for them to change.
_UNIMPLEMENTED: dict[str, Callable[[object], bool]] = {
    "logprobs": lambda v: v is True,
    "top_logprobs": lambda v: v is not None,
    "audio": lambda v: v is not None,
    "modalities": lambda v: v not in (None, ["text"]),
    "prediction": lambda v: v is not None,
    "web_search_options": lambda v: v is not None,
}


def _refuse_unimplemented(body: dict[str, Any]) -> None:
    for name, used in _UNIMPLEMENTED.items():
        if name in body and used(body[name]):
            raise bad_request(
                f"The simulator does not implement '{name}'; remove it, or call the real API to use it.",
                param=name,
                code="unsupported_parameter",
            )


def _validate_response_format(response_format: object, messages: list[dict[str, Any]]) -> None:
    if response_format is None:
        return
    spec: dict[str, Any] = response_format if isinstance(response_format, dict) else {}
    kind = spec.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise bad_request("Invalid value for 'response_format.type'.", param="response_format.type")
    if kind == "json_schema" and not isinstance((spec.get("json_schema") or {}).get("schema"), dict):
        raise bad_request(
            "Missing required parameter: 'response_format.json_schema.schema'.", param="response_format.json_schema"
        )
    if kind == "json_object" and "json" not in json.dumps(messages).lower():
        raise bad_request(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            param="messages",
        )
