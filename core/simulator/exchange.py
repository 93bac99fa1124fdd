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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from core import clock
from core.simulator import api_error
from core.simulator.chat import chat_completion
from core.simulator.engine import EngineReply, handle
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


def plan_reply(
    config: SimulatorConfig,
    method: str,
    path: str,
    raw_body: bytes,
    *,
    query: str = "",
    request_headers: Mapping[str, str] | None = None,
) -> PlannedReply:
    """Decide the reply to one request: counts the call, applies its fault, asks the engine,
    and adds an answered model call to the billing log (under the calling key's id)."""
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
        query=query,
        billing=config.billing,
    )
    if reply.status == 200:
        _bill(config, path, body, reply, request_headers or {}, call.delay_s)
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


_BILLED = {"/v1/chat/completions": "completions", "/v1/responses": "completions", "/v1/embeddings": "embeddings"}


def _bill(
    config: SimulatorConfig, path: str, body: Any, reply: EngineReply, headers: Mapping[str, str], delay_s: float
) -> None:
    """Count an answered call as the provider would: on the day its answer is complete."""
    kind = _BILLED.get(path.rstrip("/"))
    if kind is None or not isinstance(body, dict):
        return
    usage = _usage_of(path.rstrip("/"), body, reply, config.cached_prompt_fraction)
    if not usage:
        return
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    config.billing.add_usage(
        at=clock.now() + timedelta(seconds=delay_s),
        kind=kind,
        model=str(body.get("model")),
        input_tokens=input_tokens,
        cached_tokens=details.get("cached_tokens") or 0,
        output_tokens=output_tokens,
        project_id={k.lower(): v for k, v in headers.items()}.get("openai-project") or config.project_id,
        api_key=authorization.removeprefix("Bearer ").strip() or None,
    )


def _usage_of(path: str, body: dict[str, Any], reply: EngineReply, cached_fraction: float) -> dict[str, Any] | None:
    if reply.body is not None:
        usage = reply.body.get("usage")
        return usage if isinstance(usage, dict) else None
    for chunk in reversed(reply.chunks or []):
        usage = chunk.get("usage") or (chunk.get("response") or {}).get("usage")
        if isinstance(usage, dict):
            return usage
    if path == "/v1/chat/completions":
        # A stream without include_usage is billed all the same: the same deterministic answer's usage.
        unstreamed = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        usage = chat_completion(unstreamed, cached_fraction=cached_fraction).get("usage")
        return usage if isinstance(usage, dict) else None
    return None


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
