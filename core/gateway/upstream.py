"""The model provider: the official `openai` SDK, with our own retries and circuit breaker.

OPENAI_API_KEY / OPENAI_BASE_URL pick the provider (OpenAI, Azure OpenAI, vLLM, Ollama:
anything speaking the OpenAI API). With no key, the built-in simulator answers, and
every result says it is simulated.

The SDK's own retries are off (max_retries=0): this module retries 429 and 5xx answers,
timeouts and dropped connections itself, with exponential backoff and full jitter,
waiting at least what Retry-After asks, and obeying the provider's x-should-retry as
the SDK does (false: not retried; true: retried although the status alone would not be).
Counting attempts here is what lets the gateway bill a call once, however many attempts
it took. Only failed attempts are retried, and a failed attempt produced no answer to bill.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

from core.gateway import answer_shape
from core.gateway.direct_post import DirectPost
from core.gateway.errors import UpstreamFailed, UpstreamTimeout, UpstreamUnavailable
from core.settings import Settings
from core.simulator import SIMULATED_HEADER, SimulatorConfig, simulated_client
from core.simulator.billing import shared_log


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    # A Retry-After longer than this is not waited for: the caller gets the failure now.
    max_retry_after_s: float = 20.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform between 0 and the capped exponential step."""
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


@dataclass
class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; after ``reset_after_s``
    one probe call is let through (half-open): success closes it, failure opens it again."""

    failure_threshold: int = 5
    reset_after_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    _probe_out: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_call(self) -> None:
        with self._lock:
            if self.state == "open":
                if self.clock() - self.opened_at < self.reset_after_s:
                    refusal = UpstreamUnavailable(
                        "The model provider is failing; calls are paused for a few seconds (circuit open)"
                    )
                    refusal.retry_after_s = self.reset_after_s - (self.clock() - self.opened_at)
                    raise refusal
                self.state, self._probe_out = "half_open", False
            if self.state == "half_open":
                if self._probe_out:
                    refusal = UpstreamUnavailable(
                        "The model provider is being probed after failures; try again shortly"
                    )
                    refusal.retry_after_s = 1.0
                    raise refusal
                self._probe_out = True

    def record_success(self) -> None:
        with self._lock:
            self.state, self.failures, self._probe_out = "closed", 0, False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.failure_threshold:
                self.state, self.opened_at, self._probe_out = "open", self.clock(), False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(name: str, **options) -> CircuitBreaker:
    """One breaker per upstream (by base URL), shared by every client of it in the process."""
    with _breakers_lock:
        if name not in _breakers:
            _breakers[name] = CircuitBreaker(**options)
        return _breakers[name]


@dataclass(frozen=True)
class UpstreamResult:
    body: dict[str, Any]
    attempts: int
    simulated: bool
    elapsed_ms: float


class UpstreamStream:
    """Chunks of a streamed chat completion as dicts; ``close()`` stops reading early."""

    def __init__(self, stream: openai.Stream, attempts: int, simulated: bool) -> None:
        self._stream, self.attempts, self.simulated = stream, attempts, simulated

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for chunk in self._stream:
            yield chunk if isinstance(chunk, dict) else chunk.to_dict()

    def close(self) -> None:
        self._stream.close()


class Upstream:
    def __init__(
        self,
        client: openai.OpenAI,
        *,
        name: str,
        simulated: bool,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        direct: bool = True,
    ) -> None:
        self.client, self.name, self.simulated = client, name, simulated
        # Non-streamed JSON calls skip the SDK's request builder where that sends the same request.
        self._direct = DirectPost.for_client(client) if direct else None
        # Whether the upstream serves /v1/moderations: "unknown" until a probe or a call tells
        # (core.gateway.moderation).
        self.moderation_endpoint = "unknown"
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or breaker_for(name)
        self._sleep, self._rng = sleep, random.Random(seed)

    @classmethod
    def from_settings(cls, settings: Settings, *, simulator: SimulatorConfig | None = None) -> Upstream:
        timeout = httpx.Timeout(settings.upstream_timeout_s, connect=5.0)
        retry = RetryPolicy(max_attempts=settings.upstream_max_attempts)
        breaker_options = {"failure_threshold": settings.breaker_failures, "reset_after_s": settings.breaker_reset_s}
        if settings.uses_simulator:
            # The simulated provider bills into the shared log that finance reconciles against.
            simulator = simulator or SimulatorConfig(billing=shared_log(settings.simulator_billing_log))
            client = simulated_client(simulator, max_retries=0, timeout=timeout)
            return cls(client, name="simulator", simulated=True, retry=retry, breaker=CircuitBreaker(**breaker_options))
        client = openai.OpenAI(
            api_key=settings.openai_api_key, base_url=settings.openai_base_url, max_retries=0, timeout=timeout
        )
        name = settings.openai_base_url or "https://api.openai.com/v1"
        return cls(client, name=name, simulated=False, retry=retry, breaker=breaker_for(name, **breaker_options))

    # ---- calls ---------------------------------------------------------------------------

    def chat(self, body: dict[str, Any]) -> UpstreamResult:
        return self._json_call("/chat/completions", body)

    def chat_stream(self, body: dict[str, Any]) -> UpstreamStream:
        model, messages, rest = _split(body)
        rest.pop("stream", None)

        def attempt():
            raw = self.client.chat.completions.with_raw_response.create(
                model=model, messages=messages, stream=True, extra_body=rest
            )
            return raw.parse(), _is_simulated(raw.headers, self.simulated)

        (stream, simulated), attempts, _ms = self._with_retries(attempt)
        return UpstreamStream(stream, attempts, simulated)

    def embeddings(self, body: dict[str, Any]) -> UpstreamResult:
        return self._json_call("/embeddings", body)

    def call(self, kind: str, body: dict[str, Any]) -> UpstreamResult:
        """The non-streamed call of a gateway request kind (chat, embeddings, responses, moderations)."""
        return self._json_call(_PATHS[kind], body)

    def responses_stream(self, body: dict[str, Any]) -> UpstreamStream:
        """A streamed Responses API call: its typed events, as dicts."""

        def attempt():
            # Generic POST, as for the non-streamed calls: the events come back as plain dicts.
            stream = self.client.post(
                "/responses",
                body={**body, "stream": True},
                cast_to=object,
                stream=True,
                stream_cls=openai.Stream[object],
            )
            return stream, _is_simulated(stream.response.headers, self.simulated)

        (stream, simulated), attempts, _ms = self._with_retries(attempt)
        return UpstreamStream(stream, attempts, simulated)

    def retrieve_response(self, response_id: str) -> UpstreamResult:
        """A stored Responses API answer (``GET /responses/{id}``)."""

        def attempt():
            response = self.client.get(f"/responses/{response_id}", cast_to=httpx.Response)
            return answer_shape.parse(response.content, "/responses"), _is_simulated(response.headers, self.simulated)

        (body, simulated), attempts, elapsed = self._with_retries(attempt)
        return UpstreamResult(body=body, attempts=attempts, simulated=simulated, elapsed_ms=elapsed)

    def moderate(self, texts: list[str], model: str = "omni-moderation-latest") -> list[dict[str, Any]]:
        result = self._json_call("/moderations", {"model": model, "input": texts})
        return result.body.get("results", [])

    # ---- retries -------------------------------------------------------------------------

    def _json_call(self, path: str, body: dict[str, Any]) -> UpstreamResult:
        # The SDK's generic POST sends the caller's body as it is: a proxy should not drop or
        # rewrite parameters it does not know, and the typed methods' parameter transforms
        # cost a quarter of a millisecond per call for nothing here. Errors, timeouts and
        # authentication are the SDK's as with the typed methods. Where it sends the same
        # request, `DirectPost` skips the SDK's request builder too (core.gateway.direct_post).
        direct = self._direct

        def attempt():
            if direct is not None:
                response = direct.post(path, body)
            else:
                response = self.client.post(path, body=body, cast_to=httpx.Response)
            return answer_shape.parse(response.content, path), _is_simulated(response.headers, self.simulated)

        (body, simulated), attempts, elapsed = self._with_retries(attempt)
        return UpstreamResult(body=body, attempts=attempts, simulated=simulated, elapsed_ms=elapsed)

    def _with_retries(self, attempt_fn):
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            self.breaker.before_call()
            hint = None
            try:
                value = attempt_fn()
            except openai.APIStatusError as error:
                status = error.status_code
                # The provider may say whether a retry is worth it (x-should-retry, as the SDK obeys it).
                hint = error.response.headers.get("x-should-retry")
                if status != 429 and status < 500 and hint != "true":
                    # The request itself is wrong (bad parameter, unknown model): no retry,
                    # and no sign that the provider is unhealthy.
                    self.breaker.record_success()
                    refusal = UpstreamFailed(_message(error), status=status, code=_code(error))
                    refusal.param = _field(error, "param")  # passed on: the client learns which parameter
                    raise refusal from None
                if status >= 500:
                    self.breaker.record_failure()
                wait = _retry_after(error.response.headers)
                failure = UpstreamFailed(
                    f"The model provider answered {status} after {attempt} attempt(s): {_message(error)}",
                    code="upstream_error",
                )
                if status == 429:
                    # The provider's rate limit: the caller may come back when it says.
                    failure.retry_after_s = wait if wait is not None else self.retry.backoff(attempt, self._rng)
            except (openai.APIConnectionError, answer_shape.MalformedAnswer) as error:  # timeouts included
                self.breaker.record_failure()
                wait, failure = None, _failure(error, attempt)
            else:
                self.breaker.record_success()
                return value, attempt, (time.perf_counter() - started) * 1000
            if attempt >= self.retry.max_attempts or hint == "false":
                raise failure
            if wait is not None and wait > self.retry.max_retry_after_s:
                raise failure
            self._sleep(max(wait or 0.0, self.retry.backoff(attempt, self._rng)))


def _failure(error: Exception, attempt: int) -> UpstreamFailed:
    """What the caller is told of an attempt that got no answer (retried first, as a 5xx is)."""
    if isinstance(error, openai.APITimeoutError):
        return UpstreamTimeout(
            f"The model provider did not answer in time ({attempt} attempt(s))", code="upstream_timeout"
        )
    if isinstance(error, answer_shape.MalformedAnswer):
        # Not an answer of its kind (a proxy's page sent with 200): the upstream's failure.
        return UpstreamFailed(
            f"The model provider answered with {error} ({attempt} attempt(s))", code="upstream_malformed"
        )
    return UpstreamFailed(f"Could not reach the model provider ({attempt} attempt(s)): {error}", code="upstream_error")


_PATHS = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "moderations": "/moderations",
}


def _split(body: dict[str, Any]) -> tuple[str, list, dict[str, Any]]:
    rest = dict(body)
    return rest.pop("model"), rest.pop("messages"), rest


def _is_simulated(headers: httpx.Headers, default: bool) -> bool:
    return default or headers.get(SIMULATED_HEADER) == "true"


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from retry-after-ms (OpenAI's) or Retry-After (seconds)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def _message(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    return str((inner or {}).get("message") or error.message)


def _code(error: openai.APIStatusError) -> str | None:
    return _field(error, "code")


def _field(error: openai.APIStatusError, name: str) -> str | None:
    body = error.body if isinstance(error.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    value = (inner or {}).get(name) if isinstance(inner, dict) else None
    return value if isinstance(value, str) else None
