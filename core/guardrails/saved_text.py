"""Refusing to save text that carries a credential: the one check every save path calls.

Drafts, change notes, review comments, evidence, feedback, test cases, names and
descriptions are stored for years and shown on screens, in exports and in the audit
log. A key pasted into one of them has leaked to everyone who can read it, so the save
is refused, with a message naming the field and the kind of credential but never
quoting it. The check lives in core so that pages, the command line and the HTTP API
all get the same refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ValidationError
from core.guardrails.fields import field_name, text_fields
from core.guardrails.secrets import find_secrets, secret_kind_name


class SecretInText(ValidationError):
    """Text to be saved contains a credential; ``field`` and ``kind`` say where and what."""

    def __init__(self, message: str, *, field: str, kind: str) -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind


def refuse_secrets(value: Any, *, field: str) -> None:
    """Raise ``SecretInText`` if ``value`` (text, or dicts and lists of it) holds a credential.

    ``field`` names it for a person, lower-case: "the change note", "test case 3".
    Inside structured values the path is added: "the variables (ticket.body)".
    """
    for text_field in text_fields(value):
        findings = find_secrets(text_field.text)
        if findings:
            where = field if not text_field.path else f"{field} ({field_name(text_field.path)})"
            raise SecretInText(
                f"{where[:1].upper()}{where[1:]} contains {secret_kind_name(findings[0].kind)}; "
                "remove it before saving",
                field=where,
                kind=findings[0].kind,
            )


def refuse_secrets_in(fields: Mapping[str, Any]) -> None:
    """``refuse_secrets`` for several fields of one form: ``{"the name": name, ...}``."""
    for field, value in fields.items():
        refuse_secrets(value, field=field)
