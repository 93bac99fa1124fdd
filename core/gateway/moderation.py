"""Where a call's moderation verdict comes from: the upstream's ``/v1/moderations``, or the
in-process keyword check (core.guardrails.local_moderation), as the team's policy says.

Many OpenAI-compatible servers (vLLM, Ollama, most mocks) have no moderation endpoint.
Asking one anyway would fail every call with the upstream's 404, which reads as "model
not found". So the gateway finds out (a probe at start, and the first 404 from the
endpoint) and remembers it on the Upstream; Home and ``/healthz`` say so. A team on
``upstream`` moderation is then refused with a 503 that names the policy and how to
change it, unless an admin chose ``upstream_or_local`` (or ``local``) for it.

Upstream verdicts are kept in a bounded in-process LRU by content hash: the same prompt
(a system message, a frequent question) is not sent for moderation on every call.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from core.gateway import responses
from core.gateway.errors import UpstreamFailed
from core.guardrails import local_moderation

MODERATION_MODEL = "omni-moderation-latest"
PROVIDERS = ("upstream", "upstream_or_local", "local")
PROVIDER_LABELS = {
    "upstream": "the upstream's /v1/moderations (OpenAI's moderation model)",
    "upstream_or_local": "the upstream's, or the local keyword check when the upstream has none",
    "local": "the local keyword check only (in process; catches explicit phrasings, not a classifier)",
}
HOW_TO_CHANGE = (
    "an admin can choose the local keyword check or turn moderation off for the team in "
    "Budgets & prices > Team policies"
)

# Upstream.moderation_endpoint values
UNKNOWN, AVAILABLE, MISSING = "unknown", "available", "missing"


class ModerationUnavailable(UpstreamFailed):
    """The team's policy needs the upstream's moderation, which the upstream does not have (503)."""

    status = 503


class VerdictCache:
    """The last ``size`` upstream verdicts, by a hash of the model and the texts."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(texts: list[str]) -> str:
        digest = hashlib.sha256(MODERATION_MODEL.encode())
        for text in texts:
            digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def get(self, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: str, results: list[dict[str, Any]]) -> None:
        with self._lock:
            self._entries[key] = results
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def probe(upstream) -> str:
    """Ask the upstream's moderation endpoint once and remember whether it has one."""
    try:
        upstream.moderate(["ping"], MODERATION_MODEL)
    except UpstreamFailed as error:
        if error.status == 404:
            upstream.moderation_endpoint = MISSING
        return upstream.moderation_endpoint
    upstream.moderation_endpoint = AVAILABLE
    return AVAILABLE


def verdicts(
    upstream, cache: VerdictCache, texts: list[str], provider: str, moderation_action: str
) -> list[dict[str, Any]]:
    """The moderation results for ``texts`` from the source the team's policy names."""
    if provider == "local":
        return local_moderation.moderate(texts)
    if upstream.moderation_endpoint == MISSING:
        return _without_upstream(texts, provider, moderation_action)
    key = cache.key(texts)
    found = cache.get(key)
    if found is not None:
        return found
    try:
        results = upstream.moderate(texts, MODERATION_MODEL)
    except UpstreamFailed as error:
        if error.status != 404:
            raise
        upstream.moderation_endpoint = MISSING
        return _without_upstream(texts, provider, moderation_action)
    upstream.moderation_endpoint = AVAILABLE
    cache.put(key, results)
    return results


def _without_upstream(texts: list[str], provider: str, moderation_action: str) -> list[dict[str, Any]]:
    if provider == "upstream_or_local":
        return local_moderation.moderate(texts)
    raise ModerationUnavailable(
        f"The team's policy moderates every call with the upstream's moderation (moderation: {moderation_action}, "
        "provider: upstream), but the upstream model server answers 404 there (no moderation endpoint or model); "
        f"{HOW_TO_CHANGE}",
        code="moderation_unavailable",
    )


def moderated_messages(kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """What moderation reads: a chat's messages, a Responses request's text slots, or the texts of ``input``."""
    if kind == "chat":
        return list(body["messages"])
    if kind == "responses":
        return responses.scan_messages(body)  # one message per text slot, tools included
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given if isinstance(given, list) else []
    return [{"role": "user", "content": text} for text in texts if isinstance(text, str)]
