"""An in-process moderation check for upstreams without ``/v1/moderations`` (vLLM, Ollama,
most OpenAI-compatible servers), or for a team that must not send text out for it.

What it is: a short list of regular expressions per category of OpenAI's moderation
model, matched on whole words, case-insensitive. What it is not: a classifier. It
catches the plain, explicit phrasings below and misses paraphrase, irony, other
languages and anything obfuscated; it also flags some harmless uses ("kill the
process"). A team chooses it knowingly on its policy; the page says the same.

The answer has the shape of OpenAI's moderation results, so the gateway treats both
sources alike.
"""

from __future__ import annotations

import re
from typing import Any

CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors",
    "violence", "violence/graphic",
)  # fmt: skip

_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "violence": r"\b(kill(s|ed|ing)? (him|her|them|you|everyone|people)|murder(s|ed|ing)?|stab(s|bed|bing)? "
        r"(him|her|them|you)|shoot(s|ing)? (him|her|them|you|up)|massacre\w*|behead\w*|strangl\w*|"
        r"tortur(e|ed|ing))\b",
        "violence/graphic": r"\b(gore|dismember\w*|mutilat\w*|disembowel\w*)\b",
        "harassment/threatening": r"\b(i will|i'll|i am going to|i'm going to|we will) (kill|hurt|find|stab|shoot|"
        r"beat) you\b",
        "harassment": r"\b(you are|you're|ur) (worthless|pathetic|an idiot|disgusting|a moron|trash)\b",
        "hate": r"\b(subhuman|inferior race|exterminate (them|all)|go back to your country)\b",
        "hate/threatening": r"\bexterminate (them|all)\b",
        "self-harm": r"\b(suicid\w*|self-harm\w*|kill myself|cut myself|end my life)\b",
        "self-harm/intent": r"\b(i want to die|i'm going to kill myself|i will kill myself|end my life)\b",
        "self-harm/instructions": r"\bhow (to|do i|can i) (kill myself|commit suicide|end my life)\b",
        "illicit": r"\b(make|cook|synthesi[sz]e) (meth|methamphetamine|fentanyl)\b",
        "illicit/violent": r"\b(build|make) a (bomb|pipe bomb|gun at home)\b",
        "sexual": r"\b(porn\w*|sexually explicit)\b",
        "sexual/minors": r"\b(child|minor|underage) (porn\w*|sex\w*)\b",
    }.items()
}


def classify(text: str) -> dict[str, Any]:
    """One moderation result, as OpenAI's: ``flagged`` and a boolean per category."""
    hits = {name for name, pattern in _PATTERNS.items() if pattern.search(text)}
    return {"flagged": bool(hits), "categories": {name: name in hits for name in CATEGORIES}}


def moderate(texts: list[str]) -> list[dict[str, Any]]:
    return [classify(text) for text in texts]
