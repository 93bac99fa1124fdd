"""Input and output guardrails of the gateway: pure functions over text, messages and bodies.

Every model call passes through these before it reaches the model, so they are built
for the hot path: no I/O, no database, a 2 KB prompt scans in tens of microseconds. It imports only
the ground floor (the gateway's per-team policy table belongs to the gateway).
The gateway scans whole request bodies (``scan_body``, every string of every field);
every service that saves text people typed refuses a credential in it
(``refuse_secrets``), so that one detector decides both.
"""

from core.guardrails.body import BodyVerdict, scan_body
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
from core.guardrails.saved_text import SecretInText, refuse_secrets, refuse_secrets_in
from core.guardrails.secrets import SecretFinding, find_secrets, mask_secrets, secret_kind_name

__all__ = [
    "BodyVerdict",
    "SecretInText",
    "mask_secrets",
    "refuse_secrets",
    "refuse_secrets_in",
    "scan_body",
    "secret_kind_name",
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
