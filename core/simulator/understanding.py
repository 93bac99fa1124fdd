"""How the simulated model "reads" a request: cue words, vagueness, and how reliably it obeys.

The rules, all deterministic and meant to be guessable by a reader of a test set:

* **Cues.** Each enum value has cue phrases: its own words, a small synonym table
  (``CUES``: urgency high <- outage/down/cannot log in/data loss/security...; intent
  billing <- invoice/charge/refund/payment...) and, when the system prompt defines a
  value with examples in parentheses ("billing (charges, invoices, refunds)"), those
  examples too. Cues match as word prefixes ("charge" matches "charged").
* **Injected instructions are data.** Sentences that try to give orders ("ignore all
  previous instructions", "NOTE TO AI", "SYSTEM:") are left out of the reading.
* **Metadata is not the request.** Lines such as "Channel: email" or "Plan: pro" (a
  label and at most three words) count for cues but not for judging vagueness.
* **Vague input**: fewer than three content words, or a vague phrase ("doesn't work",
  "help", "the thing", "fix it", "problem") with no concrete signal (a number, a name,
  a quoted string or a cue word).
* **Escalation**: the input asks for a person/human/manager, is angry (several "!",
  shouting, "third time", "dispute"), or reports being blocked (``CUES["high"]``).
* **Skill.** Every cue-based decision is followed with a probability that depends on
  the model (``follow_rate``: about 0.6 for nano, 0.75 for mini, 0.92 for larger
  models) and rises each time the system prompt spells out the rule (a sentence that
  names the field, e.g. "clarifying question"). A decision not followed takes another
  value, drawn from the request's seeded PRNG: a smaller model gets a deterministic
  share of answers "wrong", and a clearer prompt gets fewer wrong. A cue that wins by
  a wide margin (found several times more than the runner-up) is missed less often.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from core.simulator.catalog import base_model, is_reasoning_model
from core.simulator.prompt import STOPWORDS

Option = TypeVar("Option")  # an enum value of a JSON schema: a string, number, boolean or null

CUES: dict[str, tuple[str, ...]] = {
    "high": (
        "outage",
        "down",
        "urgent",
        "cannot log in",
        "can't log in",
        "cannot work",
        "locked",
        "blocked",
        "data loss",
        "disappeared",
        "security",
        "suspicious",
        "hacked",
        "immediately",
        "asap",
        "503",
        "500",
        "twice",
        "double",
        "zweimal",
        "dispute",
        "in an hour",
        "did not do that",
        "disabled",
        "someone else",
    ),
    "urgent": ("outage", "down", "urgent", "data loss", "security", "cannot work", "immediately"),
    "medium": ("slow", "delay", "late", "was due", "not moved", "degraded", "intermittent", "sometimes"),
    "low": (
        "question",
        "how do i",
        "how can i",
        "could you send",
        "copy of",
        "would love",
        "would be nice",
        "feature request",
        "typo",
        "thanks",
        "thank you",
        "great",
        "good work",
        "suggest",
    ),
    "billing": (
        "invoice",
        "charge",
        "refund",
        "payment",
        "card",
        "billing",
        "vat",
        "price",
        "subscription",
        "rechnung",
        "belastet",
        "erstatt",
        "zahlung",
        "factura",
    ),
    "technical": (
        "error",
        "crash",
        "bug",
        "fail",
        "outage",
        "503",
        "500",
        "timeout",
        "traceback",
        "exception",
        "slow",
        "load",
        "api",
        "endpoint",
        "export",
        "sync",
    ),
    "bug": ("error", "crash", "broken", "doesn't work", "does not work", "fail", "exception"),
    "account": (
        "password",
        "login",
        "log in",
        "sign in",
        "2fa",
        "locked",
        "access",
        "account",
        "profile",
        "gdpr",
        "delet",
        "suspicious login",
    ),
    "shipping": (
        "order",
        "tracking",
        "delivery",
        "shipped",
        "shipping",
        "router",
        "arrived",
        "parcel",
        "package",
        "courier",
        "damaged",
    ),
    "feedback": ("would love", "would be nice", "suggest", "great", "thanks", "good work", "love", "praise"),
    "feature_request": ("would be nice", "could you add", "would love", "feature", "please add"),
    "superlative": ("best", "#1", "fastest", "greatest", "greenest", "ever", "beste", "guaranteed", "world"),
    "competitor-comparison": ("than", "versus", " vs", "competitor", "slack"),
    "pricing": ("price", "costs", "eur", "$", "per month", "discount", "cheap"),
    "regulated": ("hipaa", "compliant", "certified", "gdpr", "green", "health", "returns"),
    "unsupported": ("save", "hours", "percent", "%", "times", "zero"),
    "reject": ("idiot", "stupid", "hate", "scam"),
}
VAGUE_PHRASES = (
    "doesn't work",
    "does not work",
    "not working",
    "help",
    "problem",
    "issue",
    "the thing",
    "fix it",
    "broken",
    "something wrong",
    "look at it",
    "again",
)
_INJECTION = re.compile(
    r"ignore (all |any |the |your )?(previous |prior |above )?(instructions|rules)|note to ai|"
    r"\bsystem:|disregard .{0,20}instructions",
    re.IGNORECASE,
)
_HUMAN = re.compile(
    r"\b(talk|speak) to (a |an )?(person|human|someone|manager|agent)|\b(real|a) person\b|"
    r"\bhuman\b|\bmanager\b|\bsupervisor\b",
    re.IGNORECASE,
)
_ANGRY = re.compile(r"!{2,}|\b[A-Z]{4,}\b|third time|unacceptable|ridiculous|dispute|furious", re.UNICODE)
_METADATA_LINE = re.compile(r"^\s*[A-Z][\w ]{0,24}:\s*(\S+\s*){0,3}$")
_CONTENT_WORD = re.compile(r"[^\W\d_][\w'\-]*", re.UNICODE)


def follow_rate(model: str) -> float:
    """How often a model follows a cue it noticed, before any prompt instruction helps."""
    base = base_model(model)
    if base.endswith("-nano"):
        rate = 0.6
    elif base.endswith("-mini") or base == "gpt-3.5-turbo":
        rate = 0.75
    else:
        rate = 0.92
    return min(0.97, rate + (0.08 if is_reasoning_model(model) else 0.0))


def cue_hits(text: str, cues: tuple[str, ...] | list[str]) -> int:
    """How often the cue phrases occur in ``text`` (as word prefixes; each phrase counted once per place)."""
    lowered = text.lower()
    return sum(
        len(re.findall(r"(?<![\w])" + re.escape(cue), lowered))
        for cue in {c.lower().strip() for c in cues if c.strip()}
    )


def without_injections(text: str) -> str:
    """``text`` without the sentences that try to instruct the model."""
    lines = []
    for line in text.splitlines():
        parts = re.split(r"(?<=[.!?])\s+", line)
        lines.append(" ".join(p for p in parts if not _INJECTION.search(p)))
    return "\n".join(lines)


def system_defined_cues(system: str) -> dict[str, list[str]]:
    """Examples a system prompt gives for a value: "billing (charges, invoices, refunds)"."""
    found: dict[str, list[str]] = {}
    for value, examples in re.findall(r"\b([a-z][a-z_\-]+) \(([^()]{3,120})\)", system):
        words = [w.strip(" \"'.") for w in re.split(r",|\bor\b|\band\b", examples)]
        found.setdefault(value.lower(), []).extend(_singular(w) for w in words if len(w) > 2)
    return found


@dataclass
class Reading:
    """One request as the simulated model understood it; decisions are cached per name."""

    model: str
    user: str
    system: str
    rng: random.Random
    decided: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.text = without_injections(self.user)
        self.body = "\n".join(line for line in self.text.splitlines() if not _METADATA_LINE.match(line)).strip()
        self.extra_cues = system_defined_cues(self.system)

    def follows(self, *topic_words: str, strength: int = 1) -> bool:
        """Whether the model follows a cue this time; the prompt naming the rule, and a
        cue found several times over, both make a miss less likely."""
        mentions = sum(
            1 for s in re.split(r"(?<=[.!?])\s+|\n", self.system) if any(w.lower() in s.lower() for w in topic_words)
        )
        rate = 1 - (1 - follow_rate(self.model)) * 0.6 ** min(mentions, 3) * 0.8 ** min(max(strength - 1, 0), 4)
        return self.rng.random() < rate

    def choose(self, name: str, options: Sequence[Option]) -> Option | None:
        """The enum value the input's cues point to (None: no cue, let the seed decide)."""
        labels = [str(o) for o in options]
        scores = [
            cue_hits(
                self.text,
                (*CUES.get(o.lower(), ()), *self.extra_cues.get(o.lower(), ()), o.replace("_", " ").replace("-", " ")),
            )
            for o in labels
        ]
        if max(scores, default=0) == 0:
            return _neutral(options)
        # Ties go to the later option: on a scale (low, medium, high) the model errs on the safe side.
        best = max(range(len(options)), key=lambda i: (scores[i], i))
        margin = scores[best] - max((sc for i, sc in enumerate(scores) if i != best), default=0)
        if self.follows(name.replace("_", " "), labels[best], strength=margin) or len(options) == 1:
            return options[best]
        return self.rng.choice([o for i, o in enumerate(options) if i != best])

    @property
    def vague(self) -> bool:
        if "vague" not in self.decided:
            self.decided["vague"] = self._decide(is_vague(self.body), "clarif", "vague", "ambigu")
        return bool(self.decided["vague"])

    @property
    def escalate(self) -> bool:
        if "escalate" not in self.decided:
            wanted = bool(_HUMAN.search(self.body) or _ANGRY.search(self.body) or cue_hits(self.text, CUES["high"]))
            self.decided["escalate"] = self._decide(wanted, "escalat", "human", "hand")
        return bool(self.decided["escalate"])

    def _decide(self, cue: bool, *topic_words: str) -> bool:
        return cue if self.follows(*topic_words) else not cue


def is_vague(body: str) -> bool:
    words = [w for w in _CONTENT_WORD.findall(body) if w.lower() not in STOPWORDS and len(w) > 2]
    if len(words) < 3:
        return True
    concrete = bool(re.search(r"\d|\"|[A-Z][a-z]+ [A-Z]", body)) or any(
        cue_hits(body, cues) for key, cues in CUES.items() if key not in ("high", "medium", "low")
    )
    return cue_hits(body, VAGUE_PHRASES) > 0 and not concrete


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _neutral(options: Sequence[Option]) -> Option | None:
    """With no cue: the middle of a low/medium/high scale, or "other"; else the seed decides."""
    lowered = [str(o).lower() for o in options]
    for neutral in ("medium", "normal", "other", "none"):
        if neutral in lowered:
            return options[lowered.index(neutral)]
    return None
