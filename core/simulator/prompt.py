"""Reading a chat request: message text, key words, token estimates, the request's seed.

Everything the simulator "says" is derived from what is read here, so that two
different prompts give two different answers and the same prompt always the same one.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from typing import Any

# Keys that change how a reply is delivered or logged, not what it says; leaving them out
# of the seed keeps a streamed answer identical to the same request answered in one piece.
_DELIVERY_KEYS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})

STOPWORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from about into over under
    is are was were be been being am it its it's this that these those there here i you he she
    we they me my your our their his her them us what which who whom how why when where can
    could would should will shall may might must do does did done have has had not no yes
    please tell give show explain describe write make let just also very really some any
    all each more most other such only own same than too up out get got want need like
    thanks thank hello hi hey okay ok between among choose using use used way best good new
    small large big thing things know think one two after before because while without within
    through whether both either many much few lot something anything today now""".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*")


def content_text(message: dict[str, Any]) -> str:
    """The text of one message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    else:
        text = ""
    calls = message.get("tool_calls")
    # Only an assistant message's tool calls are typed; a client may put anything under the key elsewhere.
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            text += f" {function.get('name', '')} {function.get('arguments', '')}"
    return text.strip()


def system_text(messages: list[dict[str, Any]]) -> str:
    """All system and developer instructions, joined."""
    return "\n".join(content_text(m) for m in messages if m.get("role") in ("system", "developer"))


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The most recent user message, which is what the reply mostly answers."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message)
    return ""


def keywords(text: str, limit: int = 5) -> list[str]:
    """The first distinct content words of ``text``, in order, without stop words."""
    seen: dict[str, str] = {}
    for word in _WORD.findall(text):
        key = word.lower().strip("'-")
        if len(key) >= 3 and key not in STOPWORDS and key not in seen:
            seen[key] = word.strip("'-")
            if len(seen) == limit:
                break
    return list(seen.values())


def proper_nouns(text: str) -> list[str]:
    """Capitalised words that do not start a sentence: likely names of places or people."""
    found: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        before = text[: match.start()].rstrip()
        starts_sentence = not before or before[-1] in ".!?:\n"
        if word[0].isupper() and not starts_sentence and word.lower() not in STOPWORDS and word not in found:
            found.append(word)
    return found


def sentences(text: str) -> list[str]:
    """Sentences of ``text``, split on end punctuation and line breaks."""
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p.strip(" -*\t") for p in parts if p.strip(" -*\t")]


def estimate_tokens(text: str) -> int:
    """About four characters per token, OpenAI's own rule of thumb for English."""
    return math.ceil(len(text) / 4) if text else 0


def truncate_to_tokens(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose estimate fits in ``budget`` tokens."""
    return text[: max(budget, 0) * 4]


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> int:
    """Prompt size: text estimate plus OpenAI's overhead of ~4 tokens a message, 3 to prime."""
    total = 3 + sum(4 + estimate_tokens(content_text(m)) + (1 if m.get("name") else 0) for m in messages)
    if tools:
        total += estimate_tokens(json.dumps(tools, sort_keys=True))
    return total


def request_digest(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that decides the answer."""
    decisive = {k: v for k, v in body.items() if k not in _DELIVERY_KEYS}
    canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def seeded_rng(digest: str) -> random.Random:
    """A PRNG seeded from a request digest: same request, same choices."""
    return random.Random(int(digest[:16], 16))
