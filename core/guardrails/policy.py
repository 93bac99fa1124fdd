"""A team's guardrail policy, and applying it to a request's messages and a model answer.

Secrets always block: a credential sent to a third party has leaked, and no team may
opt out of that. Personal data is redacted, blocked or allowed per kind. Moderation is
only configured here; the gateway makes the moderation call itself.

An outcome never carries a raw secret or raw personal data in its findings: summaries
hold kinds, counts and masked values. A blocked outcome carries no messages at all, so
nothing downstream can send them by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from core.errors import ValidationError
from core.guardrails.pii import PII_KINDS, PiiFinding, PlaceholderBook, find_pii, replace_findings
from core.guardrails.secrets import SecretFinding, find_secrets

PiiAction = Literal["redact", "block", "allow"]
Decision = Literal["allow", "block", "flag"]
_PII_ACTIONS = ("redact", "block", "allow")
_MODERATION_MODES = ("off", "block", "hold")


@dataclass(frozen=True)
class GuardrailPolicy:
    """What a team's calls go through. The defaults are the strict ones.

    ``pii_action`` applies to every PII kind not named in ``pii_action_by_kind``.
    """

    pii_action: PiiAction = "redact"
    pii_action_by_kind: Mapping[str, PiiAction] = field(default_factory=dict)
    secrets_action: Literal["block"] = "block"
    moderation: Literal["off", "block", "hold"] = "block"
    detect_high_entropy_secrets: bool = False

    def __post_init__(self) -> None:
        if self.secrets_action != "block":  # pragma: allowlist secret
            raise ValidationError("Secrets are always blocked; secrets_action can only be 'block'.")
        if self.moderation not in _MODERATION_MODES:
            raise ValidationError(f"moderation must be one of {', '.join(_MODERATION_MODES)}, not {self.moderation!r}.")
        for kind, action in {"(all kinds)": self.pii_action, **self.pii_action_by_kind}.items():
            if action not in _PII_ACTIONS:
                raise ValidationError(
                    f"PII action for {kind} must be one of {', '.join(_PII_ACTIONS)}, not {action!r}."
                )
        unknown = sorted(set(self.pii_action_by_kind) - set(PII_KINDS))
        if unknown:
            raise ValidationError(f"Unknown PII kind(s) {', '.join(unknown)}; known kinds: {', '.join(PII_KINDS)}.")
        # Frozen means frozen: a caller keeping the dict it passed in cannot change us.
        object.__setattr__(self, "pii_action_by_kind", MappingProxyType(dict(self.pii_action_by_kind)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuardrailPolicy:
        """Read a stored policy: ``pii_action`` is one action, or a mapping of kind to
        action with an optional ``default`` entry."""
        values = dict(data)
        pii_action = values.pop("pii_action", "redact")
        if isinstance(pii_action, Mapping):
            by_kind = dict(pii_action)
            values["pii_action"] = by_kind.pop("default", "redact")
            values["pii_action_by_kind"] = by_kind
        else:
            values["pii_action"] = pii_action
        unknown = sorted(set(values) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise ValidationError(f"Unknown guardrail policy setting(s): {', '.join(unknown)}.")
        return cls(**values)

    def action_for(self, pii_kind: str) -> PiiAction:
        return self.pii_action_by_kind.get(pii_kind, self.pii_action)

    def kinds_with(self, action: PiiAction) -> tuple[str, ...]:
        return tuple(kind for kind in PII_KINDS if self.action_for(kind) == action)


@dataclass(frozen=True, slots=True)
class FindingSummary:
    """How often one rule fired in a request or answer, with masked values only."""

    rule: str  # "secret.openai_api_key", "pii.card", ...
    count: int
    masked: tuple[str, ...]
    action: str  # "block", "redact", "allow" or "flag"
    fields: tuple[str, ...] = ()  # where in a request body, when known ("tools[0].function.description")


@dataclass(frozen=True)
class GuardrailOutcome:
    """The verdict on a request or an answer.

    ``messages`` are the messages to send (redacted where the policy says), or None
    when blocked. They are left out of ``repr`` so that logging an outcome never logs
    a prompt.
    """

    decision: Decision
    rule: str | None  # the rule that decided a block or flag
    findings: tuple[FindingSummary, ...]
    messages: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def blocked(self) -> bool:
        return self.decision == "block"


def apply_input_guardrails(messages: list[dict[str, Any]], policy: GuardrailPolicy) -> GuardrailOutcome:
    """Check the texts of chat messages, and redact per ``policy``.

    The gateway scans whole request bodies with ``core.guardrails.body.scan_body``; this
    reads messages only.

    Texts are string ``content``, the text parts of list ``content`` (images and audio
    pass untouched) and the arguments of assistant tool calls. The input list and its
    dicts are not changed; changed messages are copies.
    """
    texts = list(_texts_of(messages))
    secrets = [
        finding for _, text in texts for finding in find_secrets(text, high_entropy=policy.detect_high_entropy_secrets)
    ]
    checked_kinds = tuple(kind for kind in PII_KINDS if policy.action_for(kind) != "allow")
    pii_by_text = [find_pii(text, checked_kinds) if checked_kinds else [] for _, text in texts]
    pii = [finding for found in pii_by_text for finding in found]
    summaries = _summarise(secrets, "block") + _summarise_pii(pii, policy)

    if secrets:
        return GuardrailOutcome("block", secrets[0].rule, summaries)
    blocking = [finding for finding in pii if policy.action_for(finding.kind) == "block"]
    if blocking:
        return GuardrailOutcome("block", blocking[0].rule, summaries)

    redact_kinds = policy.kinds_with("redact")
    if not any(finding.kind in redact_kinds for finding in pii):
        return GuardrailOutcome("allow", None, summaries, list(messages))
    book = PlaceholderBook()  # one per request: the same value, the same placeholder
    redacted = {}
    for (path, text), found in zip(texts, pii_by_text):
        to_replace = [finding for finding in found if finding.kind in redact_kinds]
        if to_replace:
            redacted[path] = replace_findings(text, to_replace, book=book).text
    return GuardrailOutcome("allow", None, summaries, _with_texts(messages, redacted))


def scan_output(text: str, policy: GuardrailPolicy) -> GuardrailOutcome:
    """Flag a model answer that holds a secret, or personal data the policy does not allow.

    The answer is not changed here: whether a flagged answer is held for review or
    returned is the gateway's decision.
    """
    secrets = find_secrets(text, high_entropy=policy.detect_high_entropy_secrets)
    checked_kinds = tuple(kind for kind in PII_KINDS if policy.action_for(kind) != "allow")
    pii = find_pii(text, checked_kinds)
    summaries = _summarise(secrets, "flag") + _summarise(pii, "flag")
    first = (secrets or pii or [None])[0]
    if first is None:
        return GuardrailOutcome("allow", None, summaries)
    return GuardrailOutcome("flag", first.rule, summaries)


# A text's place in the messages: (message index, part index or None, "content"/"arguments",
# tool call index or None).
_TextPath = tuple[int, int | None, str, int | None]


def _texts_of(messages: list[dict[str, Any]]) -> Iterable[tuple[_TextPath, str]]:
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            yield (index, None, "content", None), content
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    yield (index, part_index, "content", None), part["text"]
        calls = message.get("tool_calls")
        for call_index, call in enumerate(calls if isinstance(calls, list) else ()):
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                yield (index, None, "arguments", call_index), arguments


def _with_texts(messages: list[dict[str, Any]], texts: dict[_TextPath, str]) -> list[dict[str, Any]]:
    """Copies of the messages whose texts changed; the others are passed through."""
    result = list(messages)
    for (index, part_index, where, call_index), text in texts.items():
        message = result[index] = dict(result[index])
        if where == "arguments":
            assert call_index is not None  # an "arguments" path always names its tool call
            calls = message["tool_calls"] = list(message["tool_calls"])
            call = calls[call_index] = dict(calls[call_index])
            call["function"] = {**call["function"], "arguments": text}
        elif part_index is None:
            message["content"] = text
        else:
            parts = message["content"] = list(message["content"])
            parts[part_index] = {**parts[part_index], "text": text}
    return result


def _summarise(findings: list[SecretFinding] | list[PiiFinding], action: str) -> tuple[FindingSummary, ...]:
    by_rule: dict[str, list[str]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding.masked)
    return tuple(FindingSummary(rule, len(masked), tuple(masked), action) for rule, masked in by_rule.items())


def _summarise_pii(findings: list[PiiFinding], policy: GuardrailPolicy) -> tuple[FindingSummary, ...]:
    return tuple(
        FindingSummary(summary.rule, summary.count, summary.masked, policy.action_for(summary.rule[4:]))
        for summary in _summarise(findings, "")
    )
