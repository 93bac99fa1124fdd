"""Checks that tell a real identifier from a number that merely looks like one.

The PII patterns find candidates by shape; these decide. Keeping them apart lets the
patterns stay loose enough to be fast while the decision stays strict.
"""

from __future__ import annotations

# IBAN length by country (ISO 13616 registry), for the countries our users bank in:
# the EU/EEA, the UK, Switzerland and a few common trading partners. An IBAN from a
# country missing here is not recognised; add it with its registry length.
IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
    "UA": 29,
}

# Social Security numbers the SSA says were never issued or were published in
# advertising and so are known not to belong to anyone.
_PUBLISHED_SSNS = frozenset({"078051120", "219099999", "457555462"})

# HMRC: these two-letter prefixes are never issued.
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_prefix_plausible(digits: str) -> bool:
    """Whether the number starts the way an issued card does.

    Networks issue from 3 (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard, Maestro) and
    6 (Discover, UnionPay, Maestro); from 2 only Mastercard's 2221-2720. Refusing
    anything else also keeps runs of years ("2023 2024 2025 2026") out.
    """
    first = digits[0]
    if first in "3456":
        return True
    return first == "2" and 2221 <= int(digits[:4]) <= 2720


def iban_valid(compact: str) -> bool:
    """Country length and the ISO 7064 mod-97 check of an IBAN without spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters count as 10..35; int() of the joined string does the big-number maths.
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def us_ssn_valid(digits: str) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9":
        return False
    if group == "00" or serial == "0000":
        return False
    return digits not in _PUBLISHED_SSNS


def uk_nino_prefix_valid(prefix: str) -> bool:
    return prefix not in _NINO_BAD_PREFIXES
