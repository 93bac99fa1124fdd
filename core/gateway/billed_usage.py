"""What an answered call is billed for: the upstream's own usage report, or an estimate.

OpenAI reports the tokens of every chat, Responses and embeddings answer in its ``usage``.
A compatible server (a self-hosted model, another proxy, a provider's look-alike API) may
leave it out, or report counts no call has (negative or fractional, cached tokens above the
input). Billing such an answer at 0 tokens would let every call through that upstream pass
any budget; refusing it after the model ran would hand the client an error for an answer
the team was charged for. So it is billed at an estimate made as for a stream cut short
(the input from the request as sent, the output from the answer's text), and its call log
row is marked ``usage_estimated``. Moderations are free and report no usage: billed at 0,
as OpenAI bills them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.budgets.tokens import chat_input_tokens_estimate, text_tokens_estimate
from core.budgets.usage import Usage, usage_from_openai
from core.errors import ValidationError
from core.gateway import responses

FREE = Usage(input_tokens=0)


def billed_usage(
    kind: str, sent: Mapping[str, Any], answer: Mapping[str, Any], *, max_output_tokens: int | None = None
) -> tuple[Usage, bool]:
    """The usage to bill `answer` (to the request `sent`) at, and whether it is an estimate.

    An estimate bills at most `max_output_tokens` of output (what the budget held room for,
    and what the model was capped to): an estimate is no reason to spend past a hard limit."""
    if kind == "moderations":
        return FREE, False
    reported = reported_usage(answer.get("usage"))
    if reported is not None:
        return reported, False
    return estimated_usage(kind, sent, answer, max_output_tokens=max_output_tokens), True


def reported_usage(reported: Any) -> Usage | None:
    """The usage an upstream reported, or None where it reported none a call can have (a
    stream's last chunk too: such a stream is then billed at its estimate)."""
    if not isinstance(reported, Mapping):
        return None
    try:
        return usage_from_openai(reported)
    except (ValidationError, AttributeError, KeyError, TypeError):
        return None


def estimated_usage(
    kind: str, sent: Mapping[str, Any], answer: Mapping[str, Any], *, max_output_tokens: int | None = None
) -> Usage:
    if kind == "embeddings":
        return Usage(input_tokens=estimated_input_tokens(kind, sent))
    texts = responses.output_texts(dict(answer)) if kind == "responses" else _chat_texts(answer)
    return Usage(
        input_tokens=estimated_input_tokens(kind, sent),
        output_tokens=capped(sum(text_tokens_estimate(text) for text in texts), max_output_tokens),
    )


def capped(estimate: int, max_output_tokens: int | None) -> int:
    return estimate if max_output_tokens is None else min(estimate, max_output_tokens)


def estimated_input_tokens(kind: str, sent: Mapping[str, Any]) -> int:
    """The input tokens of the request as sent, estimated offline (no usage came back)."""
    if kind == "embeddings":
        given = sent.get("input")
        texts = [given] if isinstance(given, str) else [t for t in given or () if isinstance(t, str)]
        return sum(text_tokens_estimate(text) for text in texts)
    if kind == "responses":
        return responses.input_tokens_estimate(dict(sent))
    return chat_input_tokens_estimate(messages=sent.get("messages") or ())


def _chat_texts(answer: Mapping[str, Any]) -> list[str]:
    """Every choice's content and tool-call arguments, whatever the upstream put where."""
    texts: list[str] = []
    for choice in answer.get("choices") or ():
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            continue
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
        for tool_call in message.get("tool_calls") or ():
            function = tool_call.get("function") if isinstance(tool_call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                texts.append(function["arguments"])
    return texts
