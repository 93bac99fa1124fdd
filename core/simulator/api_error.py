"""Errors the simulator answers with, in OpenAI's JSON shape.

The official SDK turns the status code into its exception class (400 ->
``BadRequestError``, 404 -> ``NotFoundError``...), so the status and the body both
have to match what OpenAI sends for callers to exercise their real error handling.
"""

from __future__ import annotations

from typing import Any

from core.errors import QuorumError


class SimulatedAPIError(QuorumError):
    """A request the simulator refuses, carrying the HTTP status and OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> SimulatedAPIError:
    """A 400 ``invalid_request_error``."""
    return SimulatedAPIError(400, message, param=param, code=code)


def model_not_found(model: str) -> SimulatedAPIError:
    """The 404 OpenAI sends for a model that does not exist (or that the key may not use)."""
    return SimulatedAPIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def wrong_endpoint(model: str, endpoint: str) -> SimulatedAPIError:
    """A known model used on an endpoint it does not serve (an embedding model for chat...)."""
    return SimulatedAPIError(
        404,
        f"The model `{model}` is not supported in the {endpoint} endpoint.",
        param="model",
        code="model_not_found",
    )


def invalid_url(method: str, path: str) -> SimulatedAPIError:
    """OpenAI's answer to a path it does not serve."""
    return SimulatedAPIError(404, f"Invalid URL ({method} {path})")


def rate_limited(retry_after_s: float) -> SimulatedAPIError:
    """An injected 429, worded like OpenAI's requests-per-minute limit."""
    return SimulatedAPIError(
        429,
        f"Rate limit reached for requests (simulated fault). Please try again in {retry_after_s:g}s.",
        type="requests",
        code="rate_limit_exceeded",
    )


def server_error() -> SimulatedAPIError:
    """An injected 500, worded like OpenAI's."""
    return SimulatedAPIError(
        500,
        "The server had an error while processing your request. Sorry about that! (simulated fault)",
        type="server_error",
    )
