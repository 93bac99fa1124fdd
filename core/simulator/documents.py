"""Reading a document for a summary: its sentences, dates, names and open questions.

Deterministic and faithful by construction: every point is one of the document's own
sentences (shortened), every date and name is written in it, and a question is asked
only about something the document leaves open.
"""

from __future__ import annotations

import re
from functools import cached_property

from core.simulator.fields import redact
from core.simulator.understanding import without_injections

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Januar|Februar|März|Mai|Juni|Juli|Oktober|Dezember)"
)
_DATE = re.compile(
    rf"\b\d{{1,2}}\.? {_MONTH}(?: \d{{4}})?\b|\b{_MONTH} \d{{1,2}}(?:, \d{{4}})?\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b"
    r"|\b(?:Q[1-4]|H[12]) \d{4}\b"
)
# Capitalised words in a row, with initials ("S. Park") and company suffixes; not at a sentence start.
_NAME = re.compile(r"\b(?:[A-Z]\. ?)?[A-Z][a-zäöüé]+(?:[ -](?:[A-Z][a-zäöüé]+|GmbH|Ltd|Inc|AG|SA))*\b")
_OPEN = re.compile(
    r"postponed|no new date|to be confirmed|\btbd\b|\btbc\b|not (?:yet )?(?:decided|scheduled|set)", re.I
)
_ON_SIGNATURE = re.compile(r"\b(?:on|upon|from) signature\b", re.IGNORECASE)
_OWNER_ITEM = re.compile(r"(?P<item>[^;:().]+?)\s*\((?P<inside>[^)]*\bowner\b[^)]*)\)", re.IGNORECASE)
_SHORT_DOC_SENTENCES = 2
_MAX_POINTS = 5
_POINT_WORDS = 25


class Document:
    def __init__(self, user: str) -> None:
        body = user
        fenced = re.search(r"^-{3,}\s*$\n(?P<text>.*?)\n^-{3,}\s*$", user, re.MULTILINE | re.DOTALL)
        if fenced:
            body = fenced["text"]
        elif "---" in user:
            body = user.split("---", 1)[1]
        self.text = redact(without_injections(body)).strip()
        title = re.search(r"^(?:Document|Title):\s*(.+)$", user, re.MULTILINE)
        self.title = title.group(1).strip() if title else ""

    @cached_property
    def sentences(self) -> list[str]:
        # Not after an initial ("S. Park"); a numbered item ("1. Q4 revenue") starts a sentence.
        parts = re.split(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[A-Z\"'(])|\n+|(?<=[.:])\s+(?=\d{1,2}\. [A-Z])", self.text)
        return [p.strip(" -•*\t") for p in parts if len(p.strip(" -•*\t.")) > 2]

    def overview(self) -> str:
        if not self.sentences:
            return "There is no content to summarise: the document is empty, so there is nothing to report."
        lead = " ".join(self.sentences[:2]) if len(self.sentences[0].split()) < 8 else self.sentences[0]
        return _shorten(lead, 40)

    def points(self) -> list[str]:
        if not self.sentences:
            return []
        rest = self.sentences[1:] if len(self.sentences) > _SHORT_DOC_SENTENCES else self.sentences
        return [_shorten(s, _POINT_WORDS) for s in rest[:_MAX_POINTS]]

    def entities(self) -> list[str]:
        found: list[str] = []
        for match in _DATE.finditer(self.text):
            if match.group() not in found:
                found.append(match.group())
        for sentence in self.sentences:
            for match in _NAME.finditer(sentence):
                name = match.group()
                start = match.start()
                at_start = start == 0 or sentence[:start].rstrip().endswith((":", ".", "("))
                if (at_start and " " not in name and "." not in name) or _DATE.fullmatch(name):
                    continue
                if not any(name in f for f in found):
                    found.append(name)
        return found

    def questions(self) -> list[str]:
        asked: list[str] = []
        twice = self._date_given_twice()
        if twice:
            asked.append(twice)
        for sentence in self.sentences:
            if _OPEN.search(sentence):
                asked.append(f"What is the new date for this: {sentence.rstrip('.')}?")
            if _ON_SIGNATURE.search(sentence):
                asked.append("What is the effective date: when is the agreement signed (the signature date)?")
        for match in _OWNER_ITEM.finditer(self.text):
            if not re.search(r"\bdue\b|\bby\b|" + _DATE.pattern, match["inside"], re.IGNORECASE):
                item = match["item"].split(":")[-1].strip()
                asked.append(f"What is the due date for the {item} ({match['inside'].strip()})?")
        if not asked:
            asked.append(
                "Which dates or deadlines apply here?" if not _DATE.search(self.text) else "Who owns the next steps?"
            )
        if not self.sentences:
            return ["Could you share the document's text? It arrived empty."]
        return asked[:2]

    def _date_given_twice(self) -> str | None:
        dated = [(s, _DATE.findall(s)) for s in self.sentences]
        dated = [(s, d) for s, d in dated if d]
        for i, (first, first_dates) in enumerate(dated):
            for second, second_dates in dated[i + 1 :]:
                shared = _content_words(first) & _content_words(second)
                if shared and first_dates[0] != second_dates[-1]:
                    topic = sorted(shared, key=lambda w: first.lower().index(w))[0]
                    return (
                        f"The {topic} date is given as both {first_dates[0]} and {second_dates[-1]}: "
                        "which one is right?"
                    )
        return None


def _content_words(sentence: str) -> set[str]:
    without_dates = _DATE.sub(" ", sentence.lower())
    return {w for w in re.findall(r"[a-z]{4,}", without_dates) if w not in {"with", "from", "that", "this", "until"}}


def _shorten(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + "..."
