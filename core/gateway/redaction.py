"""What the gateway shows of guardrail findings, and how it redacts what it stores or returns.

Findings are summarized with masked values only; text is redacted before it is stored
(secrets masked, personal data the team's policy does not allow replaced by placeholders).
"""

from __future__ import annotations

from typing import Any

from core.guardrails import BodyVerdict, GuardrailOutcome, GuardrailPolicy
from core.guardrails.pii import find_pii, replace_findings
from core.guardrails.secrets import find_secrets


def message_texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and p.get("text")]
    return []


def finding_summary(finding) -> dict[str, Any]:
    summary = {"rule": finding.rule, "count": finding.count, "masked": list(finding.masked), "action": finding.action}
    if finding.fields:
        summary["fields"] = list(finding.fields)
    return summary


def outcome_findings(outcome: GuardrailOutcome | BodyVerdict) -> list[dict[str, Any]]:
    return [finding_summary(f) for f in outcome.findings]


def blocked_reason(rule: str | None) -> str:
    if rule and rule.startswith("secret."):
        return "a credential (" + rule[7:].replace("_", " ") + ")"
    if rule and rule.startswith("pii."):
        return "personal data (" + rule[4:].replace("_", " ") + ") that this team's policy blocks"
    return "content the policy blocks"


def redact_text(text: str, policy: GuardrailPolicy) -> str:
    """Secrets masked, and personal data the policy does not allow replaced by placeholders."""
    if not text:
        return text
    secrets = find_secrets(text, high_entropy=policy.detect_high_entropy_secrets)
    for finding in sorted(secrets, key=lambda f: f.start, reverse=True):
        text = text[: finding.start] + f"[{finding.rule}]" + text[finding.end :]
    kinds = tuple(k for k in policy.kinds_with("redact") + policy.kinds_with("block"))
    return replace_findings(text, find_pii(text, kinds)).text if kinds else text


def redacted_response(response: dict[str, Any], policy: GuardrailPolicy) -> dict[str, Any]:
    choices = []
    for choice in response.get("choices") or []:
        message = dict(choice.get("message") or {})
        if isinstance(message.get("content"), str):
            message["content"] = redact_text(message["content"], policy)
        choices.append({**choice, "message": message})
    return {**response, "choices": choices}
