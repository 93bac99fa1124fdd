"""Token usage of one call, in the shape that pricing needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ValidationError


@dataclass(frozen=True)
class Usage:
    """Tokens of one call.

    ``cached_input_tokens`` is a subset of ``input_tokens`` and ``reasoning_tokens`` a
    subset of ``output_tokens``, exactly as OpenAI reports them
    (``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``);
    they are never added on top.
    """

    input_tokens: int
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValidationError(f"{name} must be a whole number of tokens, 0 or more (got {value!r})")
        if self.cached_input_tokens > self.input_tokens:
            raise ValidationError("cached_input_tokens cannot exceed input_tokens (they are a subset)")
        if self.reasoning_tokens > self.output_tokens:
            raise ValidationError("reasoning_tokens cannot exceed output_tokens (they are a subset)")

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cached_input_tokens


def usage_from_openai(usage: Mapping[str, Any]) -> Usage:
    """A ``Usage`` from an OpenAI ``usage`` object as a dict (``model_dump()`` of the SDK's).

    Accepts Chat Completions and embeddings (``prompt_tokens``/``completion_tokens``) and
    the Responses API (``input_tokens``/``output_tokens``). Missing details count as 0.
    """
    if "prompt_tokens" in usage:
        input_details = usage.get("prompt_tokens_details") or {}
        output_details = usage.get("completion_tokens_details") or {}
        input_tokens, output_tokens = usage["prompt_tokens"], usage.get("completion_tokens") or 0
    elif "input_tokens" in usage:
        input_details = usage.get("input_tokens_details") or {}
        output_details = usage.get("output_tokens_details") or {}
        input_tokens, output_tokens = usage["input_tokens"], usage.get("output_tokens") or 0
    else:
        raise ValidationError("Usage has neither prompt_tokens nor input_tokens")
    return Usage(
        input_tokens=input_tokens,
        cached_input_tokens=input_details.get("cached_tokens") or 0,
        output_tokens=output_tokens,
        reasoning_tokens=output_details.get("reasoning_tokens") or 0,
    )
