"""Every string in a JSON-like value, with the field it sits in.

The guardrails walk a request body instead of reading a list of known fields: a secret
can be pasted into any text a caller controls (a tool's description, ``metadata``, a
message's ``name``, a schema's ``enum``, the ``input`` items of an endpoint added later),
and a list of known fields is out of date the day a field is added. So every string is
visited, dict keys included (``metadata`` keys and schema property names are free text).

Each string says whether it is free text (where personal data is redacted) or an
identifier of the API's own vocabulary (``model``, ``role``, ``type``, a tool's
``name``...), where a placeholder would break the request; and whether it is a binary
payload (a ``data:`` URL, base64 audio or file data), where only the credential patterns
run, not the entropy and personal-data detectors, which mistake base64 for findings.
Every string, whatever its kind, is scanned for secrets.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from core.guardrails.secrets import find_secrets

Path = tuple[str | int, ...]

# Values under these keys are identifiers or enumerations of the API, not free text.
NOT_FREE_TEXT = frozenset(
    {
        "model",
        "role",
        "type",
        "name",
        "id",
        "tool_call_id",
        "call_id",
        "tool_choice",
        "encoding_format",
        "reasoning_effort",
        "service_tier",
        "modalities",
        "voice",
        "format",
        "detail",
        "required",
        "pattern",
        "$ref",
        "label",
        "version",
        "previous_response_id",
        "truncation",
        "status",
    }
)
# Values under these keys (or any value that is a data: URL) are base64 payloads.
_BINARY_KEYS = frozenset({"data", "file_data", "image_base64"})
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,63}")


class TextField(NamedTuple):
    """One string of a value: where it is, and what kind of text it is.

    A named tuple, not a dataclass: a body has dozens of strings and the walk is on every
    gateway call, where a frozen dataclass's constructor alone cost more than the scan.
    """

    path: Path  # keys and list indexes from the root; for a key, the path of the dict plus the key
    text: str
    is_key: bool = False
    free_text: bool = True
    binary: bool = False


def text_fields(value: Any, path: Path = ()) -> list[TextField]:
    """Every string in ``value`` (dict keys too), depth first, in document order."""
    found: list[TextField] = []
    _collect(value, path, None, found)
    return found


# The tuple's own constructor: the named tuple's __new__ is a Python function, called for
# every string of every body and audit event.
_field = tuple.__new__


def _collect(value: Any, path: Path, key: str | None, found: list[TextField]) -> None:
    # ``key``: the nearest dict key above ``value``, which says what kind of text it is.
    if isinstance(value, str):
        binary = key in _BINARY_KEYS or value.startswith("data:")
        found.append(_field(TextField, (path, value, False, not binary and key not in NOT_FREE_TEXT, binary)))
    elif isinstance(value, dict):
        for item_key, item in value.items():
            item_path = path + (item_key,)
            if isinstance(item_key, str):
                found.append(_field(TextField, (item_path, item_key, True, False, False)))
                _collect(item, item_path, item_key, found)
            else:
                _collect(item, item_path, key, found)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect(item, path + (index,), key, found)


def field_name(path: Path, *, root: str = "") -> str:
    """``tools[0].function.description``: how a person names a field of a request.

    A key that is not a plain identifier is shown as ``[…]``: keys are free text, and a
    field name ends up in refusal messages and stored findings.
    """
    name = root
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part) and not _looks_like_a_credential(part):
            name += f".{part}" if name else part
        else:
            name += "[…]"
    return name or "(the body)"


def _looks_like_a_credential(key: str) -> bool:
    # An identifier-shaped key can still be a token ("ghp_...").
    return len(key) >= 16 and bool(find_secrets(key))


def with_texts(value: Any, replacements: dict[Path, str]) -> Any:
    """A copy of ``value`` with the strings at ``replacements``' paths replaced.

    Only the dicts and lists on the way to a replaced string are copied; the rest is
    shared with ``value``, which is not changed.
    """
    if not replacements:
        return value
    result = value
    for path, text in replacements.items():
        result = _replaced(result, path, text)
    return result


def _replaced(value: Any, path: Path, text: str) -> Any:
    if not path:
        return text
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replaced(value[head], rest, text)
    return copy
