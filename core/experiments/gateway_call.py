"""The experiment engine's ``call`` seam over the gateway: every experiment call is a gateway call.

Each call runs through ``default_gateway().call(...)`` as the person who started the
experiment, for the experiment's team, so the team's model allow-list, guardrails,
budget reservations, call log, usage ledger and audit apply to it exactly as to any other
call. The response cache is bypassed: repetitions must each reach the model.

Errors: an upstream 429 becomes the runner's ``RateLimited`` (its limiter backs off and
retries); a budget refusal mid-run cancels the rest of the run (``stop`` is set) and the
cell that hit it is an error cell; other refusals are that cell's error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.budgets.usage import Usage
from core.errors import BudgetExceeded
from core.experiments.calls import Call, CallResult, Message, RateLimited, ToolCall
from core.gateway.billed_usage import reported_usage
from core.gateway.call_state import Caller
from core.gateway.errors import UpstreamFailed
from core.gateway.pipeline import GatewayRequest
from core.gateway.wiring import default_gateway
from core.permissions import Actor


class BudgetStop(Exception):
    """The budget refused a call mid-run; the run stops here."""


def gateway_call(
    *, actor: Actor, team_id: int, stop: threading.Event | None = None, request_ids: list[str] | None = None
) -> Call:
    """A ``call`` that sends each request through the gateway as ``actor`` for ``team_id``.

    ``request_ids`` (optional) collects the gateway request id of every answered call.
    """
    caller = Caller(actor=actor, team_id=team_id)
    lock = threading.Lock()

    def call(
        messages: Sequence[Message], model: str, params: Mapping[str, Any], tools: Sequence[Mapping[str, Any]] | None
    ) -> CallResult:
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], **dict(params)}
        if tools:
            body["tools"] = [dict(t) for t in tools]
        started = time.perf_counter()
        try:
            response = default_gateway().call(
                caller=caller, request=GatewayRequest(kind="chat", body=body, use_cache=False)
            )
        except BudgetExceeded as error:
            if stop is not None:
                stop.set()
            raise BudgetStop(f"the budget refused the call: {error}") from None
        except UpstreamFailed as error:
            if getattr(error, "status", None) == 429:
                raise RateLimited(None, str(error)) from None
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        if request_ids is not None:
            with lock:
                request_ids.append(response.request_id)
        return result_of(response.body, latency_ms=latency_ms, cost_micro=response.cost_micro)

    return call


def result_of(body: dict[str, Any], *, latency_ms: float, cost_micro: int) -> CallResult:
    """A chat completion body (as the gateway returns it) as the engine's CallResult."""
    choices = body.get("choices") or [{}]
    message = choices[0].get("message") or {}
    # An upstream may report no usage a call can have; the gateway billed an estimate then.
    usage = reported_usage(body.get("usage")) or Usage(input_tokens=0)
    tool_calls = tuple(
        ToolCall((c.get("function") or {}).get("name", ""), (c.get("function") or {}).get("arguments", ""))
        for c in message.get("tool_calls") or ()
        if c.get("function")
    )
    return CallResult(
        text=message.get("content") or "",
        tool_calls=tool_calls,
        usage=usage,
        latency_ms=latency_ms,
        cost_micro=cost_micro,
    )
