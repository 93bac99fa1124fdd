"""Checking a request body against the request types the openai SDK itself ships.

A malformed body is refused here with a 400 that names the bad parameter, before any
stage reads it: a stage that meets a string where it expects a message would otherwise
fail with a 500 after the budget was already reserved. The schema is not written by
hand: the SDK's TypedDicts (``CompletionCreateParams*``, ``EmbeddingCreateParams``) are
validated through pydantic ``TypeAdapter``s built once at import. Keys the types do not
know pass through untouched (OpenAI adds parameters often); only the known ones are
checked. The validated copy is thrown away: the body goes on exactly as the client sent it.

Two things pydantic does not check on its own are added: the SDK types ``messages`` and
friends as ``Iterable``, which pydantic validates lazily (so every such iterator is
drained here), and a lone UTF-16 surrogate (``"\\ud800"``), which is valid JSON but
cannot be encoded to send upstream or store. Before all of it, `parse_body` refuses what
Python's JSON parser takes but JSON does not allow: ``NaN``, ``Infinity`` and a number too
large for a float.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn

import pydantic
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from openai.types.embedding_create_params import EmbeddingCreateParams

from core.gateway.errors import InvalidRequest

_CHAT = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
_CHAT_STREAMING = pydantic.TypeAdapter(CompletionCreateParamsStreaming)
_EMBEDDINGS = pydantic.TypeAdapter(EmbeddingCreateParams)
# The same message types, told apart by their role (as the API does) instead of tried one
# by one: a fifth of the cost, and the error names the member the role chose.
_MESSAGES = pydantic.TypeAdapter(list[Annotated[ChatCompletionMessageParam, pydantic.Field(discriminator="role")]])
# pydantic-core's lazy iterator type is not exported; take it from a lazy result.
ValidatorIterator = type(pydantic.TypeAdapter(Iterable[int]).validate_python([]))


def check_chat(body: dict[str, Any]) -> None:
    """Refuse (InvalidRequest) a chat body the SDK's request type does not accept."""
    _check(_CHAT_STREAMING if body.get("stream") is True else _CHAT, body, messages=True)


def check_embeddings(body: dict[str, Any]) -> None:
    _check(_EMBEDDINGS, body)


def check_delivery(body: dict[str, Any]) -> None:
    """A catalog prompt's call: the delivery options it may add, and its own fields."""
    if body.get("label") is not None and not isinstance(body["label"], str):
        raise InvalidRequest("'label' must be the name of a label, such as \"production\"", param="label")
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidRequest("'variables' must be an object of the prompt's variables", param="variables")
    delivery = {k: body[k] for k in ("stream", "stream_options", "user") if k in body}
    if delivery:
        # The same types as a chat call's, checked on a minimal body around them.
        check_chat({"model": "-", "messages": [], **delivery})


def _check(adapter: pydantic.TypeAdapter, body: dict[str, Any], *, messages: bool = False) -> None:
    try:
        validated = adapter.validate_python(body)
        if messages:
            validated = {k: v for k, v in validated.items() if k != "messages"}
            _drain_at(("messages",), _MESSAGES.validate_python, body["messages"])
        _drain(validated, ())
    except pydantic.ValidationError as error:
        raise _describe([(tuple(e["loc"]), _message(e)) for e in error.errors()], body) from None
    except _Nested as nested:
        raise _describe([((*nested.loc, *e["loc"]), _message(e)) for e in nested.error.errors()], body) from None


def _drain(value: Any, loc: tuple) -> None:
    """Consume every lazily validated iterable, so its items are checked now (with its path)."""
    if isinstance(value, ValidatorIterator):
        try:
            items = list(value)
        except pydantic.ValidationError as error:
            raise _Nested(loc, error) from None
        for index, item in enumerate(items):
            _drain(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            _drain(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _drain(item, (*loc, index))


def _drain_at(loc: tuple, validate, value: Any) -> None:
    try:
        _drain(validate(value), loc)
    except pydantic.ValidationError as error:
        raise _Nested(loc, error) from None


class _Nested(Exception):
    def __init__(self, loc: tuple, error: pydantic.ValidationError) -> None:
        super().__init__()
        self.loc, self.error = loc, error


def _message(error: dict[str, Any]) -> str:
    """pydantic's message without the value it quotes (a tag, a string): the refusal is logged and
    stored, and the value may be a credential the guardrails have not scanned yet."""
    message = str(error.get("msg", "invalid value"))
    quoted = [error.get("input"), (error.get("ctx") or {}).get("tag")]
    for value in quoted:
        if isinstance(value, str) and value:
            message = message.replace(value, "…")
    return message


def _describe(problems: list[tuple[tuple, str]], body: Any) -> InvalidRequest:
    # The most specific problem: the longest path through the body itself (a union's
    # member names in pydantic's locations are not part of the body).
    best_param, best_msg, best_depth = "", problems[0][1], -1
    for loc, msg in problems:
        path = _body_path(loc, body)
        if len(path) > best_depth:
            best_param, best_msg, best_depth = _param(path), msg, len(path)
    return InvalidRequest(f"Invalid value for '{best_param}': {best_msg}", param=best_param or None)


def _body_path(loc: tuple, body: Any) -> list:
    path, here = [], body
    for position, part in enumerate(loc):
        if isinstance(here, dict) and isinstance(part, str) and part in here:
            path.append(part)
            here = here[part]
        elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
            path.append(part)
            here = here[part]
        elif isinstance(here, dict) and isinstance(part, str) and position == len(loc) - 1:
            path.append(part)  # a required field that is missing
            break
    return path


def _param(path: list) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it.

    Python's parser also takes ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's own
    ``json.dumps`` writes, so a Python client may well send them) and reads a number beyond a
    float's range (``1e400``) as infinity. None of them is JSON: the body could not be sent on
    to the upstream as it was sent here, and OpenAI refuses it. So they are refused as it
    would, before anything is reserved; the parser calls these hooks only when a body holds
    such a constant or a number with a fraction or exponent."""
    try:
        body = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)
    except _NotFinite as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error}") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    check_raw_text(raw, body)
    return body


class _NotFinite(ValueError):
    pass


def _not_a_number(name: str) -> NoReturn:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"the number {text[:40]} is too large")
    return value


def check_raw_text(raw: bytes, body: Any) -> None:
    """Refuse a body whose text holds a lone surrogate or a NUL, given the bytes it was parsed from.

    Such a string can only come from an escape (``\\udXXX``, ``\\u0000``) or from UTF-8 bytes
    that encode a surrogate (``\\xed\\xa0``...), so the walk over every string runs only when
    the raw bytes hold one of those, which a normal request never does. A NUL is refused because
    PostgreSQL text cannot hold one (a label or a model name is stored or looked up as given)."""
    if b"\\ud" in raw or b"\\uD" in raw or b"\xed" in raw or b"\\u0000" in raw:
        _check_text(body, "")


def check_path_text(value: str, param: str) -> str:
    """A path parameter, refused if it holds a NUL (the database cannot look one up)."""
    if "\x00" in value:
        raise InvalidRequest(f"Invalid value for '{param}': the text holds a NUL character", param=param)
    return value


def _check_text(value: Any, param: str) -> None:
    """Refuse a string that cannot be encoded as UTF-8 (a lone surrogate).

    A loop over a stack rather than recursion: the body may nest as deep as the JSON parser
    allows, and this walk must not be the one to overflow."""
    pending = [(value, param)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidRequest(f"Invalid value for '{path}': the text holds a NUL character", param=path or None)
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidRequest(
                        f"Invalid value for '{path}': the text holds a lone UTF-16 surrogate "
                        "(such as \\ud800), which is not valid Unicode",
                        param=path or None,
                    ) from None
        elif isinstance(item, dict):
            for key, inner in item.items():
                pending.append((key, path))
                pending.append((inner, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list):
            pending.extend((inner, f"{path}[{index}]") for index, inner in enumerate(item))
