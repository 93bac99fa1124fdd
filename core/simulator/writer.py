"""What the simulated model writes as text. Small, documented heuristics:

1. After a tool result, the reply reports that result. A prompt that lists reference
   snippets to cite gets an answer grounded in them (``grounded``); one that asks for
   labelled sections gets them (``sections``).
2. A short or vague message (under 6 words) gets a clarifying question when the system
   prompt mentions clarification.
3. A system prompt asking for a summary, TL;DR or key points gets that shape.
4. Anything else gets a short answer that names the key words of the last user message;
   smaller models write fewer sentences.

The PRNG is seeded from the request, so the phrasing varies between prompts and models
but never between two runs of the same request.
"""

from __future__ import annotations

import random
import re
from typing import Any

from core.simulator.catalog import answer_sentences
from core.simulator.grounded import grounded_answer
from core.simulator.prompt import content_text, keywords, last_user_text, sentences, system_text
from core.simulator.sections import sectioned_answer
from core.simulator.understanding import Reading

_SHORT_INPUT_WORDS = 6

_OPENINGS = (
    "Here is a short answer about {topic}.",
    "Good question about {topic}.",
    "Let's look at {topic}.",
    "Thinking about {topic}, a few points stand out.",
)
_BODY = (
    "The key factor is {a}, which shapes how {b} behaves in practice.",
    "A common approach is to start with {a} and check the result against {b}.",
    "In most cases {a} matters more than it first appears.",
    "It helps to define what {a} means for your situation before deciding.",
    "One trade-off to keep in mind is cost versus quality when handling {a}.",
    "If {b} changes, revisit the assumptions about {a}.",
)
_CLOSINGS = ("Let me know if you want more detail.", "I can expand on any of these points.", "")
_CLARIFY = (
    'Could you clarify what you mean by "{text}"? For example, which {a} are you asking about, '
    "and what outcome do you expect?",
    'I want to get this right: when you say "{text}", what context or goal do you have in mind?',
)


def reply_text(model: str, messages: list[dict[str, Any]], rng: random.Random) -> str:
    """The assistant's text reply to ``messages``."""
    if messages and messages[-1].get("role") == "tool":
        return _report_tool_result(messages[-1])
    system = system_text(messages)
    user = last_user_text(messages)
    reading = Reading(model, user, system, rng)
    grounded = grounded_answer(model, messages, reading)
    if grounded is not None:
        return grounded
    sectioned = sectioned_answer(system, user, reading)
    if sectioned is not None:
        return sectioned
    words = keywords(user)
    if len(user.split()) < _SHORT_INPUT_WORDS and re.search(r"clarif", system, re.IGNORECASE):
        return _clarifying_question(user, words, rng)
    if re.search(r"summar|tl;?dr|key points", system, re.IGNORECASE):
        return summary(user, words)
    return _answer(model, words, rng)


def summary(text: str, words: list[str]) -> str:
    """A TL;DR line and up to three key points drawn from the text's own sentences."""
    found = sentences(text)
    if not found:
        return "TL;DR: There is no text to summarise.\n\nKey points:\n- The input was empty."
    points = [_shorten(s, 14) for s in found[1:4]]
    for word in words:
        if len(points) >= 2:
            break
        points.append(f"{word[0].upper()}{word[1:]} is central to the text.")
    bullets = "\n".join(f"- {p}" for p in points)
    return f"TL;DR: {_shorten(found[0], 25)}\n\nKey points:\n{bullets}"


def _answer(model: str, words: list[str], rng: random.Random) -> str:
    topic = _join_words(words[:3]) or "your message"
    pool = words or ["this topic"]
    lines = [rng.choice(_OPENINGS).format(topic=topic)]
    for template in rng.sample(_BODY, answer_sentences(model)):
        first = rng.choice(pool)
        second = rng.choice([w for w in pool if w != first] or pool)
        lines.append(template.format(a=first, b=second))
    closing = rng.choice(_CLOSINGS)
    return " ".join(lines + ([closing] if closing else []))


def _clarifying_question(text: str, words: list[str], rng: random.Random) -> str:
    subject = words[0] if words else "topic"
    return rng.choice(_CLARIFY).format(text=text.strip() or "that", a=subject)


def _report_tool_result(message: dict[str, Any]) -> str:
    result = _shorten(content_text(message), 60) or "no data"
    return f"Here is what I found: {result}"


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _shorten(text: str, max_words: int) -> str:
    parts = text.split()
    return text if len(parts) <= max_words else " ".join(parts[:max_words]) + "..."
