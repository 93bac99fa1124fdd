"""Find credentials in text before it leaves for the model.

Why not call detect-secrets (Yelp) directly: measured on a 2 KB chat prompt, its
``scan_line`` with default settings takes about 18 ms, and even calling the five
relevant plugins' ``analyze_string`` one by one takes about 120 us. On top of that, it
returns matched strings, not offsets, and its AWS plugin imports ``requests``. The
gateway's whole budget is under 2 ms per call, so the patterns below are taken from
those plugins (each one names the plugin it mirrors) and compiled into one
alternation that scans the text once. detect-secrets stays a development tool for
scanning the repository; it is not a runtime dependency.

A finding never holds the raw secret: only its kind, its offsets in the scanned text and
a masked form (a short known prefix and the last four characters). Anyone who needs
the secret itself must have the text already.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass


# One pattern per kind, each opening with a literal: the regex engine then jumps between
# occurrences of that literal instead of trying every position, which measured about 3 us
# per pattern on a 2 KB prompt. A leading lookbehind, a case-insensitive group or a
# leading character class each cost 10 to 30 times more, so the "not inside a longer
# token" test is done in Python on the rare match, and case-insensitive patterns run
# only when their lower-case literal occurs in the lower-cased text.
@dataclass(frozen=True, slots=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    gate: str | None = None  # lower-case literal that must occur before the pattern runs
    token_edge: str = ""  # characters that must not sit right before the match
    group: int = 0  # the group that holds the secret itself


_TOKEN_CHARS = string.ascii_letters + string.digits + "_-"

_DETECTORS = (
    # OpenAIDetector: sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}
    # ("T3BlbkFJ" is base64 for "OpenAI"). Widened to also take project, service-account
    # and admin keys by their prefix alone and the legacy 48-character form, and to cover
    # the whole token so that the mask shows its real end.
    _Detector(
        "openai_api_key",
        re.compile(
            r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"
            r"|[A-Za-z0-9_-]*T3BlbkFJ[A-Za-z0-9_-]{20,}"
            r"|[A-Za-z0-9]{48}(?![A-Za-z0-9_-]))"
        ),
        token_edge=_TOKEN_CHARS,
    ),
    # AWSKeyDetector, first pattern: access key ids.
    _Detector(
        "aws_access_key_id",
        re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
        token_edge="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    ),
    # AWSKeyDetector, second pattern: a 40-character secret a little after "aws...key".
    # detect-secrets wants it quoted; credentials files write it bare after "=", so a
    # quote, "=", ":" or whitespace may open it.
    _Detector(
        "aws_secret_access_key",
        re.compile(
            r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\"'=:\s]"
            r"([0-9a-zA-Z/+]{40})(?![0-9a-zA-Z/+=])",
            re.IGNORECASE,
        ),
        gate="aws",
        group=1,
    ),
    # GitHubTokenDetector: (ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}; plus fine-grained
    # "github_pat_" tokens (22 + 59 characters), which that plugin does not know yet.
    _Detector(
        "github_token",
        re.compile(r"gh[pousr]_[A-Za-z0-9_]{36}|github_pat_[A-Za-z0-9_]{60,}"),
        token_edge=_TOKEN_CHARS,
    ),
    # SlackDetector, first pattern: xox[abposr]-(\d+-)+[a-z0-9]+, ignoring case.
    _Detector(
        "slack_token",
        re.compile(r"xox[abposr]-(?:\d+-)+[a-z0-9]+", re.IGNORECASE),
        gate="xox",
    ),
    # SlackDetector, second pattern: incoming webhooks.
    _Detector(
        "slack_webhook",
        re.compile(
            r"https://hooks\.slack\.com/services/T[a-z0-9_]+/B[a-z0-9_]+/[a-z0-9_]+",
            re.IGNORECASE,
        ),
        gate="hooks.slack.com",
    ),
    # PrivateKeyDetector: its "BEGIN ... PRIVATE KEY" headers and the PuTTY marker.
    # find_secrets widens the span to the dashes before and the END line after.
    _Detector(
        "private_key",
        re.compile(r"BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?|PuTTY-User-Key-File-[23]:[^\n]*"),
    ),
)
_PRIVATE_KEY_END = re.compile(r"END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?(?: ?-{4,5})?")

# HighEntropyStringsPlugin (Base64HighEntropyString limit 4.5, HexHighEntropyString
# limit 3.0). detect-secrets only looks inside quotes; prose has no quotes around a
# pasted token, so we look at long runs instead and require letters and digits mixed.
_ENTROPY_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/=_-]{32,}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]+")
_BASE64_ENTROPY_LIMIT = 4.5
_HEX_ENTROPY_LIMIT = 3.0

# The prefix shown in a masked value: it tells a reader what leaked, not the secret.
_OPENAI_PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-")
_MASK_TAIL = 4


# The detector's kinds as a person reads them, with their article ("contains an OpenAI API key").
SECRET_KIND_NAMES = {
    "openai_api_key": "an OpenAI API key",
    "aws_access_key_id": "an AWS access key id",
    "aws_secret_access_key": "an AWS secret access key",
    "github_token": "a GitHub token",
    "slack_token": "a Slack token",
    "slack_webhook": "a Slack webhook URL",
    "private_key": "a private key",
    "high_entropy_string": "a random-looking token",
}


def secret_kind_name(kind: str) -> str:
    return SECRET_KIND_NAMES.get(kind, "a " + kind.replace("_", " "))


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A credential found in text: what kind, where, and a masked form safe to log."""

    kind: str
    start: int
    end: int
    masked: str

    @property
    def rule(self) -> str:
        return f"secret.{self.kind}"


def find_secrets(text: str, *, high_entropy: bool = False) -> list[SecretFinding]:
    """Every credential in ``text``, in order of position.

    ``high_entropy`` adds long random-looking tokens; it is off by default because
    hashes, ids and base64 payloads in ordinary prompts trip it.
    """
    findings = []
    lowered = None
    for detector in _DETECTORS:
        if detector.gate is not None:
            if lowered is None:
                lowered = text.lower()
            if detector.gate not in lowered:
                continue
        for match in detector.pattern.finditer(text):
            start, end = match.span(detector.group)
            if start and text[start - 1] in detector.token_edge:
                continue  # the tail of a longer word, such as "task-..."
            if detector.kind == "private_key":
                start, end = _private_key_block(text, start, end)
            masked = _mask(detector.kind, text[start:end])
            findings.append(SecretFinding(detector.kind, start, end, masked))
    findings.sort(key=lambda finding: finding.start)
    if high_entropy:
        taken = [(f.start, f.end) for f in findings]
        for match in _ENTROPY_CANDIDATE.finditer(text):
            start, end = match.span()
            if _is_high_entropy(match.group()) and not _overlaps(start, end, taken):
                findings.append(
                    SecretFinding("high_entropy_string", start, end, _mask("high_entropy_string", match.group()))
                )
        findings.sort(key=lambda finding: finding.start)
    return findings


def mask_secrets(text: str) -> str:
    """``text`` with every credential replaced by its masked form (safe to log or audit)."""
    for finding in reversed(find_secrets(text)):
        text = text[: finding.start] + finding.masked + text[finding.end :]
    return text


def _private_key_block(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a key header to the whole block: dashes before, the END line after."""
    while start and text[start - 1] in "- ":
        start -= 1
    footer = _PRIVATE_KEY_END.search(text, end)
    if footer is not None:
        return start, footer.end()
    while end < len(text) and text[end] in "- ":
        end += 1
    return start, end


def _mask(kind: str, value: str) -> str:
    if kind == "private_key":
        header = value.split("\n", 1)[0].strip("- ")
        return f"{header[:40]}…"
    if kind == "openai_api_key":
        prefix = next(p for p in _OPENAI_PREFIXES if value.startswith(p))
    elif kind == "github_token":
        prefix = value[: value.index("_") + 1]
        if value.startswith("github_pat_"):
            prefix = "github_pat_"
    elif kind == "slack_token":
        prefix = value[:5]
    elif kind == "slack_webhook":
        prefix = "https://hooks.slack.com/services/"
    elif kind == "aws_access_key_id":
        prefix = value[:4]
    else:
        prefix = ""
    # A short value would give too much away with its tail shown.
    tail = value[-_MASK_TAIL:] if len(value) - len(prefix) >= 3 * _MASK_TAIL else ""
    return f"{prefix}…{tail}"


def _is_high_entropy(token: str) -> bool:
    if not (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)):
        return False
    if _HEX_RUN.fullmatch(token):
        return _shannon_entropy(token) > _HEX_ENTROPY_LIMIT
    return _shannon_entropy(token) > _BASE64_ENTROPY_LIMIT


def _shannon_entropy(data: str) -> float:
    length = len(data)
    counts: dict[str, int] = {}
    for char in data:
        counts[char] = counts.get(char, 0) + 1
    return -sum(n / length * math.log2(n / length) for n in counts.values())


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end in spans)
