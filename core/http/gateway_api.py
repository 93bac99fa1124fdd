"""The gateway's OpenAI-compatible HTTP API, authenticated by team keys (Bearer).

Errors come in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``:
401 bad/revoked/expired key or address not allowed (``invalid_api_key``), 403 model not
allowed (``model_not_allowed``) or without a price (``model_not_priced``: fail closed), 429
budget exhausted (``budget_exceeded``) or a rate limit reached (``rate_limit_exceeded``, typed
``requests`` or ``tokens`` as OpenAI's, with ``retry-after``), 400 blocked by a guardrail (``guardrail_blocked``,
``param`` names the rule), 502/504 upstream failure. A request held for review gets 202 with
``{"object": "quorum.held_request", "id": "held_...", "status": "pending"}``; poll
``GET /v1/held/{id}``.

A malformed body is a 400 ``invalid_request`` whose ``param`` names the parameter at fault
(checked against the openai SDK's own request types, core.gateway.validation). A refusal
that retrying cannot change carries ``x-should-retry: false``, which the openai SDKs obey,
so an application over budget sees the error at once instead of after its retries; one
that waiting fixes (a budget period ending within a minute, the upstream's rate limit, an
open circuit breaker) carries ``retry-after`` instead. A defect in the gateway is a JSON
500 ``internal_error`` with the request id, logged without the request body.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any, cast

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from core import clock, db
from core.errors import BudgetExceeded, NotFound, PermissionDenied, QuorumError, Unauthenticated, ValidationError
from core.gateway import answer_json, rate_limits, validation
from core.gateway.errors import (
    GuardrailBlocked,
    HeldForReview,
    ModelNotAllowed,
    ModelNotPriced,
    RateLimited,
    RequestTooLarge,
    UpstreamFailed,
    UpstreamTimeout,
)
from core.gateway.held import held_for_team
from core.gateway.key_networks import network_of
from core.gateway.moderation import ModerationUnavailable
from core.gateway.pipeline import Caller, GatewayRequest, GatewayStream, PromptCall
from core.gateway.wiring import default_gateway
from core.http.call_threads import in_call_thread
from core.http.client_address import client_address
from core.identity import keys
from core.settings import settings

_log = logging.getLogger("quorum.http")

# The openai SDKs honour these: "false" stops their retries; retry-after (seconds, up to a
# minute) replaces their own backoff.
NO_RETRY = {"x-should-retry": "false"}
# A budget period that ends within this is worth waiting for; a later one is not.
RETRY_WITHIN_S = 60


def openai_error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def error_response(error: Exception, request_id: str | None = None) -> Response:
    request_id = request_id or getattr(error, "request_id", None)
    ids = {"x-request-id": request_id} if request_id else {}
    final = {**ids, **NO_RETRY}
    if isinstance(error, HeldForReview):
        return JSONResponse(
            {
                "object": "quorum.held_request",
                "id": error.held_id,
                "status": "pending",
                "request_id": error.request_id,
                "message": str(error),
                "poll": f"/v1/held/{error.held_id}",
            },
            status_code=202,
            headers={"x-request-id": error.request_id, "x-quorum-held": error.held_id},
        )
    if isinstance(error, Unauthenticated):
        return openai_error(401, str(error), type_="invalid_request_error", code="invalid_api_key", headers=final)
    if isinstance(error, ModelNotPriced):
        return openai_error(
            403, str(error), type_="invalid_request_error", code="model_not_priced", param="model", headers=final
        )
    if isinstance(error, ModelNotAllowed):
        return openai_error(
            403, str(error), type_="invalid_request_error", code="model_not_allowed", param="model", headers=final
        )
    if isinstance(error, PermissionDenied):
        return openai_error(403, str(error), type_="invalid_request_error", code="permission_denied", headers=final)
    if isinstance(error, RateLimited):
        return openai_error(
            429, str(error), type_=error.measure, code="rate_limit_exceeded", headers={**ids, **_rate_retry(error)}
        )
    if isinstance(error, BudgetExceeded):
        return openai_error(
            429, str(error), type_="insufficient_quota", code="budget_exceeded", headers={**ids, **_budget_retry(error)}
        )
    if isinstance(error, GuardrailBlocked):
        return openai_error(
            400,
            str(error),
            type_="invalid_request_error",
            code="guardrail_blocked",
            param=error.rule,
            headers={"x-request-id": error.request_id, **NO_RETRY},
        )
    if isinstance(error, NotFound):
        return openai_error(404, str(error), type_="invalid_request_error", code="not_found", headers=final)
    if isinstance(error, RequestTooLarge):
        return openai_error(413, str(error), type_="invalid_request_error", code=error.code, headers=final)
    if isinstance(error, ValidationError):
        return openai_error(
            400,
            str(error),
            type_="invalid_request_error",
            code=getattr(error, "code", None) or "invalid_request",
            param=getattr(error, "param", None),
            headers=final,
        )
    if isinstance(error, UpstreamTimeout):
        return openai_error(504, str(error), type_="api_error", code="upstream_timeout", headers=ids or None)
    if isinstance(error, ModerationUnavailable):
        return openai_error(error.status, str(error), type_="api_error", code=error.code, headers=final)
    if isinstance(error, UpstreamFailed):
        type_ = "invalid_request_error" if error.status < 500 else "api_error"
        headers = dict(ids)
        retry_after_s: float | None = getattr(error, "retry_after_s", None)
        if retry_after_s is not None:
            headers["retry-after"] = str(max(1, round(retry_after_s)))
        elif 400 <= error.status < 500 and error.status not in (408, 409, 429):
            headers.update(NO_RETRY)  # the provider refused the request itself: the same request fails again
        return openai_error(
            error.status,
            str(error),
            type_=type_,
            code=error.code or "upstream_error",
            param=error.param,
            headers=headers or None,
        )
    return internal_error(error, request_id)


def _budget_retry(error: BudgetExceeded) -> dict[str, str]:
    """retry-after when the budget's period ends within a minute, else no retry at all."""
    resets_at: datetime | None = getattr(error, "resets_at", None)
    if resets_at is None:
        return dict(NO_RETRY)
    seconds = (resets_at - clock.now()).total_seconds()
    if seconds > RETRY_WITHIN_S:
        return {**NO_RETRY, "retry-after": str(round(seconds))}  # for people: when to come back
    return {"retry-after": str(max(1, round(seconds + 0.5)))}


def _rate_retry(error: RateLimited) -> dict[str, str]:
    """The x-ratelimit-* headers, and when to retry: the window's end (both in seconds and in
    milliseconds, which the openai SDKs prefer), or never for a request above the whole limit."""
    if error.retry_after_s is None:
        return {**error.headers, **NO_RETRY}
    return {
        **error.headers,
        "retry-after": str(max(1, math.ceil(error.retry_after_s))),
        "retry-after-ms": str(max(1, math.ceil(error.retry_after_s * 1000))),
    }


def internal_error(error: BaseException, request_id: str | None = None) -> JSONResponse:
    """A defect: a JSON 500 with an id to quote, and a log line with where it happened.

    The log gets the exception's type and its stack frames, not its message, which may
    quote the request (a prompt, a secret); the client gets neither."""
    request_id = request_id or getattr(error, "request_id", None) or f"req_{uuid.uuid4().hex[:24]}"
    frames = "".join(traceback.format_tb(error.__traceback__)[-4:]).replace("\n", " | ")
    _log.error("gateway: internal error %s in request %s at %s", type(error).__name__, request_id, frames)
    return openai_error(
        500,
        f"Internal error in the gateway; quote request id {request_id} when reporting it",
        type_="api_error",
        code="internal_error",
        headers={"x-request-id": request_id},
    )


def request_caller(request: Request) -> Caller:
    """The caller behind the request's key (in a call thread: it may read the database)."""
    # From the process's short-lived copy of the key: no database read on most calls.
    address = client_address(request)
    return Caller.for_key(keys.authenticate(_secret(request), client_ip=address), network=network_of(address))


async def caller_before_body(request: Request) -> Caller:
    """The caller behind the request's key, known before the body is read: a client without a
    valid key cannot make a server read, parse and hold a body (the cap below bounds what a
    key holder can send). From the process's copy of the key in the event loop, which costs
    no thread; a key not in the copy is read in a call thread."""
    address = client_address(request)
    secret = _secret(request)
    identity = keys.known_identity(secret, client_ip=address)
    if identity is None:
        identity = await in_call_thread(lambda: keys.authenticate(secret, client_ip=address))
    return Caller.for_key(identity, network=network_of(address))


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


async def json_body(request: Request) -> dict[str, Any]:
    return validation.parse_body(await _capped_body(request) or b"{}")


async def _capped_body(request: Request) -> bytes:
    """The request's body, refused (413) as soon as it is known to pass QUORUM_MAX_REQUEST_BYTES:
    by its Content-Length before anything is read, or while it streams in (chunked)."""
    limit = settings().max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


RequestMaker = Callable[[Request, dict[str, Any]], GatewayRequest]


async def _run(request: Request, make_request: RequestMaker) -> Response:
    # The x-ratelimit-* headers of a call that was admitted (or refused) by a rate limit,
    # sent with whatever the call answers.
    limits: dict[str, str] = {}
    try:
        caller = await caller_before_body(request)
        body = await json_body(request)
        gateway_request = make_request(request, body)

        def work() -> Any:  # a GatewayResponse, or a GatewayStream for a streamed call
            with rate_limits.headers_into(limits):
                return default_gateway().call(caller=caller, request=gateway_request)

        result = await in_call_thread(work)
    except QuorumError as error:
        return _with(error_response(error), limits)
    except Exception as error:  # noqa: BLE001 - a defect still answers in OpenAI's shape
        return _with(internal_error(error), limits)
    if isinstance(result, GatewayStream):
        return _SSE(result, limits)
    headers = {
        "x-request-id": result.request_id,
        "x-quorum-cache": "hit" if result.cache_hit else "miss",
        **limits,
    }
    if result.simulated:
        headers["x-quorum-simulated"] = "true"
    if result.body_json is not None:
        return Response(result.body_json, media_type="application/json", headers=headers)
    return JSONResponse(result.body, headers=headers)


def _with(response: Response, headers: dict[str, str]) -> Response:
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


class _SSE(StreamingResponse):
    """Server-sent events of a GatewayStream; the stream is closed (and settled) whatever happens."""

    def __init__(self, stream: GatewayStream, extra_headers: dict[str, str]) -> None:
        self.gateway_stream = stream
        headers = {"x-request-id": stream.request_id, "cache-control": "no-cache", **extra_headers}
        if stream.simulated:
            headers["x-quorum-simulated"] = "true"
        super().__init__(self._events(), media_type="text/event-stream", headers=headers)

    async def _events(self) -> AsyncIterator[str]:
        iterator: Iterator[dict[str, Any]] = iter(self.gateway_stream)
        end = object()
        # The Responses API names each event and ends on its last one; chat ends with [DONE].
        typed = self.gateway_stream.call.kind == "responses"
        try:
            while True:
                chunk = await run_in_threadpool(next, iterator, end)
                if chunk is end:
                    break
                event = cast(dict[str, Any], chunk)
                name = f"event: {event.get('type')}\n" if typed else ""
                yield f"{name}data: {answer_json.dumps(chunk)}\n\n"
        except QuorumError as error:
            body = json.loads(bytes(error_response(error).body))
            yield f"{'event: error' + chr(10) if typed else ''}data: {json.dumps(body)}\n\n"
            return
        except Exception as error:  # noqa: BLE001 - the headers are sent: end with an error event
            body = json.loads(bytes(internal_error(error, self.gateway_stream.request_id).body))
            yield f"{'event: error' + chr(10) if typed else ''}data: {json.dumps(body)}\n\n"
            return
        if not typed:
            yield "data: [DONE]\n\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that left midway: settle with what it received (no-op when finished).
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.gateway_stream.close)


async def answer_call(request: Request, kind: str) -> Response:
    """The answer to a call of this kind ("chat", "responses", "embeddings", "moderations")
    whose body is the request's (core.http.call_path serves these before the router)."""
    return await _run(request, lambda _r, body: GatewayRequest(kind=kind, body=body))


async def chat_completions(request: Request) -> Response:
    return await answer_call(request, "chat")


async def embeddings(request: Request) -> Response:
    return await answer_call(request, "embeddings")


async def responses_create(request: Request) -> Response:
    return await answer_call(request, "responses")


async def responses_retrieve(request: Request) -> Response:
    def work() -> dict[str, Any]:
        response_id = validation.check_path_text(request.path_params["response_id"], "response_id")
        return default_gateway().retrieve_response(caller=request_caller(request), response_id=response_id)

    try:
        body = await run_in_threadpool(work)
    except QuorumError as error:
        return error_response(error)
    return JSONResponse(body)


async def moderations(request: Request) -> Response:
    return await answer_call(request, "moderations")


async def prompt_completions(request: Request) -> Response:
    def make(req: Request, body: dict[str, Any]) -> GatewayRequest:
        validation.check_delivery(body)
        variables = body.get("variables") or {}
        delivery: dict[str, Any] = {k: body[k] for k in ("stream", "stream_options", "user") if k in body}
        return GatewayRequest(
            kind="chat",
            body=delivery,
            prompt=PromptCall(
                name=validation.check_path_text(req.path_params["name"], "name"),
                variables=variables,
                label=body.get("label"),
            ),
        )

    return await _run(request, make)


async def _team_models(request: Request) -> list[str] | Response:
    """The models the calling key's team may use, or the error answer."""
    try:
        caller = await run_in_threadpool(request_caller, request)
        return await run_in_threadpool(default_gateway().allowed_models, caller.team_id)
    except QuorumError as error:
        return error_response(error)
    except Exception as error:  # noqa: BLE001
        return internal_error(error)


async def models(request: Request) -> Response:
    names = await _team_models(request)
    if isinstance(names, Response):
        return names
    return JSONResponse({"object": "list", "data": [_model(name) for name in names]})


async def model(request: Request) -> Response:
    """One model the team may use, as OpenAI describes it; 404 ``model_not_found`` otherwise."""
    model_id = request.path_params["model_id"]
    names = await _team_models(request)
    if isinstance(names, Response):
        return names
    if model_id not in names:
        return openai_error(
            404,
            f"The model '{model_id}' does not exist or this team may not use it",
            type_="invalid_request_error",
            code="model_not_found",
            param="model",
            headers=NO_RETRY,
        )
    return JSONResponse(_model(model_id))


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "quorum"}


async def held(request: Request) -> Response:
    def work() -> tuple[Any, dict[str, Any] | None]:
        public_id = validation.check_path_text(request.path_params["held_id"], "held_id")
        caller = request_caller(request)
        response = default_gateway().answer_released(caller=caller, public_id=public_id)
        with db.session() as session:
            view = held_for_team(session, team_id=caller.team_id, public_id=public_id)
        return view, response

    try:
        view, response = await run_in_threadpool(work)
    except QuorumError as error:
        return error_response(error)
    except Exception as error:  # noqa: BLE001
        return internal_error(error)
    return JSONResponse(
        {
            "object": "quorum.held_request",
            "id": view.public_id,
            "status": view.status,
            "request_id": view.request_id,
            "rule": view.rule,
            "comment": view.comment or None,
            "response": response if view.status == "released" else None,
        }
    )


def gateway_routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/responses", responses_create, methods=["POST"]),
        Route("/v1/responses/{response_id}", responses_retrieve, methods=["GET"]),
        Route("/v1/moderations", moderations, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/v1/prompts/{name}/completions", prompt_completions, methods=["POST"]),
        Route("/v1/held/{held_id}", held, methods=["GET"]),
    ]
