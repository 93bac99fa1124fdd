"""One HTTP exchange with the simulator, independent of how it is carried.

``plan_reply`` turns raw request bytes into a ``PlannedReply``: status, headers, the
body as a list of byte parts, and what the carrier must do about time and faults
(wait, hang, cut the connection). The httpx transport and the Starlette server each
carry out the same plan, so they cannot drift apart.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

from core import clock
from core.simulator import api_error
from core.simulator.engine import handle
from core.simulator.faults import SimulatorConfig

SIMULATED_HEADER = "x-quorum-simulated"


@dataclass(frozen=True)
class PlannedReply:
    """What to send back and how. ``drop_after`` is the number of body parts sent before
    the connection is cut (``None``: send everything)."""

    status: int
    headers: dict[str, str]
    parts: list[bytes]
    delay_s: float = 0.0
    hang_s: float = 0.0
    drop_after: int | None = None

    @property
    def is_stream(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")


def plan_reply(config: SimulatorConfig, method: str, path: str, raw_body: bytes) -> PlannedReply:
    """Decide the reply to one request: counts the call, applies its fault, asks the engine."""
    call = config.next_call()
    request_id = f"req_{uuid.uuid4().hex}"
    headers = {
        SIMULATED_HEADER: "true",
        "x-request-id": request_id,
        "openai-processing-ms": str(round(call.delay_s * 1000)),
    }

    if call.fault == "429":
        seconds = config.retry_after_s
        headers.update({"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(round(seconds * 1000))})
        return _json_reply(429, api_error.rate_limited(seconds).body(), headers, call.delay_s)
    if call.fault == "500":
        return _json_reply(500, api_error.server_error().body(), headers, call.delay_s)

    if not config.serves_moderation and path.rstrip("/").endswith("/moderations"):
        return _json_reply(404, api_error.invalid_url(method.upper(), path).body(), headers, call.delay_s)

    body = None
    if method.upper() == "POST":
        try:
            body = json.loads(raw_body or b"")
        except (ValueError, UnicodeDecodeError):
            error = api_error.bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)"
            )
            return _json_reply(400, error.body(), headers, call.delay_s)

    reply = handle(
        method,
        path,
        body,
        created=int(clock.now().timestamp()),
        response_id=f"chatcmpl-{uuid.uuid4().hex[:29]}",
        cached_fraction=config.cached_prompt_fraction,
        store=config.stored_responses,
    )
    if reply.chunks is not None:
        headers.update({"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        parts = [_event(chunk) for chunk in reply.chunks]
        if not _is_typed_event(reply.chunks[0]):
            parts.append(b"data: [DONE]\n\n")  # Chat Completions' end; the Responses API ends on its last event
        planned = PlannedReply(200, headers, parts, delay_s=call.delay_s)
    else:
        planned = _json_reply(reply.status, reply.body, headers, call.delay_s)

    if call.fault == "timeout":
        return replace(planned, hang_s=config.timeout_s)
    if call.fault == "drop_stream" and planned.status == 200:
        if planned.is_stream:
            return replace(planned, drop_after=min(config.drop_after_chunks, len(planned.parts) - 1))
        whole = planned.parts[0]
        return replace(planned, parts=[whole[: len(whole) // 2], whole[len(whole) // 2 :]], drop_after=1)
    return planned


def _is_typed_event(chunk: dict[str, Any]) -> bool:
    return str(chunk.get("type", "")).startswith("response.")


def _event(chunk: dict[str, Any]) -> bytes:
    # The Responses API names each event (``event: response.output_text.delta``); chat chunks are data only.
    name = f"event: {chunk['type']}\n" if _is_typed_event(chunk) else ""
    return f"{name}data: {json.dumps(chunk)}\n\n".encode()


def _json_reply(status: int, body: dict[str, Any] | None, headers: dict[str, str], delay_s: float) -> PlannedReply:
    payload = json.dumps(body).encode()
    headers = {**headers, "content-type": "application/json"}
    return PlannedReply(status, headers, [payload], delay_s=delay_s)
