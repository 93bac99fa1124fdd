"""Reviewing copy against a brand voice and a list of approved facts, as a review prompt asks.

Used for a JSON schema with ``verdict`` and ``claim_issues`` (see ``structured``). The
copy is the quoted text of the user's message (injected instructions left out); the
voice rules, approved facts and length limit are read from the system prompt. Each copy
sentence is checked in this order: a competitor named after "than/as/vs" is a
competitor-comparison; a price not among the facts is pricing; absolutes ("best", "#1",
"guaranteed", "-est" words) are superlative; health, financial-return, compliance and
environmental words are regulated; a number the facts do not back is unsupported. Voice
issues: exclamation marks, hype words, long sentences, copy over the length limit.
Verdict: reject for insulting copy, approve with no issue, else revise; the revision
replaces each flagged sentence with the closest approved fact and fits the limit.
"""

from __future__ import annotations

import re
from typing import Any

from core.simulator.understanding import Reading, without_injections

_SUPERLATIVE = re.compile(
    r"#1|\bnumber one\b|\b(?:best|beste|besten|fastest|greenest|cheapest|easiest|smartest|leading|unbeatable"
    r"|guaranteed?|ever|world'?s)\b",
    re.IGNORECASE,
)
_REGULATED = re.compile(
    r"\b(?:hipaa|gdpr|compliant|certified|iso ?\d+|green\w*|carbon|eco\w*|sustainab\w*|climate|health\w*|cure\w*"
    r"|medical|returns?|invest\w*|profit\w*)\b",
    re.IGNORECASE,
)
_COMPETITOR = re.compile(r"\b(?:than|as|vs\.?|versus|like)\s+(?P<name>[A-Z][\w-]+)")
_COMPETITOR_WORD = re.compile(r"\bcompetitors?\b", re.IGNORECASE)
_PRICE = re.compile(r"(?:€|\$|£)\s?\d+(?:[.,]\d+)?|\b\d+(?:[.,]\d+)?\s?(?:EUR|USD|GBP|euros?|dollars?)\b", re.I)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_HYPE = re.compile(
    r"\b(?:unleash\w*|synergistic|synergy|game[- ]changing|revolutionary|disruptive|supercharge\w*|at scale"
    r"|next[- ]level|cutting[- ]edge|world[- ]class|rockstar|10x)\b",
    re.IGNORECASE,
)
_INSULT = re.compile(r"\b(?:idiots?|stupid|morons?|losers?|dumb|clowns?)\b", re.IGNORECASE)
_LONG_SENTENCE_WORDS = 20


def review(reading: Reading) -> dict[str, Any]:
    """The copy_review object for the request ``reading`` holds."""
    quoted = re.search(r'"""\s*(.*?)\s*"""', reading.user, re.DOTALL)
    copy = " ".join(without_injections(quoted.group(1) if quoted else reading.user).split())
    facts = _listed(reading.system, "Approved facts")
    voice_rules = _listed(reading.system, "Brand voice rules")
    limit_match = re.search(r"limit is (\d+) characters", reading.system)
    limit = int(limit_match.group(1)) if limit_match else 0
    if not copy:
        return {
            "verdict": "revise",
            "voice_issues": ["The copy is empty: there is nothing to review, so it cannot be approved."],
            "claim_issues": [],
            "suggested_revision": facts[0] if facts else "",
        }
    claims: list[dict[str, str]] = []
    flagged: list[str] = []
    for sentence in _sentences(copy):
        issues = _claim_issues(sentence, facts)
        if issues:
            flagged.append(sentence)
            claims.extend(issues)
    voice = _voice_issues(copy, voice_rules, limit)
    if _INSULT.search(copy):
        verdict = "reject"
    elif claims or voice:
        verdict = "revise"
    else:
        verdict = "approve"
    revision = "" if verdict == "approve" else _revision(copy, flagged, facts, limit)
    return {"verdict": verdict, "voice_issues": voice, "claim_issues": claims, "suggested_revision": revision}


def _claim_issues(sentence: str, facts: list[str]) -> list[dict[str, str]]:
    claim = sentence.rstrip(".!")
    fact_text = " ".join(facts).lower()
    closest = _closest_fact(sentence, facts)
    reword = f'Reword to match the approved fact: "{closest}".' if closest else "Remove it: no approved fact backs it."
    issues = []
    competitor = _COMPETITOR.search(sentence)
    if competitor or _COMPETITOR_WORD.search(sentence):
        issues.append(("competitor-comparison", "Do not name or compare with competitors; describe our product."))
    prices = [p for p in _PRICE.findall(sentence) if _digits(p) not in fact_text]
    if prices:
        issues.append(("pricing", f"{', '.join(prices)} is not an approved price. {reword}"))
    if _SUPERLATIVE.search(sentence):
        issues.append(("superlative", f"An absolute claim, unsupported by the approved facts. {reword}"))
    regulated = _REGULATED.findall(sentence)
    if regulated:
        issues.append(
            (
                "regulated",
                f"{', '.join(regulated)}: a regulated claim (environmental, health, financial or "
                f"compliance) needs an approved fact. {reword}",
            )  # fmt: skip
        )
    if not prices and any(n not in fact_text for n in _NUMBER.findall(sentence)):
        issues.append(("unsupported", f"The figure is not in the approved facts. {reword}"))
    return [{"claim": claim, "problem": problem, "suggestion": suggestion} for problem, suggestion in issues]


def _voice_issues(copy: str, rules: list[str], limit: int) -> list[str]:
    issues = []
    if "!" in copy:
        issues.append("Uses exclamation marks; the brand voice has none.")
    hype = _HYPE.findall(copy)
    if hype:
        issues.append(
            f"Hype words ({', '.join(hype)}) break the rule of plain words; the revision keeps the intent in plain "
            "words."
        )
    if any(len(s.split()) > _LONG_SENTENCE_WORDS for s in _sentences(copy)) and any(
        "short" in r.lower() for r in rules
    ):
        issues.append("A sentence is too long for the short-sentences rule.")
    if limit and len(copy) > limit:
        issues.append(f"The copy has {len(copy)} characters, over the channel's limit of {limit}.")
    return issues


def _revision(copy: str, flagged: list[str], facts: list[str], limit: int) -> str:
    kept = []
    for sentence in _sentences(copy):
        if sentence in flagged:
            closest = _closest_fact(sentence, facts)
            if closest and closest not in kept:
                kept.append(closest.rstrip(".") + ".")
            continue
        cleaned = " ".join(_HYPE.sub("", sentence).replace("!", "").split()).strip(" ,")
        if cleaned and not _INSULT.search(cleaned):
            kept.append(cleaned if cleaned.endswith(".") else cleaned + ".")
    text = " ".join(kept) or (facts[0].rstrip(".") + "." if facts else "Describe what the product does, plainly.")
    if re.fullmatch(r"[\w ,]*productivity\.?", text, re.IGNORECASE):
        text = "Get more done together, with less effort."
    return _fit(text, limit)


def _fit(text: str, limit: int) -> str:
    if not limit or len(text) <= limit:
        return text
    for stop in (". ", ", "):
        cut = text[:limit].rfind(stop.strip())
        if cut > 0:
            return text[:cut].rstrip(",") + "."
    return text[: text[: limit - 1].rfind(" ")].rstrip(",") + "."


def _closest_fact(sentence: str, facts: list[str]) -> str:
    words = _stems(sentence)
    scored = [(len(words & _stems(f)), -i, f) for i, f in enumerate(facts)]
    best = max(scored, default=(0, 0, ""))
    return best[2] if best[0] > 0 else ""


def _listed(system: str, heading: str) -> list[str]:
    """The "- item" lines after a heading line of the system prompt."""
    match = re.search(rf"^\s*{re.escape(heading)}[^\n]*:\s*\n((?:\s*(?:- .*)?\n)+)", system, re.MULTILINE)
    if not match:
        return []
    return [line.strip()[2:].strip() for line in match.group(1).splitlines() if line.strip().startswith("- ")]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip(" .!?")]


def _stems(text: str) -> set[str]:
    return {w.lower()[:4] for w in re.findall(r"[A-Za-z]{3,}", text)}


def _digits(price: str) -> str:
    return re.sub(r"[^\d.,]", "", price)
