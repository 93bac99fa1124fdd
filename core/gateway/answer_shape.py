"""Whether an upstream's answer has the shape the gateway reads, before any stage reads it.

OpenAI's answers always have it. A server Quorum did not write, or something between the two
(a proxy's login page, a load balancer's error page sent with status 200), may answer a body
that is not JSON, or JSON of another shape. Read as an answer, that failed inside a stage (the
output guardrails, the billing) as a defect of the gateway: a 500 `internal_error`, logged as
Quorum's. It is the upstream's failure: a 502 `upstream_malformed`, retried and counted by the
circuit breaker as a 5xx is, and no budget is charged (nothing says what the call cost).

Only what the gateway reads is checked; everything else passes on untouched.
"""

from __future__ import annotations

import json
from typing import Any


class MalformedAnswer(Exception):
    """The upstream answered something that is not an answer of its kind; the text says what."""


def parse(content: bytes, path: str) -> dict[str, Any]:
    """The answer to a call of `path` (/chat/completions...), or MalformedAnswer."""
    try:
        answer = json.loads(content)
    except (ValueError, RecursionError):
        raise MalformedAnswer("a body that is not JSON") from None
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"JSON that is not an object (a {type(answer).__name__})")
    check = _CHECKS.get(path)
    problem = check(answer) if check is not None else None
    if problem is not None:
        raise MalformedAnswer(problem)
    return answer


def _chat(answer: dict[str, Any]) -> str | None:
    choices = answer.get("choices")
    if not _list_of_objects(choices):
        return "an answer whose 'choices' is not a list of objects"
    for choice in choices:
        message = choice.get("message")
        if not isinstance(message, dict):
            return "a choice whose 'message' is not an object"
        if not isinstance(message.get("content"), str | None):
            return "a message whose 'content' is not text"
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not (
            _list_of_objects(tool_calls)
            and all(_text_or_none(call.get("function"), "arguments") for call in tool_calls)
        ):
            return "a message whose 'tool_calls' are not calls with text arguments"
    return None


def _responses(answer: dict[str, Any]) -> str | None:
    output = answer.get("output")
    if not _list_of_objects(output):
        return "a response whose 'output' is not a list of objects"
    for item in output:
        if item.get("type") == "message":
            content = item.get("content")
            if not _list_of_objects(content) or not all(_text_or_none(part, "text") for part in content):
                return "a message whose 'content' is not parts with text"
        elif item.get("type") == "function_call" and not _text_or_none(item, "arguments"):
            return "a function call whose 'arguments' are not text"
    return None


def _listed(field: str) -> Any:
    def check(answer: dict[str, Any]) -> str | None:
        return None if _list_of_objects(answer.get(field)) else f"an answer whose '{field}' is not a list of objects"

    return check


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _text_or_none(holder: Any, field: str) -> bool:
    return isinstance(holder, dict) and isinstance(holder.get(field), str | None)


_CHECKS = {
    "/chat/completions": _chat,
    "/responses": _responses,
    "/embeddings": _listed("data"),
    "/moderations": _listed("results"),
}
