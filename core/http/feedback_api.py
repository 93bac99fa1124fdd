"""``POST /v1/feedback``: an application rates an answer (team key auth).

Body ``{"request_id": "req_...", "score": 0..1, "comment": "..."}``; answers 201 with
``{"object": "quorum.feedback", "id": ..., "request_id": ...}``, or an OpenAI-shaped error.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core import db
from core.errors import QuorumError
from core.gateway.feedback import record_feedback
from core.http.call_input import caller_before_body, json_body
from core.http.openai_errors import error_response


async def feedback(request: Request) -> Response:
    try:
        caller = await caller_before_body(request)
        body = await json_body(request)

        def work() -> tuple[int | None, str]:
            with db.write_session() as session:
                row = record_feedback(
                    session=session,
                    actor=caller.actor,
                    team_id=caller.team_id,
                    key_id=caller.key_id,
                    request_id=body.get("request_id"),
                    score=body.get("score"),
                    comment=body.get("comment"),
                )
                return row.id, row.request_id

        feedback_id, request_id = await run_in_threadpool(work)
    except QuorumError as error:
        return error_response(error)
    return JSONResponse({"object": "quorum.feedback", "id": feedback_id, "request_id": request_id}, status_code=201)


def feedback_routes() -> list[Route]:
    return [Route("/v1/feedback", feedback, methods=["POST"])]
