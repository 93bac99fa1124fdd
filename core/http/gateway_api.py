"""The gateway's OpenAI-compatible HTTP API, authenticated by team keys (Bearer).

The routes: chat completions, responses (and a stored response), embeddings, moderations,
prompts by name, models, and held requests. What a call brings is read by
core.http.call_input (the key before the body); refusals are answered in OpenAI's shape by
core.http.openai_errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from core import db
from core.errors import QuorumError
from core.gateway import answer_json, rate_limits, validation
from core.gateway.held import held_for_team
from core.gateway.pipeline import GatewayRequest, GatewayStream, PromptCall
from core.gateway.wiring import default_gateway
from core.http.call_input import caller_before_body, json_body, request_caller
from core.http.call_threads import in_call_thread
from core.http.openai_errors import NO_RETRY, error_response, internal_error, openai_error

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
