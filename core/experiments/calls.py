"""The seam between the experiment engine and whatever carries a model call.

The engine never talks to a client itself: it receives a ``call`` callable::

    call(messages, model, params, tools) -> CallResult

which may raise ``RateLimited(retry_after_s)``. In the app the callable comes from
``gateway_call`` (every experiment call is a gateway call, with its guardrails, logging
and budgets); ``openai_call`` here adapts a bare openai SDK client (the simulator's), for
the engine's own tests and the bench.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from core import clock
from core.budgets.pricing import PriceBook, Usage, cost_micro, usage_from_openai


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; ``arguments`` is the raw JSON text it wrote."""

    name: str
    arguments: str


@dataclass(frozen=True)
class CallResult:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=0))
    latency_ms: float = 0.0
    cost_micro: int = 0


class RateLimited(Exception):
    """The upstream refused the call for now; ``retry_after_s`` is its hint, if it gave one."""

    def __init__(self, retry_after_s: float | None = None, message: str = "rate limited") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


Message = Mapping[str, Any]
Call = Callable[[Sequence[Message], str, Mapping[str, Any], Sequence[Mapping[str, Any]] | None], CallResult]


def openai_call(client: openai.OpenAI, price_book: PriceBook) -> Call:
    """A ``call`` over an openai SDK client, priced with ``price_book`` at the call's instant.

    Build the client with ``max_retries=0``: retrying is the runner's job (its limiter
    slows the whole run down on a 429; the SDK would only retry one request blindly).
    """

    def call(
        messages: Sequence[Message], model: str, params: Mapping[str, Any], tools: Sequence[Mapping[str, Any]] | None
    ) -> CallResult:
        request: dict[str, Any] = {"model": model, "messages": list(messages), **params}
        if tools:
            request["tools"] = list(tools)
        started = time.perf_counter()
        try:
            completion = client.chat.completions.create(**request)
        except openai.RateLimitError as error:
            raise RateLimited(_retry_after(error.response.headers), str(error)) from None
        latency_ms = (time.perf_counter() - started) * 1000
        message = completion.choices[0].message
        usage = usage_from_openai(completion.usage.model_dump()) if completion.usage else Usage(input_tokens=0)
        price = price_book.price_at(model, clock.now())
        return CallResult(
            text=message.content or "",
            tool_calls=tuple(
                ToolCall(c.function.name, c.function.arguments) for c in message.tool_calls or () if c.function
            ),
            usage=usage,
            latency_ms=latency_ms,
            cost_micro=cost_micro(price, usage),
        )

    return call


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI's precise header) or ``retry-after``."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        if value >= 0:
            return value / scale
    return None
