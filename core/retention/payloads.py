"""Data minimization at the gateway: what of a call's text is stored, per team.

full      the payload as the guardrails left it (secrets are never stored in any mode)
redacted  every kind of personal data replaced by placeholders, in request and answer
none      no text at all; the call log, usage and cost are stored as always
"""

from __future__ import annotations

import json
from typing import Any

from core.guardrails.pii import PlaceholderBook, redact
from core.retention.rules import payload_storage_mode

__all__ = ["payload_storage_mode", "minimized_payload"]


def minimized_payload(
    mode: str, request_json: str | None, response_json: str | None, *, needed_for_hold: bool = False
) -> tuple[str | None, str | None] | None:
    """The (request, response) text to store under `mode`, or None to store no payload row.

    A held request keeps its (redacted) request even under "none": releasing it answers
    the caller from that text, and the hold's retention class deletes it in time.
    """
    if mode == "full":
        return request_json, response_json
    if mode == "none" and not needed_for_hold:
        return None
    book = PlaceholderBook()
    request = _redacted_json(request_json, book)
    return request, (None if mode == "none" else _redacted_json(response_json, book))


def _redacted_json(text: str | None, book: PlaceholderBook) -> str | None:
    if text is None:
        return None
    return json.dumps(_redact_strings(json.loads(text), book))


def _redact_strings(value: Any, book: PlaceholderBook) -> Any:
    if isinstance(value, str):
        return redact(value, book=book).text
    if isinstance(value, list):
        return [_redact_strings(v, book) for v in value]
    if isinstance(value, dict):
        return {k: _redact_strings(v, book) for k, v in value.items()}
    return value
