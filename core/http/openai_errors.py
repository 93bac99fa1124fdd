"""Quorum's refusals as OpenAI's error answers: ``{"error": {"message", "type", "param", "code"}}``.

401 bad/revoked/expired key or address not allowed (``invalid_api_key``), 403 model not
allowed (``model_not_allowed``) or without a price (``model_not_priced``: fail closed), 429
budget exhausted (``budget_exceeded``) or a rate limit reached (``rate_limit_exceeded``, typed
``requests`` or ``tokens`` as OpenAI's, with ``retry-after``), 400 blocked by a guardrail
(``guardrail_blocked``, ``param`` names the rule), 413 a body above the configured size
(``request_too_large``), 502/504 upstream failure. A request held for review gets 202 with
``{"object": "quorum.held_request", "id": "held_...", "status": "pending"}``; poll
``GET /v1/held/{id}``.

A malformed body is a 400 ``invalid_request`` whose ``param`` names the parameter at fault
(checked against the openai SDK's own request types, core.gateway.validation). A refusal
that retrying cannot change carries ``x-should-retry: false``, which the openai SDKs obey,
so an application over budget sees the error at once instead of after its retries; one
that waiting fixes (a budget period ending within a minute, the upstream's rate limit, an
open circuit breaker) carries ``retry-after`` instead. A defect in the gateway is a JSON
500 ``internal_error`` with the request id, logged without the request body.
"""

from __future__ import annotations

import logging
import math
import traceback
import uuid
from datetime import datetime

from starlette.responses import JSONResponse, Response

from core import clock
from core.errors import BudgetExceeded, NotFound, PermissionDenied, Unauthenticated, ValidationError
from core.gateway.errors import (
    GuardrailBlocked,
    HeldForReview,
    ModelNotAllowed,
    ModelNotPriced,
    RateLimited,
    RequestTooLarge,
    UpstreamFailed,
    UpstreamTimeout,
)
from core.gateway.moderation import ModerationUnavailable

_log = logging.getLogger("quorum.http")

# The openai SDKs honour these: "false" stops their retries; retry-after (seconds, up to a
# minute) replaces their own backoff.
NO_RETRY = {"x-should-retry": "false"}
# A budget period that ends within this is worth waiting for; a later one is not.
RETRY_WITHIN_S = 60


def openai_error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


def error_response(error: Exception, request_id: str | None = None) -> Response:
    request_id = request_id or getattr(error, "request_id", None)
    ids = {"x-request-id": request_id} if request_id else {}
    final = {**ids, **NO_RETRY}
    if isinstance(error, HeldForReview):
        return JSONResponse(
            {
                "object": "quorum.held_request",
                "id": error.held_id,
                "status": "pending",
                "request_id": error.request_id,
                "message": str(error),
                "poll": f"/v1/held/{error.held_id}",
            },
            status_code=202,
            headers={"x-request-id": error.request_id, "x-quorum-held": error.held_id},
        )
    if isinstance(error, Unauthenticated):
        return openai_error(401, str(error), type_="invalid_request_error", code="invalid_api_key", headers=final)
    if isinstance(error, ModelNotPriced):
        return openai_error(
            403, str(error), type_="invalid_request_error", code="model_not_priced", param="model", headers=final
        )
    if isinstance(error, ModelNotAllowed):
        return openai_error(
            403, str(error), type_="invalid_request_error", code="model_not_allowed", param="model", headers=final
        )
    if isinstance(error, PermissionDenied):
        return openai_error(403, str(error), type_="invalid_request_error", code="permission_denied", headers=final)
    if isinstance(error, RateLimited):
        return openai_error(
            429, str(error), type_=error.measure, code="rate_limit_exceeded", headers={**ids, **_rate_retry(error)}
        )
    if isinstance(error, BudgetExceeded):
        return openai_error(
            429, str(error), type_="insufficient_quota", code="budget_exceeded", headers={**ids, **_budget_retry(error)}
        )
    if isinstance(error, GuardrailBlocked):
        return openai_error(
            400,
            str(error),
            type_="invalid_request_error",
            code="guardrail_blocked",
            param=error.rule,
            headers={"x-request-id": error.request_id, **NO_RETRY},
        )
    if isinstance(error, NotFound):
        return openai_error(404, str(error), type_="invalid_request_error", code="not_found", headers=final)
    if isinstance(error, RequestTooLarge):
        return openai_error(413, str(error), type_="invalid_request_error", code=error.code, headers=final)
    if isinstance(error, ValidationError):
        return openai_error(
            400,
            str(error),
            type_="invalid_request_error",
            code=getattr(error, "code", None) or "invalid_request",
            param=getattr(error, "param", None),
            headers=final,
        )
    if isinstance(error, UpstreamTimeout):
        return openai_error(504, str(error), type_="api_error", code="upstream_timeout", headers=ids or None)
    if isinstance(error, ModerationUnavailable):
        return openai_error(error.status, str(error), type_="api_error", code=error.code, headers=final)
    if isinstance(error, UpstreamFailed):
        type_ = "invalid_request_error" if error.status < 500 else "api_error"
        headers = dict(ids)
        retry_after_s: float | None = getattr(error, "retry_after_s", None)
        if retry_after_s is not None:
            headers["retry-after"] = str(max(1, round(retry_after_s)))
        elif 400 <= error.status < 500 and error.status not in (408, 409, 429):
            headers.update(NO_RETRY)  # the provider refused the request itself: the same request fails again
        return openai_error(
            error.status,
            str(error),
            type_=type_,
            code=error.code or "upstream_error",
            param=error.param,
            headers=headers or None,
        )
    return internal_error(error, request_id)


def _budget_retry(error: BudgetExceeded) -> dict[str, str]:
    """retry-after when the budget's period ends within a minute, else no retry at all."""
    resets_at: datetime | None = getattr(error, "resets_at", None)
    if resets_at is None:
        return dict(NO_RETRY)
    seconds = (resets_at - clock.now()).total_seconds()
    if seconds > RETRY_WITHIN_S:
        return {**NO_RETRY, "retry-after": str(round(seconds))}  # for people: when to come back
    return {"retry-after": str(max(1, round(seconds + 0.5)))}


def _rate_retry(error: RateLimited) -> dict[str, str]:
    """The x-ratelimit-* headers, and when to retry: the window's end (both in seconds and in
    milliseconds, which the openai SDKs prefer), or never for a request above the whole limit."""
    if error.retry_after_s is None:
        return {**error.headers, **NO_RETRY}
    return {
        **error.headers,
        "retry-after": str(max(1, math.ceil(error.retry_after_s))),
        "retry-after-ms": str(max(1, math.ceil(error.retry_after_s * 1000))),
    }


def internal_error(error: BaseException, request_id: str | None = None) -> JSONResponse:
    """A defect: a JSON 500 with an id to quote, and a log line with where it happened.

    The log gets the exception's type and its stack frames, not its message, which may
    quote the request (a prompt, a secret); the client gets neither."""
    request_id = request_id or getattr(error, "request_id", None) or f"req_{uuid.uuid4().hex[:24]}"
    frames = "".join(traceback.format_tb(error.__traceback__)[-4:]).replace("\n", " | ")
    _log.error("gateway: internal error %s in request %s at %s", type(error).__name__, request_id, frames)
    return openai_error(
        500,
        f"Internal error in the gateway; quote request id {request_id} when reporting it",
        type_="api_error",
        code="internal_error",
        headers={"x-request-id": request_id},
    )
