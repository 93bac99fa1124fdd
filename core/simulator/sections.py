"""Answers in the labelled sections a system prompt asks for.

A system prompt that says "Answer in exactly this format" / "Structure the answer as:"
and then lists labelled lines ("TL;DR: one or two sentences.", "Key points:", "Watch
out: risks, or "none found".") gets an answer with exactly those labels, in that order.
What goes under each label depends on the label's words:

* an overview (TL;DR, summary, "what it does"): the gist of the input;
* points or steps ("key points", "step by step"): the input's own sentences, 3 to 5 of
  them (fewer when the input is short), as bullets or a numbered list;
* dates and names: every date and name written in the input, or "none";
* questions ("follow-up questions"): what the input leaves open - a postponed item, a
  date given twice, an owner without a due date, a start "on signature";
* risks ("watch out"): the risks the input shows, or "none found".

SQL input (a fenced ``sql`` block) is read by ``sql_reading`` instead, whose overview,
steps and risks follow the query; each risk is noticed with the model's skill
(``Reading.follows``), so a smaller model misses one now and then. The sections list ends at a blank line, or at a label
that introduces data ("Table notes:" followed by "- " lines).
"""

from __future__ import annotations

import re

from core.simulator.documents import Document
from core.simulator.sql_reading import Query, sql_block
from core.simulator.understanding import Reading

_INTRO = re.compile(r"\b(format|structure)\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?P<label>[A-Z][\w;/'’ -]{1,30}?):(?P<rest>.*)$")
_MAX_SECTIONS = 6


def section_labels(system: str) -> list[str]:
    """The labels of the sections the system prompt asks for, in order (empty: none asked)."""
    lines = system.splitlines()
    start = next((i for i, line in enumerate(lines) if _INTRO.search(line)), None)
    if start is None:
        return []
    labels: list[str] = []
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            break
        match = _LABEL.match(line)
        if not match or len(match["label"].split()) > 4:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if not match["rest"].strip() and following.lstrip().startswith("- "):
            break  # a data list such as "Table notes:", not an answer section
        labels.append(match["label"].strip())
        if len(labels) == _MAX_SECTIONS:
            break
    return labels if len(labels) >= 2 else []


def sectioned_answer(system: str, user: str, reading: Reading | None = None) -> str | None:
    """The answer in the asked-for sections, or None when the prompt asks for none."""
    labels = section_labels(system)
    if not labels:
        return None
    bullet = "•" if "•" in system else "-"
    sql = sql_block(user)
    if sql is not None:
        query = Query(sql, notes=_notes(system), technical=bool(re.search(r"may use SQL terms", system)))
        if reading is not None:
            # Each risk is noticed with the model's skill; the prompt's "Always flag" makes misses rarer.
            query.notices = lambda: reading.follows("flag", "watch out")
        return "\n\n".join(f"{label}:\n{_sql_section(label, query)}" for label in labels)
    document = Document(user)
    parts = [_document_section(label, document, bullet) for label in labels]
    return "\n".join(parts)


def _kind(label: str) -> str:
    lowered = label.lower()
    for kind, pattern in (
        ("overview", r"tl;?dr|summary|what it does|overview|gist"),
        ("entities", r"date|name|people|who"),
        ("questions", r"question|follow"),
        ("risks", r"watch|risk|caveat|warning"),
        ("points", r"point|step|detail|finding"),
    ):
        if re.search(pattern, lowered):
            return kind
    return "points"


def _sql_section(label: str, query: Query) -> str:
    kind = _kind(label)
    if kind == "overview":
        return query.overview()
    if kind == "risks":
        risks = query.risks()
        return "\n".join(f"- {r}" for r in risks) if risks else "none found"
    return "\n".join(f"{n}. {step}" for n, step in enumerate(query.steps(), start=1))


def _document_section(label: str, document: Document, bullet: str) -> str:
    kind = _kind(label)
    if kind == "overview":
        return f"{label}: {document.overview()}"
    if kind == "entities":
        found = document.entities()
        return f"{label}:\n" + ("\n".join(f"{bullet} {e}" for e in found) if found else f"{bullet} none")
    if kind == "questions":
        return f"{label}:\n" + "\n".join(f"{n}) {q}" for n, q in enumerate(document.questions(), start=1))
    points = document.points()
    return f"{label}:\n" + ("\n".join(f"{bullet} {p}" for p in points) if points else f"{bullet} none")


def _notes(system: str) -> list[str]:
    match = re.search(r"^Table notes:\s*\n((?:\s*- .*\n?)+)", system, re.MULTILINE)
    return [line.strip()[2:].strip() for line in match.group(1).splitlines() if line.strip()] if match else []
