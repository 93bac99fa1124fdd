"""Offline token counts for chat requests: a safe upper bound, and an estimate for display.

Why the bound holds. The models priced here use byte-level BPE encodings (cl100k_base,
o200k_base): text is encoded as UTF-8, and it is cut into tokens each of which stands for
a non-empty run of those bytes, the runs concatenating back to the text. A text of N bytes
therefore has at most N tokens, whatever the vocabulary, so no encoding file (which
tiktoken would download) is needed. Everything taken from the request - message text,
roles, names, tool-call arguments, tool and schema JSON - is counted by its bytes.

What the bytes do not cover is the chat template the server wraps around them (special
tokens per message, a reply primer, the text that introduces tools and response schemas).
Its exact form is not published; OpenAI's cookbook measures it as 3 tokens per message,
1 per name, 3 to prime the reply, and a handful per tool, property and enum item. The
constants below take those figures with a wide margin, which is cheap: for English the
byte count alone is already about four times the real count.

The bound is what budget reservations use; ``*_estimate`` is only for showing people a
likely number, and may be lower than the real count.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.errors import ValidationError

# The output a call may produce when the caller set no limit: the reservation holds its
# worst case and the gateway (and an experiment's estimate) caps the request to it, so no
# call can outspend its hold.
DEFAULT_MAX_OUTPUT_TOKENS = 4096

# Template allowances, in tokens (cookbook figures, roughly doubled; see the module doc).
MESSAGE_ALLOWANCE = 8  # cookbook: 3 per message, +1 for a name
REPLY_PRIMER_ALLOWANCE = 8  # cookbook: 3
REQUEST_ALLOWANCE = 32  # any fixed preamble the server adds once per request
TOOLS_BLOCK_ALLOWANCE = 32  # "namespace functions { ... }" and its header
TOOL_ALLOWANCE = 24  # cookbook: 7 to open a function, 12 to close the block
TOOL_PROPERTY_ALLOWANCE = 8  # cookbook: 3 per property, 3 per key
ENUM_ITEM_ALLOWANCE = 4  # cookbook: 3 per enum item
RESPONSE_FORMAT_ALLOWANCE = 32  # text introducing a JSON mode or a JSON schema

# Cookbook constants, unpadded, for the estimate.
_ESTIMATE_PER_MESSAGE = 3
_ESTIMATE_REPLY_PRIMER = 3

_TEXT_PART_TYPES = {"text": "text", "refusal": "refusal", "input_text": "text", "output_text": "text"}

# A rough cut of text into the pieces a GPT pre-tokenizer makes: words with their leading
# space, runs of up to three digits, runs of punctuation, runs of whitespace.
_PIECES = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+|_+", re.UNICODE)


def text_tokens_upper_bound(text: str) -> int:
    """At most this many tokens: one per UTF-8 byte (see the module doc)."""
    return len(text.encode("utf-8"))


def text_tokens_estimate(text: str) -> int:
    """A likely token count, for display only (English prose and code within ~20%; not a bound)."""
    total = 0.0
    for piece in _PIECES.findall(text):
        word = piece.strip() or piece
        wide = sum(1 for char in word if ord(char) >= 0x2E80)  # CJK, emoji
        narrow = len(word) - wide
        # Common words are one token; long or rare ones split into chunks of ~6
        # characters; CJK and emoji come to about 0.7 token per character.
        total += max(1, math.ceil(narrow / 6)) + 0.7 * wide
    return max(1, round(total)) if text else 0


def chat_input_tokens_upper_bound(
    *,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> int:
    """An upper bound of ``usage.prompt_tokens`` for a Chat Completions request."""
    total = REQUEST_ALLOWANCE + REPLY_PRIMER_ALLOWANCE
    for message in messages:
        total += MESSAGE_ALLOWANCE
        total += sum(text_tokens_upper_bound(text) for text in _message_texts(message))
    if tools:
        total += TOOLS_BLOCK_ALLOWANCE + text_tokens_upper_bound(_json(tools))
        total += TOOL_ALLOWANCE * len(tools)
        properties, enum_items = _schema_shape(tools)
        total += TOOL_PROPERTY_ALLOWANCE * properties + ENUM_ITEM_ALLOWANCE * enum_items
    total += _response_format_bound(response_format)
    return total


def chat_input_tokens_estimate(
    *,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> int:
    """A likely ``prompt_tokens`` for display; may be below the real count."""
    total = _ESTIMATE_REPLY_PRIMER
    for message in messages:
        total += _ESTIMATE_PER_MESSAGE
        total += sum(text_tokens_estimate(text) for text in _message_texts(message))
    if tools:
        total += text_tokens_estimate(_json(tools))
    if response_format and response_format.get("type") == "json_schema":
        total += text_tokens_estimate(_json(response_format.get("json_schema", {})))
    return total


def _message_texts(message: Mapping[str, Any]) -> Iterable[str]:
    """Every piece of text a message contributes to the prompt (over-inclusive on purpose).

    The content's text parts, and every other field (role, name, tool_calls,
    tool_call_id...) as JSON: fields the server does not render only loosen the bound.
    """
    if not isinstance(message, Mapping):
        raise ValidationError(f"A message must be an object, not {type(message).__name__}")
    for field, value in message.items():
        if field == "content":
            yield from _content_texts(value)
        elif value is not None:
            yield value if isinstance(value, str) else _json(value)


def _content_texts(content: Any) -> Iterable[str]:
    if content is None:
        return
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        raise ValidationError(f"Message content must be text or a list of parts, not {type(content).__name__}")
    for part in content:
        part_type = part.get("type") if isinstance(part, Mapping) else None
        if part_type not in _TEXT_PART_TYPES:
            # Images, audio and files are priced by rules this offline count does not
            # model; refusing is safer than a bound that might not hold.
            raise ValidationError(
                f"Cannot bound the tokens of a {part_type!r} content part offline; only text parts are supported"
            )
        yield part.get(_TEXT_PART_TYPES[part_type]) or ""


def _response_format_bound(response_format: Mapping[str, Any] | None) -> int:
    if not response_format or response_format.get("type") == "text":
        return 0
    return RESPONSE_FORMAT_ALLOWANCE + text_tokens_upper_bound(_json(response_format))


def _schema_shape(node: Any) -> tuple[int, int]:
    """(number of properties, number of enum items) anywhere in a JSON-schema-like tree."""
    properties = enum_items = 0
    if isinstance(node, Mapping):
        if isinstance(node.get("properties"), Mapping):
            properties += len(node["properties"])
        if isinstance(node.get("enum"), list):
            enum_items += len(node["enum"])
        children: Iterable[Any] = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return 0, 0
    for child in children:
        child_properties, child_enum_items = _schema_shape(child)
        properties += child_properties
        enum_items += child_enum_items
    return properties, enum_items


def _json(value: Any) -> str:
    # ensure_ascii=False: "\u00e9" escapes would inflate non-ASCII text sixfold.
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
