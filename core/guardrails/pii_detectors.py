"""One finder per PII kind: a strict pattern run only where it can match, then checks.

Speed: Python's regex engine walks a pattern that opens with a character class (such
as a digit) through every position of the text, 25 to 60 us per pattern on a 2 KB
prompt; seven kinds with a few patterns each came to almost 600 us. A pattern that
opens with a literal is found by a fast substring search instead (2 to 3 us). So
``numeric_runs`` maps the text to one byte per character class (every digit becomes
"0", every capital "A"; ``bytes.translate`` takes about 2 us) and finds, with
literal-led patterns, only the runs that can matter: those long enough to hold a
phone, card, SSN or IPv4 address, and those right after capitals (IBAN, UK NINO).
The strict per-kind patterns then run inside those runs only; in prose most numbers
are a year, a price or a count and never get that far. E-mail and IPv6 search for
their literal "@" and ":".

Every finder takes the text and the runs and returns ``(start, end)`` spans. The "not
in the middle of a longer number or word" test is done in Python on the few candidates,
because a leading lookbehind also stops the engine from skipping ahead. Every finder
leans towards missing an odd format rather than flagging years, prices, dates and
order numbers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from core.guardrails.checksums import (
    IBAN_LENGTHS,
    card_prefix_plausible,
    iban_valid,
    luhn_valid,
    uk_nino_prefix_valid,
    us_ssn_valid,
)

Span = tuple[int, int]

# Character classes: digit "0", separator numbers are written with "s", capital "A",
# anything else ".". "," is not a separator, so "$1,299.00" never forms one long run.
_CLASS_TABLE = bytes(
    ord("0")
    if chr(code).isdigit() and code < 128
    else ord("s")
    if chr(code) in " ().+/-"
    else ord("A")
    if "A" <= chr(code) <= "Z"
    else ord(".")
    for code in range(256)
)
# Seven characters at least ("1.1.1.1"; phones, cards and SSNs are longer), from a
# digit to a digit.
_LONG_RUN = re.compile(rb"0[0s]{5,}0")
_RUN_AFTER_CAPITALS = re.compile(rb"AAs?0")

_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b", re.ASCII)
# The local part right before "@"; it may not start with "." or "-" ("see:.x@y" is "x@y").
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9_%+][A-Za-z0-9._%+-]{0,63}$", re.ASCII)

# International: "+" and a country code, then digits with single spaces, dots, dashes
# or brackets; E.164 allows 8 to 15 digits in all, checked afterwards.
_PHONE_INTERNATIONAL = re.compile(r"\+[1-9](?:[ .-]?\(?\d\)?){6,18}(?!\d)", re.ASCII)
# North American: separators required, so a bare ten-digit order number is not a phone;
# area code and exchange both start 2-9 as the numbering plan says.
_PHONE_NANP = re.compile(r"\([2-9]\d\d\) ?[2-9]\d\d[ .-]\d{4}(?!\d)|[2-9]\d\d([ .-])[2-9]\d\d\1\d{4}(?!\d)", re.ASCII)
# European national form: trunk "0", then groups split by one kind of separator,
# 10 or 11 digits in all (so "01-02-2024" and other dates fall short).
_PHONE_TRUNK = re.compile(r"0\d{1,4}([ -])\d{2,4}(?:\1\d{2,4}){0,3}(?!\d)", re.ASCII)
# 4-4-4-4(-1..3), 4-6-5 / 4-6-4 (Amex, Diners), or 13-19 digits in one run.
_CARD = re.compile(
    r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?(?!\d)"
    r"|\d{4}([ -]?)\d{6}\2\d{4,5}(?!\d)"
    r"|\d{13,19}(?!\d)",
    re.ASCII,
)
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\.?\d)", re.ASCII)
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:")
# US SSN: 3-2-4 with dashes or spaces, the same one twice. Nine bare digits are not
# taken: too many order and account numbers look like that.
_US_SSN = re.compile(r"\d{3}([- ])\d{2}\1\d{4}(?!\d)", re.ASCII)
# UK National Insurance number: two letters from HMRC's allowed sets, six digits, A-D.
_UK_NINO = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])", re.ASCII)


@dataclass(frozen=True, slots=True)
class NumericRuns:
    """Where numbers sit in a text, found once and shared by all finders."""

    long: list[Span]  # long enough to hold a phone, card, SSN or IPv4 address
    after_capitals: list[int]  # run starts with capitals just before: IBAN, UK NINO


def numeric_runs(text: str) -> NumericRuns:
    # latin-1 with "replace" keeps one byte per character, so offsets stay the same.
    classes = text.encode("latin-1", "replace").translate(_CLASS_TABLE)
    long = []
    for match in _LONG_RUN.finditer(classes):
        start, end = match.span()
        if start and text[start - 1] in "+(":
            start -= 1
        long.append((start, end))
    after_capitals = [match.end() - 1 for match in _RUN_AFTER_CAPITALS.finditer(classes)]
    return NumericRuns(long, after_capitals)


def _digits(value: str) -> str:
    return "".join(char for char in value if char.isdigit())


def _starts_clean(text: str, start: int, forbidden: str) -> bool:
    """True when the character before ``start`` does not glue the match to more."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in forbidden)


def _matches_in_runs(
    pattern: re.Pattern[str], text: str, runs: NumericRuns, min_length: int, needs: str = "", needs_count: int = 1
) -> Iterator[re.Match[str]]:
    """Matches inside the runs that can hold one: at least ``min_length`` characters and
    ``needs_count`` of ``needs``. Each skipped run saves a regex call; in prose almost
    every run is skipped here."""
    for start, end in runs.long:
        if end - start >= min_length and (not needs or text.count(needs, start, end) >= needs_count):
            yield from pattern.finditer(text, start, end)


def find_emails(text: str, runs: NumericRuns) -> list[Span]:
    if "@" not in text:
        return []
    spans = []
    for match in _EMAIL_DOMAIN.finditer(text):
        at = match.start()
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
        if local is not None:
            spans.append((local.start(), match.end()))
    return spans


def find_phones(text: str, runs: NumericRuns) -> list[Span]:
    spans = []
    for match in _matches_in_runs(_PHONE_INTERNATIONAL, text, runs, 9, "+"):
        value = match.group()
        if (
            8 <= len(_digits(value)) <= 15
            and value.count("(") == value.count(")")
            and _starts_clean(text, match.start(), "+")
        ):
            spans.append(match.span())
    for match in _matches_in_runs(_PHONE_NANP, text, runs, 12):
        if _starts_clean(text, match.start(), "+-.#$€£/"):
            spans.append(match.span())
    for match in _matches_in_runs(_PHONE_TRUNK, text, runs, 11):
        if 10 <= len(_digits(match.group())) <= 11 and _starts_clean(text, match.start(), "+-.#$€£/"):
            spans.append(match.span())
    return spans


def find_cards(text: str, runs: NumericRuns) -> list[Span]:
    spans = []
    for match in _matches_in_runs(_CARD, text, runs, 13):
        digits = _digits(match.group())
        if _starts_clean(text, match.start(), "-.#$€£/,") and card_prefix_plausible(digits) and luhn_valid(digits):
            spans.append(match.span())
    return spans


def _after_two_capitals(text: str, start: int) -> int | None:
    """Where "GB" of "GB82..." or "AB" of "AB 12 34..." starts, if the run follows one."""
    for letters_at in (start - 2, start - 3):
        if letters_at < 0:
            return None
        letters = text[letters_at : letters_at + 2]
        gap = text[letters_at + 2 : start]
        if letters.isascii() and letters.isalpha() and letters.isupper() and gap in ("", " "):
            return letters_at
    return None


def find_ibans(text: str, runs: NumericRuns) -> list[Span]:
    spans: list[Span] = []
    for run_start in runs.after_capitals:
        start = _after_two_capitals(text, run_start)
        if start is None or (spans and start < spans[-1][1]) or text[start + 2 : run_start] == " ":
            continue
        span = _iban_at(text, start)
        if span is not None:
            spans.append(span)
    return spans


def _iban_at(text: str, start: int) -> Span | None:
    """The IBAN starting at ``start``: as many characters as its country's length."""
    length = IBAN_LENGTHS.get(text[start : start + 2])
    if length is None or not _starts_clean(text, start, ""):
        return None
    compact: list[str] = []
    end = start
    while len(compact) < length and end < len(text):
        char = text[end]
        if char.isascii() and char.isalnum():
            compact.append(char)
        elif char != " " or text[end - 1] == " ":
            break
        end += 1
    if len(compact) != length or (end < len(text) and text[end].isalnum()):
        return None
    return (start, end) if iban_valid("".join(compact).upper()) else None


def find_ip_addresses(text: str, runs: NumericRuns) -> list[Span]:
    spans = []
    for match in _matches_in_runs(_IPV4, text, runs, 7, ".", 3):
        octets = match.group().split(".")
        if _starts_clean(text, match.start(), ".") and all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in octets):
            spans.append(match.span())
    if ":" in text:
        spans.extend(_find_ipv6(text))
    return spans


def _find_ipv6(text: str) -> list[Span]:
    spans = []
    position = 0
    while (match := _IPV6_SEED.search(text, position)) is not None:
        start, end = match.start(), match.end()
        while start and text[start - 1] in _IPV6_CHARS:
            start -= 1
        while end < len(text) and (text[end] in _IPV6_CHARS or text[end] == "."):
            end += 1
        while end > start and text[end - 1] in ".:" and text[end - 2 : end] != "::":
            end -= 1  # sentence punctuation after the address
        if _plausible_ipv6(text[start:end]) and _starts_clean(text, start, "_"):
            spans.append((start, end))
        position = max(end, match.start() + 1)
    return spans


def _plausible_ipv6(candidate: str) -> bool:
    # At least two written groups and a digit, so "a::b", "::" and "::1" in code or
    # prose are left alone; a time such as 12:30:45 fails the parser.
    groups = [group for group in candidate.split(":") if group]
    if len(groups) < 2 or not any(char.isdigit() for char in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def find_us_ssns(text: str, runs: NumericRuns) -> list[Span]:
    spans = []
    for match in _matches_in_runs(_US_SSN, text, runs, 11):
        if _starts_clean(text, match.start(), "-.#$/") and us_ssn_valid(_digits(match.group())):
            spans.append(match.span())
    return spans


def find_uk_ninos(text: str, runs: NumericRuns) -> list[Span]:
    spans = []
    for run_start in runs.after_capitals:
        start = _after_two_capitals(text, run_start)
        if start is None:
            continue
        match = _UK_NINO.match(text, start)
        if match and _starts_clean(text, start, "") and uk_nino_prefix_valid(match.group()[:2]):
            spans.append(match.span())
    return spans


# Listed from most to least specific: on a tie in length the earlier kind wins.
FINDERS: dict[str, Callable[[str, NumericRuns], list[Span]]] = {
    "card": find_cards,
    "iban": find_ibans,
    "us_ssn": find_us_ssns,
    "uk_nino": find_uk_ninos,
    "email": find_emails,
    "ip": find_ip_addresses,
    "phone": find_phones,
}
