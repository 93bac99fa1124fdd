"""The Responses API on the gateway's one path: what the pipeline needs to know of its bodies.

A Responses request carries text in more places than a chat request: ``instructions``,
``input`` (a string, or items whose content is a string or text parts), function call
arguments and outputs, the tool definitions and the output format's schema. Every one of
those strings is a *text slot*; the input guardrails see each slot as one message, so secrets are blocked and
personal data redacted wherever it sits, and the redacted texts are written back into
the same places before the body goes upstream.

What the gateway cannot bound offline it refuses with a 400 naming the parameter:
``previous_response_id``, ``conversation`` and ``prompt`` (the provider would add stored
text whose size and content no guardrail or budget reservation has seen), ``background``,
built-in tools (web search, file search... bill beyond tokens) and input parts that are
not text (images and files cannot be checked by the guardrails).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.budgets.tokens import chat_input_tokens_estimate, chat_input_tokens_upper_bound
from core.errors import ValidationError
from core.gateway.redaction import redact_text
from core.guardrails import GuardrailPolicy

# Fields that name or identify rather than say something: never scanned (a call id would
# look like a high-entropy secret) and never rewritten.
_NOT_TEXT = frozenset({"type", "role", "id", "call_id", "status", "strict"})
_ITEM_TYPES = ("message", "function_call", "function_call_output")
_TEXT_PARTS = ("input_text", "output_text")
# Everything the model reads: the output format's schema (descriptions, names) included.
_SLOT_ROOTS = ("instructions", "input", "tools", "text")

Path = tuple[Any, ...]


class UnsupportedParameter(ValidationError):
    """A parameter the gateway refuses (HTTP 400 with ``param``)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


def validate(body: dict[str, Any]) -> None:
    """Refuse what cannot be governed; the provider validates the rest."""
    for name in ("previous_response_id", "conversation"):
        if body.get(name) is not None:
            raise UnsupportedParameter(
                f"'{name}' is not supported by this gateway: the provider would add a stored conversation that "
                "the guardrails and the budget have not seen; send the earlier turns as 'input' items",
                param=name,
            )
    if body.get("prompt") is not None:
        raise UnsupportedParameter(
            "'prompt' (a prompt stored at the provider) is not supported by this gateway: its text would reach the "
            "model unchecked; run an approved catalog prompt with POST /v1/prompts/{name}/completions",
            param="prompt",
        )
    if body.get("background"):
        raise UnsupportedParameter("'background' responses are not supported by this gateway", param="background")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise UnsupportedParameter("'instructions' must be text", param="instructions")
    given = body.get("input")
    if isinstance(given, str):
        pass
    elif isinstance(given, list) and given:
        for index, item in enumerate(given):
            _check_item(item, index)
    else:
        raise UnsupportedParameter("'input' must be text or a non-empty list of input items", param="input")
    for index, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise UnsupportedParameter(
                "Only function tools are supported by this gateway (built-in tools bill beyond tokens)",
                param=f"tools[{index}].type",
            )
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UnsupportedParameter(
            "'max_output_tokens' must be a whole number of at least 1", param="max_output_tokens"
        )


def _check_item(item: object, index: int) -> None:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise UnsupportedParameter(f"'{where}' must be an object", param=where)
    kind = item.get("type", "message")
    if kind not in _ITEM_TYPES:
        raise UnsupportedParameter(
            f"'{where}.type' {kind!r} is not supported by this gateway; supported: {', '.join(_ITEM_TYPES)}",
            param=f"{where}.type",
        )
    if kind != "message":
        return
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise UnsupportedParameter(f"'{where}.content' must be text or a list of text parts", param=f"{where}.content")
    for part_index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            raise UnsupportedParameter(
                f"'{where}.content[{part_index}]' is not a text part; the guardrails can check only text (input_text)",
                param=f"{where}.content[{part_index}].type",
            )


# ---- text slots: what the guardrails scan and redact -----------------------------------------


def text_slots(body: dict[str, Any]) -> list[tuple[Path, str]]:
    """Every string the request sends for the model to read, with where it sits."""
    slots: list[tuple[Path, str]] = []
    for root in _SLOT_ROOTS:
        if root in body:
            slots.extend(_leaves(body[root], (root,)))
    return slots


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        if value:
            yield path, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in _NOT_TEXT:
                yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(inner, (*path, index))


def scan_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One message per text slot, in ``text_slots`` order (what the input guardrails read)."""
    return [{"role": "user", "content": text} for _, text in text_slots(body)]


def with_texts(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The body with each slot's text replaced by the (redacted) text of its message."""
    result = dict(body)
    for (path, original), message in zip(text_slots(body), messages):
        if message["content"] != original:
            _set(result, path, message["content"])
    return result


def _set(container: dict[str, Any], path: Path, text: str) -> None:
    """Sets ``text`` at ``path``, copying each container on the way (the caller's body is not changed)."""
    node: Any = container
    for step in path[:-1]:
        inner = node[step]
        node[step] = inner = dict(inner) if isinstance(inner, dict) else list(inner)
        node = inner
    node[path[-1]] = text


# ---- budget --------------------------------------------------------------------------------


def _input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    # Tools and the output format are bounded as chat's are (below), not as messages.
    return [
        {"role": "user", "content": text} for path, text in text_slots(body) if path[0] in ("instructions", "input")
    ]


def _chat_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if not tools:
        return None
    return [
        {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
        for t in tools
    ]


def _chat_format(body: dict[str, Any]) -> dict[str, Any] | None:
    text_format = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if not isinstance(text_format, dict):
        return None
    if text_format.get("type") == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": text_format.get("name"), "schema": text_format.get("schema")},
        }
    return {"type": text_format.get("type")}


def input_tokens_upper_bound(body: dict[str, Any]) -> int:
    """At most this many input tokens (each slot counted as a message: over-inclusive on purpose)."""
    return chat_input_tokens_upper_bound(
        messages=_input_messages(body), tools=_chat_tools(body), response_format=_chat_format(body)
    )


def input_tokens_estimate(body: dict[str, Any]) -> int:
    return chat_input_tokens_estimate(
        messages=_input_messages(body), tools=_chat_tools(body), response_format=_chat_format(body)
    )


# ---- the answer ----------------------------------------------------------------------------


def output_texts(response: dict[str, Any]) -> list[str]:
    """The answer's text: output_text parts of message items, and function call arguments."""
    texts = []
    for item in response.get("output") or ():
        if item.get("type") == "message":
            texts += [p.get("text") or "" for p in item.get("content") or () if p.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            texts.append(item.get("arguments") or "")
    return texts


def redacted_response(response: dict[str, Any], policy: GuardrailPolicy) -> dict[str, Any]:
    """The response with every output text redacted as chat answers are (secrets masked, personal data
    the policy does not allow replaced)."""
    output = []
    for item in response.get("output") or ():
        if item.get("type") == "message":
            item = {
                **item,
                "content": [
                    {**p, "text": redact_text(p.get("text") or "", policy)} if p.get("type") == "output_text" else p
                    for p in item.get("content") or ()
                ],
            }
        elif item.get("type") == "function_call":
            item = {**item, "arguments": redact_text(item.get("arguments") or "", policy)}
        output.append(item)
    return {**response, "output": output}


def cap_output(body: dict[str, Any], granted: int | None) -> dict[str, Any]:
    """``max_output_tokens`` lowered to what the reservation granted (None: no cap)."""
    if granted is None:
        return body
    current = body.get("max_output_tokens")
    if current is None or current > granted:
        return {**body, "max_output_tokens": granted}
    return body


# ---- streamed events -----------------------------------------------------------------------

TEXT_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta")
FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
