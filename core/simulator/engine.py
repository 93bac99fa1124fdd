"""The simulator's answers as pure functions: a parsed request in, OpenAI-shaped dicts out.

No I/O, no clock, no shared state: the caller passes ``created`` and, if it wants
unique ids, ``response_id``. The transport and the HTTP server both go through
``handle``; tests and tools may call the endpoint functions directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.simulator.api_error import SimulatedAPIError, bad_request, invalid_url, model_not_found
from core.simulator.billing import BillingLog
from core.simulator.catalog import list_models, model_kind, model_object
from core.simulator.chat import SYSTEM_FINGERPRINT, chat_completion, chat_completion_chunks
from core.simulator.embeddings import embeddings
from core.simulator.moderation import moderations
from core.simulator.organization import PATHS as ORGANIZATION_PATHS
from core.simulator.organization import organization_page
from core.simulator.responses import ResponseStore, create_response, response_events, retrieve

__all__ = [
    "SYSTEM_FINGERPRINT",
    "EngineReply",
    "chat_completion",
    "chat_completion_chunks",
    "embeddings",
    "handle",
    "list_models",
    "moderations",
]


@dataclass(frozen=True)
class EngineReply:
    """What to answer: a JSON body, or (for ``stream: true``) the chunks of an SSE stream."""

    status: int
    body: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] | None = None


def handle(
    method: str,
    path: str,
    body: object,
    *,
    created: int = 0,
    response_id: str | None = None,
    cached_fraction: float = 0.0,
    store: ResponseStore | None = None,
    query: str = "",
    billing: BillingLog | None = None,
) -> EngineReply:
    """Route one request. ``path`` is the URL path (``/v1/...``); ``body`` the parsed JSON
    (``None`` for GET); ``query`` the URL's query string. Refusals come back as replies
    carrying OpenAI's error body. The organization's usage and costs come from ``billing``."""
    try:
        if method.upper() == "GET" and path.rstrip("/") in ORGANIZATION_PATHS:
            return EngineReply(200, organization_page(billing or BillingLog(), path.rstrip("/"), query))
        return _route(
            method.upper(),
            path.rstrip("/"),
            body,
            created,
            response_id,
            cached_fraction,
            store if store is not None else ResponseStore(),
        )
    except SimulatedAPIError as error:
        return EngineReply(status=error.status, body=error.body())


def _route(
    method: str,
    path: str,
    body: object,
    created: int,
    response_id: str | None,
    cached_fraction: float,
    store: ResponseStore,
) -> EngineReply:
    if method == "GET" and path == "/v1/models":
        return EngineReply(200, list_models())
    if method == "GET" and path.startswith("/v1/models/"):
        name = path.removeprefix("/v1/models/")
        if model_kind(name) is None:
            raise model_not_found(name)
        return EngineReply(200, model_object(name))
    if method == "GET" and path.startswith("/v1/responses/"):
        return EngineReply(200, retrieve(store, path.removeprefix("/v1/responses/")))
    endpoints = {"/v1/chat/completions", "/v1/embeddings", "/v1/moderations", "/v1/responses"}
    if method != "POST" or path not in endpoints:
        raise invalid_url(method, path)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    if path == "/v1/embeddings":
        return EngineReply(200, embeddings(body))
    if path == "/v1/moderations":
        return EngineReply(200, moderations(body))
    if path == "/v1/responses":
        if body.get("stream"):
            return EngineReply(
                200, chunks=response_events(body, store=store, created=created, cached_fraction=cached_fraction)
            )
        return EngineReply(200, create_response(body, store=store, created=created, cached_fraction=cached_fraction))
    if body.get("stream"):
        return EngineReply(
            200,
            chunks=chat_completion_chunks(
                body, created=created, response_id=response_id, cached_fraction=cached_fraction
            ),
        )
    return EngineReply(
        200, chat_completion(body, created=created, response_id=response_id, cached_fraction=cached_fraction)
    )
