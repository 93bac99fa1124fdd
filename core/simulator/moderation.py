"""``/v1/moderations``: flags text that contains words from a small, explicit list.

This is a keyword match, not a classifier: it is there so that guardrail code paths
(flag, block, triage) can be exercised with predictable inputs. Matching is on whole
words, case-insensitive. The lists are deliberately short and obvious; a sentence such
as "I will kill you" is flagged, "the weather is lovely" is not. Known false positives
("kill the process") are accepted for a simulator.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from core.simulator.api_error import bad_request, model_not_found, wrong_endpoint
from core.simulator.catalog import model_kind

_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors",
    "violence", "violence/graphic",
)  # fmt: skip

# Category -> regular expression of trigger words (word stems allow simple inflections).
TRIGGERS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "violence": r"\b(kill(s|ed|ing)?|murder\w*|stab(s|bed|bing)?|shoot(s|ing)?"
        r"|massacre\w*|behead\w*|strangl\w*|torture\w*)\b",
        "violence/graphic": r"\b(gore|dismember\w*|mutilat\w*|disembowel\w*)\b",
        "harassment/threatening": r"\b(i will|i'll|i am going to|i'm going to) (kill|hurt|find|stab|shoot) you\b",
        "harassment": r"\b(you are|you're) (worthless|pathetic|an idiot|disgusting)\b",
        "self-harm": r"\b(suicid\w*|self-harm\w*|kill myself|cut myself|end my life)\b",
        "self-harm/intent": r"\b(i want to die|kill myself|end my life)\b",
        "self-harm/instructions": r"\bhow to (kill myself|commit suicide)\b",
        "hate": r"\b(subhuman|inferior race|exterminate (them|all))\b",
        "hate/threatening": r"\bexterminate (them|all)\b",
        "illicit": r"\b(make|cook|synthesi[sz]e) (meth|methamphetamine)\b",
        "illicit/violent": r"\b(build|make) a (bomb|pipe bomb)\b",
        "sexual": r"\b(porn\w*|sexually explicit)\b",
    }.items()
}


def moderations(body: dict[str, Any]) -> dict[str, Any]:
    """The ``ModerationCreateResponse`` body for a parsed request."""
    model = body.get("model") or "omni-moderation-latest"
    kind = model_kind(model)
    if kind is None:
        raise model_not_found(model)
    if kind != "moderation":
        raise wrong_endpoint(model, "v1/moderations")
    texts = _inputs(body.get("input"))
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    return {"id": f"modr-{digest[:24]}", "model": model, "results": [classify(t) for t in texts]}


def classify(text: str) -> dict[str, Any]:
    """One moderation result: categories, deterministic scores, applied input types."""
    hits = {name for name, pattern in TRIGGERS.items() if pattern.search(text)}
    scores = {}
    for name in _CATEGORIES:
        noise = int(hashlib.sha256(f"{name}|{text}".encode()).hexdigest()[:6], 16) / 0xFFFFFF
        # Flagged categories score high, the others low, both varying with the text.
        scores[name] = round(0.9 + 0.09 * noise, 6) if name in hits else round(0.001 * noise, 6)
    return {
        "flagged": bool(hits),
        "categories": {name: name in hits for name in _CATEGORIES},
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in _CATEGORIES},
    }


def _inputs(value: object) -> list[str]:
    """A string, a list of strings, or a list of multimodal parts (only text is read)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [" ".join(v.get("text", "") for v in value if v.get("type") == "text")]
    raise bad_request("'$.input' is invalid. Please check the API reference.", param="input")
