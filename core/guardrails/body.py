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

from bisect import bisect_right
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from core.guardrails.fields import TextField, field_name, text_fields, with_texts
from core.guardrails.pii import PII_KINDS, PiiFinding, PlaceholderBook, find_pii, replace_findings
from core.guardrails.policy import FindingSummary, GuardrailPolicy
from core.guardrails.secrets import SecretFinding, find_secrets


@dataclass(frozen=True)
class BodyVerdict:
    """The verdict on a request body; ``body`` is what may be sent (None when blocked)."""

    decision: Literal["allow", "block"]
    rule: str | None
    field: str | None  # the field where the blocking finding sits
    findings: tuple[FindingSummary, ...]
    body: Any = dataclass_field(default=None, repr=False)

    @property
    def blocked(self) -> bool:
        return self.decision == "block"


def scan_body(
    body: Any, policy: GuardrailPolicy, *, root: str = "", secrets: bool = True, pii: bool = True
) -> BodyVerdict:
    """Scan every string of ``body``; redact per ``policy`` unless something blocks.

    ``root`` prefixes the field names (``variables`` for a prompt call's variables).
    ``secrets=False`` skips the credential scan when this same text was scanned already.
    """
    fields = [text_field for text_field in text_fields(body) if text_field.text]
    # rule -> (masked values, field names, action), in the order first found.
    found: dict[str, tuple[list[str], list[str], str]] = {}
    secret_block = pii_block = None  # (rule, field) of the first secret / blocked personal data
    if secrets:
        for text_field, finding in _secret_findings(fields, policy):
            name = field_name(text_field.path, root=root)
            _note(found, finding.rule, finding.masked, name, "block")
            secret_block = secret_block or (finding.rule, name)
    checked_kinds = tuple(kind for kind in PII_KINDS if policy.action_for(kind) != "allow") if pii else ()
    redact_kinds = set(policy.kinds_with("redact"))
    free_text = [f for f in fields if f.free_text and not f.is_key] if checked_kinds else []
    by_field, joined = _pii_findings(free_text, checked_kinds)
    to_redact: dict[int, list[PiiFinding]] = {}
    for index, pii_found in by_field.items():
        name = field_name(free_text[index].path, root=root)
        for pii_finding in pii_found:
            action = policy.action_for(pii_finding.kind)
            _note(found, pii_finding.rule, pii_finding.masked, name, action)
            if action == "block":
                pii_block = pii_block or (finding.rule, name)
        redacted = [finding for finding in pii_found if finding.kind in redact_kinds]
        if redacted:
            to_redact[index] = redacted
    summaries = tuple(
        FindingSummary(rule, len(masked), tuple(masked), action, tuple(dict.fromkeys(names)))
        for rule, (masked, names, action) in found.items()
    )
    blocking = secret_block or pii_block  # a secret decides first: it always blocks
    if blocking is not None:
        return BodyVerdict("block", blocking[0], blocking[1], summaries)
    book = PlaceholderBook()  # one per request: the same value, the same placeholder
    if joined is not None and to_redact:
        # Redacted in one pass over the joined text, then split back into its fields.
        redacted_text = replace_findings(joined, [f for found in to_redact.values() for f in found], book=book).text
        parts = redacted_text.split(_SEPARATOR)
        replacements = {free_text[index].path: parts[index] for index in to_redact}
    else:
        replacements = {
            free_text[index].path: replace_findings(free_text[index].text, found, book=book).text
            for index, found in to_redact.items()
        }
    return BodyVerdict("allow", None, None, summaries, with_texts(body, replacements))


# The fields' texts are scanned joined into one text: the detectors cost a few microseconds
# per call whatever the length, and a body has dozens of short strings (keys, names, enum
# values). No pattern matches across the separator (a NUL between line breaks), and a
# finding that still crosses one is looked for again in its own field.
_SEPARATOR = "\n\x00\n"


def _joined(fields: list[TextField]) -> tuple[str, list[int]]:
    starts, position = [], 0
    for text_field in fields:
        starts.append(position)
        position += len(text_field.text) + len(_SEPARATOR)
    return _SEPARATOR.join(f.text for f in fields), starts


def _secret_findings(fields: list[TextField], policy: GuardrailPolicy) -> list[tuple[TextField, SecretFinding]]:
    # Binary payloads (base64) would all look random: the entropy detector skips them.
    entropy = policy.detect_high_entropy_secrets
    groups = [[f for f in fields if not f.binary], [f for f in fields if f.binary]] if entropy else [fields]
    located = []
    for index, group in enumerate(groups):
        text, starts = _joined(group)
        for finding in find_secrets(text, high_entropy=entropy and index == 0):
            text_field = group[bisect_right(starts, finding.start) - 1]
            located.append((text_field, finding))  # a key block may run on: its field is where it starts
    return located


def _pii_findings(fields: list[TextField], kinds: tuple[str, ...]) -> tuple[dict[int, list[PiiFinding]], str | None]:
    """Findings by field index, with the joined text they were found in (offsets are in it).

    When a finding crosses from one field into the next, or a field itself holds the
    separator, each field is scanned on its own instead: offsets are then the field's own,
    and the joined text is None.
    """
    if not fields:
        return {}, None
    text, starts = _joined(fields)
    by_field: dict[int, list[PiiFinding]] = {}
    for finding in find_pii(text, kinds):
        index = bisect_right(starts, finding.start) - 1
        if finding.end > starts[index] + len(fields[index].text):
            break
        by_field.setdefault(index, []).append(finding)
    else:
        if text.count(_SEPARATOR) == len(fields) - 1:
            return by_field, text
    by_field = {index: found for index, text_field in enumerate(fields) if (found := find_pii(text_field.text, kinds))}
    return by_field, None


def _note(found: dict[str, tuple[list[str], list[str], str]], rule: str, masked: str, name: str, action: str) -> None:
    entry = found.setdefault(rule, ([], [], action))
    entry[0].append(masked)
    entry[1].append(name)
