"""Shaping the request sent upstream: a catalog prompt's parameters, the output cap that
keeps a call within what its budget reservation holds, and the output limits it must respect."""

from __future__ import annotations

import json
from typing import Any

from core.budgets import model_limits
from core.gateway import responses
from core.gateway.errors import InvalidRequest


def prompt_params(spec) -> dict[str, Any]:
    params: dict[str, Any] = {"model": spec.model}
    for name in ("temperature", "max_tokens", "response_format", "reasoning_effort"):
        value = getattr(spec.params, name, None)
        if value is not None:
            params[name] = value if not hasattr(value, "items") else json.loads(json.dumps(dict(value), default=dict))
    if spec.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": json.loads(json.dumps(t.parameters, default=dict)),
                },
            }
            for t in spec.tools
        ]
    return params


def cap_output(body: dict[str, Any], granted: int | None, kind: str = "chat") -> dict[str, Any]:
    """The body with its output limit lowered to what the reservation granted (None: no cap)."""
    if granted is None:
        return body
    if kind == "responses":
        return responses.cap_output(body, granted)
    # Reasoning models accept only max_completion_tokens; every chat model accepts it.
    field_name = (
        "max_tokens" if "max_tokens" in body and "max_completion_tokens" not in body else "max_completion_tokens"
    )
    current = body.get(field_name)
    if current is None or current > granted:
        return {**body, field_name: granted}
    return body


def check_output_limit(kind: str, model: str, body: dict[str, Any]) -> None:
    """Refuse an output limit above what the model can produce: a client mistake (400), not
    a budget matter (the worst case of a call the model would refuse is no cost at all)."""
    if kind == "chat" and body.get("n") not in (None, 1):
        # Each choice may use the whole output limit: the reservation holds room for one.
        raise InvalidRequest(
            "'n' above 1 is not served: the budget reserves room for one answer per call; send separate requests",
            param="n",
        )
    for name in {"chat": ("max_completion_tokens", "max_tokens"), "responses": ("max_output_tokens",)}.get(kind, ()):
        asked = body.get(name)
        if asked is None:
            continue
        if asked < 1:
            raise InvalidRequest(f"'{name}' must be at least 1 (got {asked})", param=name)
        limits = model_limits.limits_for(model)
        if limits is not None and limits.max_output_tokens is not None and asked > limits.max_output_tokens:
            raise InvalidRequest(
                f"'{name}' is {asked:,}, above the {limits.max_output_tokens:,} output tokens "
                f"{model} can produce; lower {name}",
                param=name,
            )
