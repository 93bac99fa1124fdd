"""Extracting a contract's terms the way a careful extraction prompt asks: only what is written.

Used for a JSON schema with ``parties``, ``obligations`` and ``needs_human_review`` (see
``structured``). From the text between ``<contract>`` tags, with injected instructions
left out: the parties ("between A and B", "A (Role)"), ISO dates after "effective" /
"from" / "dated" (start) and "expires" / "ends" / "to" (end), the renewal and notice
clauses as written, the governing law, and one obligation per "shall" sentence (its
party, clause number, and due date: ISO when written as a date, quoted when relative).
Anything uncertain is not guessed but listed for review: relative or ambiguous dates,
placeholders, blank signature blocks, OCR noise, a term that contradicts an end date,
an empty contract.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from core.simulator.understanding import without_injections

_ISO = r"\d{4}-\d{2}-\d{2}"
_MONTHS = (
    "january february march april may june july august september october november december "
    "januar februar märz april mai juni juli august september oktober november dezember"
).split()
_LONG_DATE = r"\d{1,2}\.? [A-Za-zä]+ \d{4}"
_ANY_DATE = rf"(?:{_ISO}|{_LONG_DATE})"
_START = re.compile(rf"(?:effective(?: date)?:?|from|dated|gültig ab|commencing(?: on)?)\s+({_ANY_DATE})", re.I)
_END = re.compile(rf"(?:expires on|ends on|until|to|end date:?)\s+({_ANY_DATE})", re.IGNORECASE)
_AMBIGUOUS = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_COMPANY = r"(?:\[[A-Z ]+\]|[A-Z][\w&'.-]*(?: (?:[A-Z0-9][\w&'.-]*|plc|und|and))*?)"
_PARTY_LIST = re.compile(r"\b(?:between|made by|zwischen)\s+(?P<list>[^.]+?)(?:\.(?:\s|$)|, effective|$)", re.I)
_NAMED_ROLE = re.compile(r"\b[A-Z]\w+(?: [A-Z]\w+)* (?:Ltd|GmbH|AG|Inc|LLC|plc|SA|Corp)\b(?: \([A-Z][\w -]+\))?")
_ROLE = re.compile(r"^(?P<name>.+?)\s*\((?P<role>[^)]+)\)")
_LAW = re.compile(
    r"(?:governed by the laws? of|laws? of|governing law:?)\s+(?:the\s+)?(?P<law>[A-Z][\w ]+?)(?:[.;,]|$)", re.I
)
_GERMAN_LAW = re.compile(r"\b(deutsches|deutschem) Recht\b", re.IGNORECASE)
_OBLIGATION = re.compile(r"\b(?:shall|must|agrees to|will)\b", re.IGNORECASE)
_CLAUSE_NO = re.compile(r"^(?:clause\s+)?(\d+(?:\.\d+)*)[.:)]?\s+", re.IGNORECASE)
_RELATIVE = re.compile(r"\bwithin \d+ (?:business )?days?(?: (?:after|of|from) [\w ]+?)?(?=[.;,]|$)", re.I)
_BY_DATE = re.compile(rf"\bby ({_ANY_DATE})")
_NOTICE = re.compile(r"\b(\d+ days'?)\s+(?:prior\s+)?(?:written\s+)?notice", re.IGNORECASE)
_RENEWAL = re.compile(r"[^.,;]*\brenew[^.;]*", re.IGNORECASE)
_TERM = re.compile(rf"term is (\d+) months from ({_ISO})", re.IGNORECASE)
_NOISY_WORD = re.compile(
    r"\b(?=[\w,]*[A-Za-z])(?=[\w,]*\d)[A-Za-z]+\d[\w,]*|\b\d[\d,]*[OoIl][\w,]*\b|\b[A-Za-z]+\d+[a-z]+\b"
)


def extract(contract_input: str, our_entity: str) -> dict[str, Any]:
    """The contract_extraction object for the text of the user's message."""
    match = re.search(r"<contract>(.*?)</contract>", contract_input, re.DOTALL)
    text = " ".join(without_injections(match.group(1) if match else contract_input).split())
    if not text:
        return _empty("No contract text was provided: the contract is empty, so nothing could be extracted.")
    review: list[str] = []
    parties = _parties(text, review)
    start, end = _date(_START, text), _date(_END, text)
    for found in _AMBIGUOUS.finditer(text):
        review.append(
            f"The date {found.group()} is ambiguous (day/month or month/day); confirm it rather than choosing one."
        )
    if re.search(r"signature blocks? (?:are |is )?blank|\[signature blocks? blank\]", text, re.IGNORECASE):
        review.append("The signature blocks are blank: the agreement does not show who signed it or when.")
    if re.search(r"date of (?:the )?(?:last )?signature", text, re.IGNORECASE) and start is None:
        review.append("The effective date depends on a signature date that is not written in the contract.")
    noisy = sorted(set(_NOISY_WORD.findall(text)))
    if noisy:
        review.append(
            f"Possible OCR errors ({', '.join(noisy)}): check the party names and the rent amount against the original."
        )
    term = _TERM.search(text)
    if term and end:
        ends = _add_months(date.fromisoformat(term.group(2)), int(term.group(1)))
        if ends.isoformat() != end:
            clauses = re.findall(r"Clause (\d+)", text)
            which = f"clause {clauses[0]} and clause {clauses[1]}" if len(clauses) >= 2 else "two clauses"
            review.append(
                f"Conflict between {which}: a {term.group(1)}-month term from {term.group(2)} ends before {end}."
            )
    obligations = [_obligation(s, our_entity, review) for s in _sentences(text) if _OBLIGATION.search(s)]
    law = _LAW.search(text)
    notice = _NOTICE.search(text)
    renewal = _RENEWAL.search(text)
    return {
        "parties": parties,
        "effective_date": start,
        "expiry_date": end,
        "renewal": renewal.group().strip() if renewal else None,
        "termination_notice": f"{notice.group(1)} written notice" if notice else None,
        "governing_law": law["law"].strip() if law else ("German law" if _GERMAN_LAW.search(text) else None),
        "obligations": obligations,
        "needs_human_review": review,
    }


def _empty(reason: str) -> dict[str, Any]:
    return {
        "parties": [],
        "effective_date": None,
        "expiry_date": None,
        "renewal": None,
        "termination_notice": None,
        "governing_law": None,
        "obligations": [],
        "needs_human_review": [reason],
    }


def _parties(text: str, review: list[str]) -> list[dict[str, str]]:
    found = _PARTY_LIST.search(text)
    names: list[str] = []
    if found:
        names = [n.strip() for n in re.split(r",\s*|\s+(?:and|und)\s+", found["list"]) if n.strip()]
    else:
        names = [m.group(0) for m in _NAMED_ROLE.finditer(text)]
    parties: list[dict[str, str]] = []
    for raw in names:
        role_match = _ROLE.match(raw)
        name, role = (role_match["name"], role_match["role"]) if role_match else (raw, "party")
        if role.startswith(('"', "“")):
            role = "party"
        name = re.sub(r"\s*\(.*$", "", name).strip(" \"'")
        if not name or any(p["name"] == name for p in parties):
            continue
        if name.startswith("["):
            review.append(f"The counterparty name is a placeholder ({name}), not a real name.")
        parties.append({"name": name, "role": role.strip().lower()})
    return parties


def _obligation(sentence: str, our_entity: str, review: list[str]) -> dict[str, Any]:
    clause_match = _CLAUSE_NO.match(sentence)
    clause = clause_match.group(1) if clause_match else None
    body = sentence[clause_match.end() :] if clause_match else sentence
    subject = re.split(_OBLIGATION, body, maxsplit=1)[0].strip()
    subject = re.sub(r"^(?:Supplier|Customer|Vendor|the)\s+(?=[A-Z])", "", subject).strip() or "unstated"
    first = our_entity.split()[0] if our_entity else ""
    if first and subject.split()[0:1] == [first]:
        subject = our_entity
    due: str | None = None
    relative = _RELATIVE.search(body)
    by_date = _BY_DATE.search(body)
    if by_date:
        due = _iso(by_date.group(1))
    elif relative:
        due = relative.group().strip()
        review.append(f"The due date of '{body.rstrip('.')}' is relative ({due}); confirm the actual date.")
    return {"party": subject, "obligation": body.rstrip(), "due": due, "clause": clause}


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+(?=(?:\d+(?:\.\d+)*\.?\s)?[A-Z])", text)
    return [p.strip() for p in parts if p.strip()]


def _date(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return _iso(match.group(1)) if match else None


def _iso(text: str) -> str | None:
    if re.fullmatch(_ISO, text):
        return text
    parts = re.match(r"(\d{1,2})\.? ([A-Za-zä]+) (\d{4})", text)
    if not parts or parts.group(2).lower() not in _MONTHS:
        return None
    month = _MONTHS.index(parts.group(2).lower()) % 12 + 1
    return f"{parts.group(3)}-{month:02d}-{int(parts.group(1)):02d}"


def _add_months(start: date, months: int) -> date:
    """The last day of a term of ``months`` starting on ``start``."""
    month_index = start.month - 1 + months
    following = date(start.year + month_index // 12, month_index % 12 + 1, start.day)
    return date.fromordinal(following.toordinal() - 1)
