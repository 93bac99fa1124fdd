"""Input-aware values for schema fields, chosen by the field's name (see ``understanding``).

* Booleans named like needs_clarification / ambiguous / unclear take the vagueness
  reading; named like escalate / handoff / needs_human, the escalation reading.
* Strings: a clarifying question (or null) for fields named like clarifying_question;
  an imperative next step for recommended_action / next_step; an identifier written in
  the input (``C-10023``) for ``*_id``; a "Label: value" from the input when the field
  names the label ("Governing law: Scotland"); a date for ``*_date`` fields (ISO, from
  ISO or "1 June 2025" in the input; null when none is written); otherwise, for prose
  fields, the input's first concrete sentence, and for other nullable fields the
  sentence that mentions the field's word ("renewal" -> "...renewing for 12 months").
* Card-like numbers (13-19 digits) are never echoed back.
``None`` means "no rule applies": the generator then falls back to its seeded choice.
"""

from __future__ import annotations

import re

from core.simulator.understanding import Reading

NULL = object()  # a rule decided that the (nullable) field is null
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_ID = re.compile(r"\b[A-Z]{1,4}-\d{3,}\b")
_MONTHS = (
    "january february march april may june july august september october november december "
    "januar februar märz april mai juni juli august september oktober november dezember"
).split()
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b|\b(\d{1,2})\.? ([A-Za-zä]+) (\d{4})\b")
_ACTIONS = {
    "billing": "Open a billing ticket and review the charges",
    "technical": "Reproduce the problem and route it to engineering",
    "account": "Verify the customer's identity, then handle the account request",
    "shipping": "Check the order with the carrier and arrange a replacement or return if needed",
    "feedback": "Thank the customer and log the feedback for the product team",
}
_QUESTIONS = (
    "Could you tell us which product or feature is affected, and what happens when you try?",
    "Sorry for the trouble - what exactly is not working, and what did you expect to happen?",
)


def redact(text: str) -> str:
    return _CARD.sub("[card number removed]", text)


def concrete_sentence(reading: Reading, max_words: int = 30) -> str:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", reading.body) if len(s.split()) >= 2]
    first = sentences[0] if sentences else reading.body.strip()
    words = redact(first).split()
    return " ".join(words[:max_words])


def boolean_for(reading: Reading, name: str) -> bool | None:
    if re.search(r"clarif|ambigu|unclear|vague", name):
        return reading.vague
    if re.search(r"escalat|handoff|hand_off|human", name):
        return reading.escalate
    return None


def string_for(reading: Reading, name: str, nullable: bool) -> object:
    if re.search(r"clarif|question", name):
        if not reading.vague:
            return NULL if nullable else ""
        return reading.rng.choice(_QUESTIONS)
    if re.search(r"action|next_step|recommend", name):
        return _action(reading)
    if name == "id" or name.endswith("_id"):
        found = _ID.findall(reading.text)
        return found[0] if found else None
    labelled = _labelled(reading.text, name)
    if labelled:
        return labelled
    if "date" in name:
        date = _date_for(reading.text, name)
        return date if date else (NULL if nullable else None)
    if re.search(r"summary|reason|description|explanation|title|obligation", name):
        return concrete_sentence(reading, 18 if "title" in name else 40) or None
    if nullable:
        stem = name.split("_")[0][:5]
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", reading.body):
            if len(stem) >= 4 and stem in sentence.lower():
                return redact(sentence.strip())
        return NULL
    return None


def _action(reading: Reading) -> str:
    if reading.vague:
        return "Ask the customer for the missing details before routing the ticket"
    intent = next((str(v) for k, v in reading.decided.items() if k in ("intent", "category", "type")), "")
    urgent = any(str(v) in ("high", "urgent") for k, v in reading.decided.items() if k in ("urgency", "priority"))
    step = _ACTIONS.get(intent, "Review the ticket and route it to the right team")
    prefix = "Escalate to the on-call lead: " if urgent else ""
    return f"{prefix}{step} ({concrete_sentence(reading, 16)})"


def _labelled(text: str, name: str) -> str | None:
    """ "Governing law: Scotland" answers a field named governing_law (or law)."""
    label = name.replace("_", " ")
    for candidate in (label, label.split()[-1]):
        if len(candidate) < 3:
            continue
        match = re.search(rf"\b{re.escape(candidate)}s?\s*(?::|of)\s*(?:the\s+)?([^.;\n]+)", text, re.IGNORECASE)
        if match and not match.group(1).strip().lower().startswith(("the date", "signature")):
            return redact(match.group(1).strip())
    return None


def _date_for(text: str, name: str) -> str | None:
    dates = [_iso(m) for m in _DATE.finditer(text)]
    dates = [d for d in dates if d]
    if not dates:
        return None
    if re.search(r"expir|end|until|termination", name):
        return dates[1] if len(dates) > 1 else None
    return dates[0]


def _iso(match: re.Match[str]) -> str | None:
    if match.group(1):
        return str(match.group(1))
    day, month, year = match.group(2), match.group(3).lower(), match.group(4)
    if month not in _MONTHS:
        return None
    return f"{year}-{_MONTHS.index(month) % 12 + 1:02d}-{int(day):02d}"
