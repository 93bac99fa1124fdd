"""Answers grounded in reference snippets, as a help-desk prompt asks for them.

A system prompt that lists snippets as ``[KB-101] Title (url)`` followed by their text,
and asks to cite them, gets an answer built only from those snippets:

* A snippet is used when it shares a word stem with the question (title or text); each
  sentence taken from it is followed by its citation ``[KB-101]``. Sentences inside a
  snippet that try to instruct the model are left out, as are card numbers.
* Two used snippets that give different figures for the same thing are not merged: the
  answer says they disagree and offers to confirm with a person.
* No snippet covers the question: the answer says so and offers a human agent, inventing
  nothing. A greeting gets a greeting back; thanks get a short close; a request with too
  little to act on gets one clarifying question.
* The greeting uses the customer's name when the request gives one ("Customer Ana (ID
  ...) asks:"), and an e-mail channel gets a sign-off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.simulator.fields import redact
from core.simulator.prompt import STOPWORDS, last_user_text, system_text
from core.simulator.understanding import Reading, is_vague, without_injections

_SNIPPET = re.compile(
    r"^\[(?P<ref>[A-Z]{2,6}-[\w.-]+)\]\s*(?P<title>.*?)\s*(?:\((?:https?://)[^)\n]*\))?\s*$", re.MULTILINE
)
_CITE_RULE = re.compile(r"\bcite\b", re.IGNORECASE)
_NAME = re.compile(r"^Customer (?P<name>[A-Z][\w'-]+) \(", re.MULTILINE)
_ASKS_LINE = re.compile(r"^.*\basks:\s*$", re.MULTILINE)
_GREETING = re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|hallo|hola)\W*$", re.IGNORECASE)
_THANKS = re.compile(r"\b(thanks|thank you|cheers|danke|gracias)\b", re.IGNORECASE)
_EMAIL_CHANNEL = re.compile(r"\b(?:e-?mail) channel\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
_NUMBER = re.compile(r"\b\d+(?:[.,:]\d+)?\b")
_STEM = 5


@dataclass(frozen=True)
class Snippet:
    ref: str
    title: str
    text: str


def snippets_of(system: str) -> list[Snippet]:
    """The snippets a system prompt lists, each with the text up to the next one (or a blank line)."""
    found = list(_SNIPPET.finditer(system))
    snippets = []
    for index, match in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(system)
        body = system[match.end() : end].strip().split("\n\n")[0]
        snippets.append(Snippet(match["ref"], match["title"].strip(), body.strip()))
    return snippets


def grounded_answer(model: str, messages: list[dict[str, Any]], reading: Reading | None = None) -> str | None:
    """The answer from the system prompt's snippets, or None when the prompt is not of that kind."""
    system = system_text(messages)
    if not _CITE_RULE.search(system) or not re.search(r"\[[A-Z]{2,6}-<?\w", system):
        return None
    user = last_user_text(messages)
    question = _ASKS_LINE.sub("", without_injections(user)).strip()
    name = _NAME.search(user)
    greeting = f"Hi {name['name']}," if name else "Hi,"
    email = bool(_EMAIL_CHANNEL.search(system))
    sign_off = "\n\nBest regards,\nThe support team" if email else ""
    if _GREETING.match(question):
        return f"{greeting} thanks for reaching out! How can I help you today?"
    if _THANKS.search(question) and len(question.split()) <= 8:
        return f"You're welcome{' ' + name['name'] if name else ''}! Glad that fixed it. Have a great day."
    # Only input that is vague by the cues gets a question; a miss means answering anyway.
    if reading is not None and is_vague(reading.body) and reading.vague:
        return (
            f"{greeting} happy to help. So that the right person can pick this up, what is the problem you are "
            "seeing, and what have you tried so far?"
        )
    used = [s for s in snippets_of(system) if _stems(s.title + " " + s.text) & _stems(question)]
    separator = "\n\n" if email else " "
    if not used:
        topic = " ".join(_WORD.findall(redact(question))[:12]) or "this"
        body = (
            f"I'm sorry, our knowledge base does not cover your question ({topic}), and I don't want to guess. "
            "I can escalate it and pass your request to a human agent from our team who can help and will find out "
            "for you (or connect you with sales for prices and plans) - shall I do that?"
        )
        return f"{greeting}{separator}{body}{sign_off}"
    if len(used) > 1 and _disagree(used):
        claims = "; ".join(f"{_first_sentence(s)} [{s.ref}]" for s in used)
        body = (
            f"Our articles disagree on this: {claims}. I can't say which figure is certain, so I can confirm it "
            "with a human colleague for you."
        )
        return f"{greeting}{separator}{body}{sign_off}"
    answer = " ".join(f"{_sentences_of(s)} [{s.ref}]" for s in used)
    return f"{greeting}{separator}{answer}{separator}Let me know if anything is unclear.{sign_off}"


def _sentences_of(snippet: Snippet) -> str:
    return redact(" ".join(without_injections(snippet.text).split()))


def _first_sentence(snippet: Snippet) -> str:
    return re.split(r"(?<=[.!?])\s+", _sentences_of(snippet))[0].rstrip(".")


def _disagree(snippets: list[Snippet]) -> bool:
    """Snippets that say nearly the same thing with different numbers."""
    numbers = [set(_NUMBER.findall(s.text)) for s in snippets]
    words = [_stems(s.text) for s in snippets]
    return any(
        numbers[i] and numbers[j] and numbers[i] != numbers[j] and len(words[i] & words[j]) >= 3
        for i in range(len(snippets))
        for j in range(i + 1, len(snippets))
    )


def _stems(text: str) -> set[str]:
    return {w.lower()[:_STEM] for w in _WORD.findall(text) if len(w) >= 3 and w.lower() not in STOPWORDS}
