"""Input and output guardrails of the gateway: pure functions over text and messages.

Every model call passes through these before it reaches the model, so they are built
for the hot path: no I/O, no database, a 2 KB prompt scans in tens of microseconds.
"""

from core.guardrails.pii import (
    PII_KINDS,
    PiiFinding,
    PlaceholderBook,
    RedactionResult,
    find_pii,
    redact,
    replace_findings,
)
from core.guardrails.policy import (
    FindingSummary,
    GuardrailOutcome,
    GuardrailPolicy,
    apply_input_guardrails,
    scan_output,
)
from core.guardrails.secrets import SecretFinding, find_secrets

__all__ = [
    "PII_KINDS",
    "FindingSummary",
    "GuardrailOutcome",
    "GuardrailPolicy",
    "PiiFinding",
    "PlaceholderBook",
    "RedactionResult",
    "SecretFinding",
    "apply_input_guardrails",
    "find_pii",
    "find_secrets",
    "redact",
    "replace_findings",
    "scan_output",
]
