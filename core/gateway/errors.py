"""The gateway's refusals, each mapped to one HTTP status by core.http (`error_response` in
core/http/openai_errors.py). A missing or bad key is `core.errors.Unauthenticated`: identity
raises it, below the gateway."""

from __future__ import annotations

from core.errors import PermissionDenied, QuorumError, ValidationError


class ModelNotAllowed(PermissionDenied):
    """The team may not use this model (HTTP 403)."""


class ModelNotPriced(ModelNotAllowed):
    """The model has no price, so its cost can be neither bounded nor billed: fail closed (HTTP 403)."""


class GuardrailBlocked(ValidationError):
    """An input guardrail refused the request (HTTP 400); ``rule`` says which."""

    def __init__(self, message: str, *, rule: str, request_id: str = "") -> None:
        super().__init__(message)
        self.rule = rule
        self.request_id = request_id


class HeldForReview(QuorumError):
    """The request or its answer waits for a governance lead (HTTP 202 with an id to poll)."""

    def __init__(self, message: str, *, held_id: str, request_id: str = "") -> None:
        super().__init__(message)
        self.held_id = held_id
        self.request_id = request_id


class UpstreamFailed(QuorumError):
    """The model provider failed after the retries (HTTP 502), or refused the request as invalid."""

    status = 502
    retry_after_s: float | None = None  # when waiting helps: the HTTP answer's retry-after
    param: str | None = None  # the parameter the provider named in its refusal

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.code = code


class UpstreamTimeout(UpstreamFailed):
    """The model provider did not answer in time (HTTP 504)."""

    status = 504


class UpstreamUnavailable(UpstreamFailed):
    """The circuit breaker is open: the provider failed repeatedly, calls are refused fast (HTTP 502)."""


class InvalidRequest(ValidationError):
    """A malformed request (HTTP 400); ``param`` names the parameter at fault, as OpenAI does."""

    def __init__(self, message: str, *, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class RateLimited(QuorumError):
    """A rate limit of the key, the team or the person is reached (HTTP 429 ``rate_limit_exceeded``).

    ``measure`` is "requests" or "tokens" (OpenAI's error type); ``retry_after_s`` is when the
    window resets, None when waiting cannot help (one request above the whole token limit);
    ``headers`` are the x-ratelimit-* headers of the answer."""

    def __init__(self, message: str, *, measure: str, retry_after_s: float | None, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.measure = measure
        self.retry_after_s = retry_after_s
        self.headers = headers
        self.request_id = ""


class RequestTooLarge(InvalidRequest):
    """A request body above the configured size (HTTP 413), refused before it is read whole."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this gateway accepts ({limit:,} bytes); send less text, "
            "or fewer or smaller images",
            code="request_too_large",
        )
