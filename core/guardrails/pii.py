"""Find personal data in text and replace it with typed placeholders.

Kinds: ``email``, ``phone`` (E.164 with "+", North American with separators,
European national numbers with a trunk "0"), ``card`` (Luhn-checked), ``iban``
(length and mod-97 checked), ``ip`` (IPv4 and IPv6), ``us_ssn`` (US Social Security
number, 3-2-4 with separators, SSA invalid ranges excluded) and ``uk_nino`` (UK
National Insurance number). Other national ids are not detected.

Placeholders are numbered per kind in order of appearance, and one value keeps one
placeholder for the whole call, so "[EMAIL_1] wrote to [EMAIL_2], then [EMAIL_1]
replied" still reads right to the model. Findings carry a masked form only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import ValidationError
from core.guardrails.pii_detectors import FINDERS, numeric_runs

PII_KINDS = tuple(FINDERS)
_SPECIFICITY = {kind: rank for rank, kind in enumerate(PII_KINDS)}
_PLACEHOLDER_LABELS = {
    "card": "CARD",
    "iban": "IBAN",
    "us_ssn": "US_SSN",
    "uk_nino": "UK_NINO",
    "email": "EMAIL",
    "ip": "IP",
    "phone": "PHONE",
}


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """Personal data found in text: its kind, where, a masked form, its placeholder."""

    kind: str
    start: int
    end: int
    masked: str
    placeholder: str | None = None

    @property
    def rule(self) -> str:
        return f"pii.{self.kind}"


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    findings: tuple[PiiFinding, ...]


class PlaceholderBook:
    """Which placeholder each value got, shared by all texts of one call.

    Values are kept as salted hashes, not as text, so that the book itself holds no
    personal data a log line or a debugger could show.
    """

    __slots__ = ("_salt", "_by_value", "_counts")

    def __init__(self) -> None:
        self._salt = os.urandom(16)
        self._by_value: dict[bytes, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder_for(self, kind: str, value: str) -> str:
        key = hashlib.blake2b(f"{kind}\x00{_normalise(kind, value)}".encode(), key=self._salt, digest_size=16).digest()
        placeholder = self._by_value.get(key)
        if placeholder is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"[{_PLACEHOLDER_LABELS[kind]}_{self._counts[kind]}]"
            self._by_value[key] = placeholder
        return placeholder

    def __repr__(self) -> str:
        return f"PlaceholderBook(counts={self._counts!r})"


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PiiFinding]:
    """Personal data in ``text`` (all kinds, or those named), in order, without overlaps.

    Where two candidates overlap, the longer wins; on equal length the more specific
    kind (the order of ``PII_KINDS``) wins, then the earlier one.
    """
    wanted = _check_kinds(kinds)
    runs = numeric_runs(text)
    candidates = [(start, end, kind) for kind in wanted for start, end in FINDERS[kind](text, runs)]
    if not candidates:
        return []
    candidates.sort(key=lambda c: (c[0] - c[1], _SPECIFICITY[c[2]], c[0]))
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in candidates:
        if all(end <= other_start or other_end <= start for other_start, other_end, _ in kept):
            kept.append((start, end, kind))
    kept.sort()
    return [PiiFinding(kind, start, end, _mask(kind, text[start:end])) for start, end, kind in kept]


def redact(text: str, kinds: Iterable[str] | None = None, *, book: PlaceholderBook | None = None) -> RedactionResult:
    """``text`` with each finding replaced by its placeholder, and the findings.

    Pass one ``book`` to every text of a call (all messages of a request) so the same
    value gets the same placeholder everywhere in it.
    """
    return replace_findings(text, find_pii(text, kinds), book=book)


def replace_findings(
    text: str, findings: Iterable[PiiFinding], *, book: PlaceholderBook | None = None
) -> RedactionResult:
    """``redact`` for findings already in hand (from ``find_pii`` on this same text)."""
    book = book if book is not None else PlaceholderBook()
    findings = sorted(findings, key=lambda finding: finding.start)
    if not findings:
        return RedactionResult(text, ())
    pieces, position, placed = [], 0, []
    for finding in findings:
        placeholder = book.placeholder_for(finding.kind, text[finding.start : finding.end])
        pieces += [text[position : finding.start], placeholder]
        position = finding.end
        placed.append(PiiFinding(finding.kind, finding.start, finding.end, finding.masked, placeholder))
    pieces.append(text[position:])
    return RedactionResult("".join(pieces), tuple(placed))


def _check_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return PII_KINDS
    wanted = tuple(kinds)
    unknown = sorted(set(wanted) - set(PII_KINDS))
    if unknown:
        raise ValidationError(f"Unknown PII kind(s) {', '.join(unknown)}; known kinds: {', '.join(PII_KINDS)}.")
    return wanted


def _normalise(kind: str, value: str) -> str:
    """One spelling per value, so "4111 1111..." and "4111-1111..." share a placeholder."""
    if kind in ("card", "phone", "us_ssn"):
        return "".join(char for char in value if char.isdigit())
    if kind in ("iban", "uk_nino"):
        return "".join(char for char in value if char.isalnum()).upper()
    if kind == "ip":
        return ipaddress.ip_address(value).compressed
    return value.lower()


def _mask(kind: str, value: str) -> str:
    """Enough to recognise the finding in a review, not enough to use it."""
    if kind == "email":
        local, _, domain = value.rpartition("@")
        return f"{local[0]}…@{domain}"
    if kind == "ip":
        separator = ":" if ":" in value else "."
        return f"{value.split(separator, 1)[0]}{separator}…"
    compact = "".join(char for char in value if char.isalnum())
    if kind == "iban":
        return f"{compact[:2]}…{compact[-4:]}"
    if kind in ("us_ssn", "uk_nino"):
        return f"…{compact[-2:]}"
    return f"…{compact[-4:]}"
