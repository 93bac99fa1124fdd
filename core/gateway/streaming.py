"""Streamed answers: chunks pass through to the caller, and the call settles once at the end."""

from __future__ import annotations

import threading

from core.budgets.tokens import text_tokens_estimate
from core.budgets.usage import Usage
from core.gateway import responses
from core.gateway.billed_usage import capped, estimated_input_tokens, reported_usage
from core.gateway.call_state import CallState
from core.gateway.errors import UpstreamFailed
from core.gateway.held import new_hold
from core.gateway.ports import BudgetGate
from core.gateway.redaction import finding_summary, redact_text
from core.gateway.settle import settle
from core.gateway.upstream import UpstreamStream
from core.guardrails import scan_output


class GatewayStream:
    """The chunks of a streamed answer, as dicts; settles once when the stream ends or is closed.

    A client that leaves midway makes the caller ``close()`` the stream: the upstream
    connection is closed (the provider stops generating) and the call is settled with
    what was received: output tokens estimated from the text received, input tokens
    estimated offline (the real counts arrive only in the final usage chunk, which never
    came). Such rows are marked ``usage_estimated``.
    """

    def __init__(self, budget: BudgetGate, call: CallState, upstream: UpstreamStream, wants_usage: bool) -> None:
        self.budget, self.call, self.upstream, self.wants_usage = budget, call, upstream, wants_usage
        self.request_id = call.request_id
        self.simulated = call.simulated
        self._texts: dict[int, list[str]] = {}
        self._usage: Usage | None = None
        self._chunks = 0
        self._settled = False
        self._lock = threading.Lock()

    def __iter__(self):
        try:
            for chunk in self.upstream:
                if self.call.kind == "responses":
                    self._read_event(chunk)
                    yield chunk
                    continue
                self._chunks += 1
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        self._texts.setdefault(choice.get("index", 0), []).append(delta["content"])
                    for tool_call in delta.get("tool_calls") or ():
                        arguments = (tool_call.get("function") or {}).get("arguments")
                        if arguments:
                            self._texts.setdefault(choice.get("index", 0), []).append(arguments)
                if chunk.get("usage"):
                    self._usage = reported_usage(chunk["usage"])
                    if not self.wants_usage:
                        continue  # we asked for it; the caller did not
                yield chunk
        except UpstreamFailed:
            self._finish(complete=False)
            raise
        except Exception as error:  # noqa: BLE001 - a dropped upstream mid-stream
            self._finish(complete=False)
            raise UpstreamFailed(f"The model provider's stream broke off: {type(error).__name__}") from None
        self._finish(complete=True)

    def _read_event(self, event: dict) -> None:
        """A Responses API event: text deltas count as received, the final event carries the usage."""
        kind = event.get("type")
        if kind in responses.TEXT_DELTAS and isinstance(event.get("delta"), str):
            self._texts.setdefault(event.get("output_index", 0), []).append(event["delta"])
            self._chunks += 1  # a delta is at least one token, whatever its text
        elif kind == "response.created":
            response_id = (event.get("response") or {}).get("id")
            if isinstance(response_id, str):
                self.call.response_id = response_id[:80]
        elif kind in responses.FINAL_EVENTS and (event.get("response") or {}).get("usage"):
            self._usage = reported_usage(event["response"]["usage"])

    def close(self) -> None:
        """Stop early (the client left): close the upstream and settle with what was received."""
        if not self._settled:
            try:
                self.upstream.close()
            finally:
                self._finish(complete=False)

    def _finish(self, *, complete: bool) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        call = self.call
        text = "".join("".join(parts) for parts in self._texts.values())
        estimated = self._usage is None
        if estimated:
            usage = Usage(
                input_tokens=estimated_input_tokens(call.kind, call.sent or {}),
                output_tokens=capped(
                    max(text_tokens_estimate(text), self._chunks),
                    call.reservation.granted_max_tokens if call.reservation is not None else None,
                ),
            )
        else:
            usage = self._usage
        cost = self.budget.cost_micro(call.reservation, call.model, usage)
        policy = call.policy
        stream_object = "response.stream" if call.kind == "responses" else "chat.completion.stream"
        response = {"object": stream_object, "complete": complete, "content": redact_text(text, policy)}
        hold = None
        verdict = scan_output(text, policy)
        if verdict.decision == "flag":
            # The answer has already been delivered; record it for a lead to see.
            call.findings.extend(finding_summary(f) for f in verdict.findings)
            hold = new_hold(
                team_id=call.caller.team_id,
                request_id=call.request_id,
                kind="stream",
                rule=verdict.rule,
                findings=[finding_summary(f) for f in verdict.findings],
                response=response,
            )
        settle(
            call,
            budget=self.budget,
            status="ok",
            http_status=200,
            response=response,
            usage=usage,
            cost=cost,
            hold=hold,
            rule=hold.rule if hold else None,
            usage_estimated=estimated,
        )
