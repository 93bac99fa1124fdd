"""The gateway's OpenAI-compatible HTTP API, authenticated by team keys (Bearer).

Errors come in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``:
401 bad/revoked/expired key or address not allowed (``invalid_api_key``), 403 model not
allowed (``model_not_allowed``) or without a price (``model_not_priced``: fail closed), 429 budget exhausted (``budget_exceeded``), 400 blocked
by a guardrail (``guardrail_blocked``, ``param`` names the rule), 502/504 upstream
failure. A request held for review gets 202 with ``{"object": "quorum.held_request",
"id": "held_...", "status": "pending"}``; poll ``GET /v1/held/{id}``.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core import db, keys
from core.errors import BudgetExceeded, NotFound, PermissionDenied, QuorumError, ValidationError
from core.gateway.errors import (GuardrailBlocked, HeldForReview, ModelNotAllowed, ModelNotPriced, Unauthenticated,
                                 UpstreamFailed, UpstreamTimeout)
from core.gateway.pipeline import Caller, GatewayRequest, GatewayStream, PromptCall
from core.gateway.wiring import default_gateway
from core.http.client_address import client_address
from core.review_requests import held_for_team


def openai_error(status: int, message: str, *, type_: str, code: str | None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status, headers=headers)


def error_response(error: Exception, request_id: str | None = None) -> Response:
    request_id = request_id or getattr(error, "request_id", None)
    headers = {"x-request-id": request_id} if request_id else None
    if isinstance(error, HeldForReview):
        return JSONResponse({"object": "quorum.held_request", "id": error.held_id, "status": "pending",
                             "request_id": error.request_id, "message": str(error),
                             "poll": f"/v1/held/{error.held_id}"}, status_code=202,
                            headers={"x-request-id": error.request_id, "x-quorum-held": error.held_id})
    if isinstance(error, Unauthenticated):
        return openai_error(401, str(error), type_="invalid_request_error", code="invalid_api_key", headers=headers)
    if isinstance(error, ModelNotPriced):
        return openai_error(403, str(error), type_="invalid_request_error", code="model_not_priced",
                            param="model", headers=headers)
    if isinstance(error, ModelNotAllowed):
        return openai_error(403, str(error), type_="invalid_request_error", code="model_not_allowed",
                            param="model", headers=headers)
    if isinstance(error, PermissionDenied):
        return openai_error(403, str(error), type_="invalid_request_error", code="permission_denied", headers=headers)
    if isinstance(error, BudgetExceeded):
        return openai_error(429, str(error), type_="insufficient_quota", code="budget_exceeded", headers=headers)
    if isinstance(error, GuardrailBlocked):
        return openai_error(400, str(error), type_="invalid_request_error", code="guardrail_blocked",
                            param=error.rule, headers={"x-request-id": error.request_id})
    if isinstance(error, NotFound):
        return openai_error(404, str(error), type_="invalid_request_error", code="not_found", headers=headers)
    if isinstance(error, ValidationError):
        return openai_error(400, str(error), type_="invalid_request_error", code="invalid_request", headers=headers)
    if isinstance(error, UpstreamTimeout):
        return openai_error(504, str(error), type_="api_error", code="upstream_timeout", headers=headers)
    if isinstance(error, UpstreamFailed):
        type_ = "invalid_request_error" if error.status < 500 else "api_error"
        return openai_error(error.status, str(error), type_=type_, code=error.code or "upstream_error", headers=headers)
    return openai_error(500, "Internal error in the gateway", type_="api_error", code="internal_error")


def _caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    secret = header[7:].strip() if header.lower().startswith("bearer ") else None
    # A pooled Connection, no ORM session: this read runs before every gateway call.
    with db.get_engine().connect() as connection:
        identity = keys.authenticate(connection, secret, client_ip=client_address(request))
    return Caller.for_key(identity)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ValidationError("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object")
    return body


async def _run(request: Request, make_request) -> Response:
    try:
        body = await _json_body(request)
        gateway_request = make_request(request, body)

        def work():
            caller = _caller(request)
            return default_gateway().call(caller=caller, request=gateway_request)

        result = await run_in_threadpool(work)
    except QuorumError as error:
        return error_response(error)
    if isinstance(result, GatewayStream):
        return _SSE(result)
    headers = {"x-request-id": result.request_id, "x-quorum-cache": "hit" if result.cache_hit else "miss"}
    if result.simulated:
        headers["x-quorum-simulated"] = "true"
    if result.body_json is not None:
        return Response(result.body_json, media_type="application/json", headers=headers)
    return JSONResponse(result.body, headers=headers)


class _SSE(StreamingResponse):
    """Server-sent events of a GatewayStream; the stream is closed (and settled) whatever happens."""

    def __init__(self, stream: GatewayStream) -> None:
        self.gateway_stream = stream
        headers = {"x-request-id": stream.request_id, "cache-control": "no-cache"}
        if stream.simulated:
            headers["x-quorum-simulated"] = "true"
        super().__init__(self._events(), media_type="text/event-stream", headers=headers)

    async def _events(self):
        iterator = iter(self.gateway_stream)
        end = object()
        try:
            while True:
                chunk = await run_in_threadpool(next, iterator, end)
                if chunk is end:
                    break
                yield f"data: {json.dumps(chunk)}\n\n"
        except QuorumError as error:
            body = json.loads(error_response(error).body)
            yield f"data: {json.dumps(body)}\n\n"
            return
        yield "data: [DONE]\n\n"

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that left midway: settle with what it received (no-op when finished).
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.gateway_stream.close)


async def chat_completions(request: Request) -> Response:
    return await _run(request, lambda _r, body: GatewayRequest(kind="chat", body=body))


async def embeddings(request: Request) -> Response:
    return await _run(request, lambda _r, body: GatewayRequest(kind="embeddings", body=body))


async def prompt_completions(request: Request) -> Response:
    def make(req: Request, body: dict[str, Any]) -> GatewayRequest:
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ValidationError("'variables' must be an object of the prompt's variables")
        delivery = {k: body[k] for k in ("stream", "stream_options", "user") if k in body}
        return GatewayRequest(kind="chat", body=delivery,
                              prompt=PromptCall(name=req.path_params["name"], variables=variables,
                                                label=body.get("label")))
    return await _run(request, make)


async def models(request: Request) -> Response:
    try:
        caller = await run_in_threadpool(_caller, request)
    except QuorumError as error:
        return error_response(error)
    names = default_gateway().allowed_models(caller.team_id)
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "quorum"} for name in names]})


async def held(request: Request) -> Response:
    public_id = request.path_params["held_id"]

    def work():
        caller = _caller(request)
        response = default_gateway().answer_released(caller=caller, public_id=public_id)
        with db.session() as session:
            view = held_for_team(session, team_id=caller.team_id, public_id=public_id)
        return view, response

    try:
        view, response = await run_in_threadpool(work)
    except QuorumError as error:
        return error_response(error)
    return JSONResponse({"object": "quorum.held_request", "id": view.public_id, "status": view.status,
                         "request_id": view.request_id, "rule": view.rule, "comment": view.comment or None,
                         "response": response if view.status == "released" else None})


def gateway_routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/prompts/{name}/completions", prompt_completions, methods=["POST"]),
        Route("/v1/held/{held_id}", held, methods=["GET"]),
    ]
