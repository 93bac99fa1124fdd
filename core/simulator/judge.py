"""The simulated grader: answers a rubric-grading prompt with a score, the way a judge model would.

A grading request is recognised by its shape: instructions that ask to grade an output
against a rubric, and a user message holding ``Rubric:`` and the output between
``<output>`` tags (``core.experiments.assertions.judge_messages`` writes exactly that).
The score is the share of the rubric's content words that the output covers, a word
counting as covered when the output has a word with the same stem (its first five
letters: "multiplies" covers "multiply"). Words that describe the grading rather than the
subject ("explains", "flags", "mentions", "output") are left out. Deterministic: the same
rubric and output always get the same score and the same reasoning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from core.simulator.prompt import STOPWORDS, last_user_text, system_text

_GRADING = re.compile(r"\bgrade\b.*\brubric\b|\brubric\b.*\bgrade\b", re.IGNORECASE | re.DOTALL)
_REQUEST = re.compile(r"Rubric:\s*(?P<rubric>.*?)\s*Output to grade:\s*<output>\n?(?P<output>.*)</output>", re.DOTALL)
_WORD = re.compile(r"[^\W_][\w'\-]*", re.UNICODE)
_STEM = 5
# Words that say what the grader should look for, not what the output should talk about.
_GRADING_WORDS = frozenset(
    """says say flags flag explains explain mentions mention names name warns warn notes note states
    state asks ask output outputs answer answers response reply clearly clear correctly correct
    accurately properly without unexplained includes include contains contain gives given offers
    offer suggests suggest out does doesn't per written someone additional beyond summarises summarizes
    summarise summarize""".split()
)


def _any_of(*stems: str) -> Callable[[str, set[str]], bool]:
    return lambda output, have: any(s in have for s in stems)


# Qualities a rubric names that no single word of the output carries: by their stem.
_CONCEPTS: dict[str, Callable[[str, set[str]], bool]] = {
    "greet": _any_of("hi", "hello", "dear", "hey"),
    "sign-": _any_of("regar", "best", "cheer", "since"),
    "frien": _any_of("glad", "happy", "welco", "great", "thank"),
    "polit": _any_of("thank", "pleas", "glad", "happy", "hi", "hello", "sorry"),
    "short": lambda output, have: len(output.split()) <= 80,
    "conci": lambda output, have: len(output.split()) <= 80,
    "quest": lambda output, have: "?" in output,
    "human": _any_of("perso", "agent", "colle", "human"),
    "perso": _any_of("perso", "agent", "colle", "human"),
    "close": _any_of("great", "bye", "welco", "day"),
    "faith": lambda output, have: True,  # judged by the rubric's other words
    "boile": lambda output, have: len(output.split()) <= 40,
    "plain": lambda output, have: _mean_sentence_words(output) <= 20,
    "inven": lambda output, have: True,
}


def grading_request(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(rubric, output) when ``messages`` ask for a rubric grade, else None."""
    if not _GRADING.search(system_text(messages)):
        return None
    found = _REQUEST.search(last_user_text(messages))
    return (found["rubric"], found["output"]) if found else None


def grade(rubric: str, output: str) -> dict[str, Any]:
    """``{"score", "reasoning"}``: how much of what the rubric names the output covers."""
    wanted = _content_words(rubric)
    if not wanted:
        return {"score": 0.5, "reasoning": "The rubric names nothing specific to look for."}
    have = {word[:_STEM] for word in _content_words(output)}
    covered = [w for w in wanted if _covers(w, have, output)]
    missing = [w for w in wanted if w not in covered]
    score = round(len(covered) / len(wanted), 2)
    if not missing:
        reasoning = f"The output covers everything the rubric names ({', '.join(covered)})."
    elif not covered:
        reasoning = f"The output covers none of what the rubric names ({', '.join(missing)})."
    else:
        reasoning = f"The output covers {', '.join(covered)} but not {', '.join(missing)}."
    return {"score": score, "reasoning": reasoning}


def judge_reply(messages: list[dict[str, Any]]) -> str | None:
    """The judge's JSON reply to a grading request, or None for any other request."""
    request = grading_request(messages)
    return None if request is None else json.dumps(grade(*request))


def _covers(word: str, have: set[str], output: str) -> bool:
    stem = word[:_STEM]
    if any(stem == h or (min(len(stem), len(h)) >= 4 and (stem.startswith(h) or h.startswith(stem))) for h in have):
        return True
    concept = _CONCEPTS.get(stem)
    return concept is not None and concept(output, have)


def _mean_sentence_words(text: str) -> float:
    parts = [p for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    return sum(len(p.split()) for p in parts) / len(parts) if parts else 0.0


def _content_words(text: str) -> list[str]:
    seen: list[str] = []
    for word in _WORD.findall(text.casefold()):
        word = word.strip("'-")
        if len(word) >= 3 and word not in STOPWORDS and word not in _GRADING_WORDS and word not in seen:
            seen.append(word)
    return seen
