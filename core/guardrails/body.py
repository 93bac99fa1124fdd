"""The input guardrails over a whole request body, whatever the endpoint.

Every string of the body is scanned for secrets (values and keys, identifiers and binary
payloads too): one in any field blocks the request, and the verdict names that field
(``tools[0].function.description``) so the caller can find it without the secret being
quoted back. Personal data is looked for in the free-text values only (see
``core.guardrails.fields``) and redacted, blocked or allowed per the team's policy, the
same in ``tools``, ``metadata`` or ``user`` as in a message's content.

Like ``GuardrailOutcome``, a verdict never holds a raw finding: kinds, counts, masked
values and field names only; a blocked verdict carries no body at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core.guardrails.fields import Path, field_name, text_fields, with_texts
from core.guardrails.pii import PII_KINDS, PlaceholderBook, find_pii, replace_findings
from core.guardrails.policy import FindingSummary, GuardrailPolicy
from core.guardrails.secrets import find_secrets


@dataclass(frozen=True)
class BodyVerdict:
    """The verdict on a request body; ``body`` is what may be sent (None when blocked)."""

    decision: Literal["allow", "block"]
    rule: str | None
    field: str | None  # the field where the blocking finding sits
    findings: tuple[FindingSummary, ...]
    body: Any = field(default=None, repr=False)

    @property
    def blocked(self) -> bool:
        return self.decision == "block"


def scan_body(body: Any, policy: GuardrailPolicy, *, root: str = "", secrets: bool = True,
              pii: bool = True) -> BodyVerdict:
    """Scan every string of ``body``; redact per ``policy`` unless something blocks.

    ``root`` prefixes the field names (``variables`` for a prompt call's variables).
    ``secrets=False`` skips the credential scan when this same text was scanned already.
    """
    # rule -> (masked values, field names, action), in the order first found.
    found: dict[str, tuple[list[str], list[str], str]] = {}
    # (rule, field) of the first secret, and of the first personal data the policy blocks.
    secret_block: tuple[str, str] | None = None
    pii_block: tuple[str, str] | None = None
    checked_kinds = tuple(kind for kind in PII_KINDS if policy.action_for(kind) != "allow") if pii else ()
    redact_kinds = set(policy.kinds_with("redact"))
    to_redact: list[tuple[Path, str, list]] = []
    for text_field in text_fields(body):
        text = text_field.text
        if not text:
            continue
        if secrets:
            for finding in find_secrets(text, high_entropy=policy.detect_high_entropy_secrets
                                        and not text_field.binary):
                name = field_name(text_field.path, root=root)
                _note(found, finding.rule, finding.masked, name, "block")
                secret_block = secret_block or (finding.rule, name)
        if not checked_kinds or not text_field.free_text or text_field.is_key:
            continue
        pii_found = find_pii(text, checked_kinds)
        if not pii_found:
            continue
        name = field_name(text_field.path, root=root)
        for finding in pii_found:
            action = policy.action_for(finding.kind)
            _note(found, finding.rule, finding.masked, name, action)
            if action == "block":
                pii_block = pii_block or (finding.rule, name)
        redacted = [finding for finding in pii_found if finding.kind in redact_kinds]
        if redacted:
            to_redact.append((text_field.path, text, redacted))
    summaries = tuple(FindingSummary(rule, len(masked), tuple(masked), action, tuple(dict.fromkeys(names)))
                      for rule, (masked, names, action) in found.items())
    blocking = secret_block or pii_block  # a secret decides first: it always blocks
    if blocking is not None:
        return BodyVerdict("block", blocking[0], blocking[1], summaries)
    book = PlaceholderBook()  # one per request: the same value, the same placeholder
    replacements = {path: replace_findings(text, findings, book=book).text for path, text, findings in to_redact}
    return BodyVerdict("allow", None, None, summaries, with_texts(body, replacements))


def _note(found: dict, rule: str, masked: str, name: str, action: str) -> None:
    entry = found.setdefault(rule, ([], [], action))
    entry[0].append(masked)
    entry[1].append(name)
