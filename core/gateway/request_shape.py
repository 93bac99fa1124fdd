"""Shaping the request sent upstream: a catalog prompt's parameters, and the output cap
that keeps a call within what its budget reservation holds."""

from __future__ import annotations

import json
from typing import Any

from core.gateway import responses


def prompt_params(spec) -> dict[str, Any]:
    params: dict[str, Any] = {"model": spec.model}
    for name in ("temperature", "max_tokens", "response_format", "reasoning_effort"):
        value = getattr(spec.params, name, None)
        if value is not None:
            params[name] = value if not hasattr(value, "items") else json.loads(json.dumps(dict(value), default=dict))
    if spec.tools:
        params["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                             "parameters": json.loads(json.dumps(t.parameters,
                                                                                                 default=dict))}}
                           for t in spec.tools]
    return params


def cap_output(body: dict[str, Any], granted: int | None, kind: str = "chat") -> dict[str, Any]:
    """The body with its output limit lowered to what the reservation granted (None: no cap)."""
    if granted is None:
        return body
    if kind == "responses":
        return responses.cap_output(body, granted)
    # Reasoning models accept only max_completion_tokens; every chat model accepts it.
    field_name = "max_tokens" if "max_tokens" in body and "max_completion_tokens" not in body else "max_completion_tokens"
    current = body.get(field_name)
    if current is None or current > granted:
        return {**body, field_name: granted}
    return body
