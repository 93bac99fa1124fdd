"""``/v1/responses``: the Responses API, answered by the chat simulator underneath.

A request is read as the chat request it amounts to (``instructions`` as the system
message, ``input`` text or items as messages, flat function tools as chat tools,
``text.format`` as ``response_format``, ``max_output_tokens`` as the completion limit),
answered by ``chat_completion``, and written back as a ``response`` object with the
Responses API's usage (``input_tokens``, ``output_tokens`` and their details). Streamed,
it becomes the typed events OpenAI sends, ending with ``response.completed`` carrying
the usage. Responses are stored (``store`` defaults to true, as at OpenAI) in a bounded
``ResponseStore`` so that ``GET /v1/responses/{id}`` and ``previous_response_id`` work.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from core.simulator.api_error import SimulatedAPIError, bad_request
from core.simulator.chat import chat_completion, split_deltas


class ResponseStore:
    """The last ``capacity`` stored responses (and the messages that led to them), by id."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, response: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[response["id"]] = (response, messages)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        with self._lock:
            return self._items.get(response_id)


def not_found(response_id: str) -> SimulatedAPIError:
    return SimulatedAPIError(404, f"Response with id '{response_id}' not found.")


def retrieve(store: ResponseStore, response_id: str) -> dict[str, Any]:
    found = store.get(response_id)
    if found is None:
        raise not_found(response_id)
    return found[0]


def create_response(
    body: dict[str, Any],
    *,
    store: ResponseStore,
    created: int = 0,
    response_id: str | None = None,
    cached_fraction: float = 0.0,
) -> dict[str, Any]:
    """The ``Response`` body for a parsed request (``stream`` is ignored here)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad_request("Missing required parameter: 'model'.", param="model")
    messages = _history(body, store) + as_chat_messages(body)
    chat_body = _chat_body(body, messages)
    completion = chat_completion(chat_body, created=created, cached_fraction=cached_fraction)
    digest = completion["id"].removeprefix("chatcmpl-")
    message = completion["choices"][0]["message"]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        output = [
            {
                "type": "function_call",
                "id": f"fc_{digest[:24]}",
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        ]
    else:
        output = [
            {
                "type": "message",
                "id": f"msg_{digest[:24]}",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": message["content"] or "", "annotations": [], "logprobs": []}
                ],
            }
        ]
    usage = completion["usage"]
    truncated = completion["choices"][0]["finish_reason"] == "length"
    response = {
        "id": response_id or f"resp_{digest[:48]}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if truncated else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": usage["prompt_tokens_details"]["cached_tokens"]},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": usage["completion_tokens_details"]["reasoning_tokens"]},
            "total_tokens": usage["total_tokens"],
        },
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    if response["store"]:
        store.put(response, messages + [_as_message(item) for item in output])
    return response


def response_events(
    body: dict[str, Any],
    *,
    store: ResponseStore,
    created: int = 0,
    response_id: str | None = None,
    cached_fraction: float = 0.0,
) -> list[dict[str, Any]]:
    """The same answer as ``create_response``, as the typed events of a streamed response."""
    final = create_response(
        body, store=store, created=created, response_id=response_id, cached_fraction=cached_fraction
    )
    started = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    for index, item in enumerate(final["output"]):
        if item["type"] == "function_call":
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            events += [
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": piece,
                }
                for piece in split_deltas(item["arguments"])
            ]
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        else:
            part = item["content"][0]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            place = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **place, "part": {**part, "text": ""}})
            events += [
                {"type": "response.output_text.delta", **place, "delta": piece, "logprobs": []}
                for piece in split_deltas(part["text"])
            ]
            events.append({"type": "response.output_text.done", **place, "text": part["text"], "logprobs": []})
            events.append({"type": "response.content_part.done", **place, "part": part})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    done = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    events.append({"type": done, "response": final})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def as_chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as Chat Completions messages (text parts only)."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise bad_request("Invalid type for 'instructions': expected a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        return messages + [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise bad_request("Missing required parameter: 'input'.", param="input")
    for index, item in enumerate(given):
        if not isinstance(item, dict):
            raise bad_request(f"Invalid type for 'input[{index}]': expected an object.", param=f"input[{index}]")
        messages.append(_as_message(item, index))
    return messages


def _as_message(item: dict[str, Any], index: int = 0) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise bad_request(f"Invalid value for 'input[{index}].role'.", param=f"input[{index}].role")
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") in ("input_text", "output_text")
            )
        if not isinstance(content, str):
            raise bad_request(f"Invalid type for 'input[{index}].content'.", param=f"input[{index}].content")
        return {"role": role, "content": content}
    if kind == "function_call":
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": item.get("call_id", ""),
                    "type": "function",
                    "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")},
                }
            ],
        }
    if kind == "function_call_output":
        output = item.get("output")
        return {
            "role": "tool",
            "tool_call_id": item.get("call_id", ""),
            "content": output if isinstance(output, str) else json.dumps(output),
        }
    raise bad_request(
        f"Invalid value for 'input[{index}].type': the simulator reads message, function_call "
        "and function_call_output items.",
        param=f"input[{index}].type",
    )


def _history(body: dict[str, Any], store: ResponseStore) -> list[dict[str, Any]]:
    previous = body.get("previous_response_id")
    if previous is None:
        return []
    found = store.get(previous)
    if found is None:
        raise bad_request(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return [m for m in found[1] if m["role"] != "system"]


def _chat_body(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    tools = body.get("tools")
    if tools:
        functions = [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]
        if len(functions) != len(tools):
            raise bad_request("The simulator serves only function tools.", param="tools")
        chat["tools"] = [
            {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
            for t in functions
        ]
    if "tool_choice" in body:
        choice = body["tool_choice"]
        chat["tool_choice"] = (
            {"type": "function", "function": {"name": choice["name"]}}
            if isinstance(choice, dict) and choice.get("name")
            else choice
        )
    text_format = (body.get("text") or {}).get("format")
    if text_format:
        if text_format.get("type") == "json_schema":
            chat["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": text_format.get("name", "answer"),
                    "schema": text_format.get("schema"),
                    "strict": text_format.get("strict", False),
                },
            }
        else:
            chat["response_format"] = {"type": text_format.get("type")}
    for source, target in (("max_output_tokens", "max_completion_tokens"), ("temperature", "temperature")):
        if body.get(source) is not None:
            chat[target] = body[source]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    return chat
