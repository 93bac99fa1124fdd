"""Running an experiment: variants × test-set cases × repetitions, through a ``call`` seam.

Before any call, ``estimate_cost`` prices every call at its worst case (input tokens
bounded offline, every allowed output token used, judge calls included); ``run_experiment``
refuses a run whose estimate exceeds the remaining budget it is given.

Calls run on a bounded thread pool. An AIMD limiter sits in front of the upstream: a
rate-limit error halves the number of calls allowed in flight and pauses new calls for
the upstream's retry-after (or an exponential back-off when it gives none); each success
grows the allowance by 1/limit, so it regains one slot per window of successes. Cancelling
(a ``threading.Event``) stops new calls; calls in flight finish and are kept, and only
finished calls are billed. Results come back in test-set order, whatever the completion order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from core import clock
from core.budgets.money import format_micro
from core.budgets.pricing import PriceBook, worst_case_cost_micro
from core.budgets.tokens import DEFAULT_MAX_OUTPUT_TOKENS, chat_input_tokens_upper_bound
from core.catalog.escalation import Answer, compiled_for, response_schema_of
from core.catalog.render import render_messages
from core.catalog.spec import VersionSpec, content_hash, version_content
from core.catalog.testsets import TestCaseSpec, TestSetSpec
from core.errors import BudgetExceeded, QuorumError, ValidationError
from core.experiments.assertions import (
    JUDGE_MAX_OUTPUT_CHARS,
    JUDGE_PARAMS,
    AssertionOutcome,
    Judge,
    evaluate_case,
    judge_messages,
    judge_with,
)  # fmt: skip
from core.experiments.calls import Call, CallResult, RateLimited
from core.experiments.results import CellResult, ExperimentRun, VariantInfo, ordered

MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class VariantChoice:
    """A version to run, as a person picks it: with an optional model and parameter overrides."""

    version_id: int
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """A prompt version as run in the experiment, with an optional model and parameter overrides."""

    label: str
    version: VersionSpec
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.model or self.version.model

    def request_params(self) -> dict[str, Any]:
        params = {**version_content(self.version)["params"], **self.params}
        params = {k: v for k, v in params.items() if v is not None}
        if "max_tokens" not in params and "max_completion_tokens" not in params:
            params["max_completion_tokens"] = DEFAULT_MAX_OUTPUT_TOKENS
        return params

    def max_output_tokens(self) -> int:
        params = self.request_params()
        tokens: int = params.get("max_completion_tokens") or params["max_tokens"]
        return tokens

    def openai_tools(self) -> list[dict[str, Any]] | None:
        tools = version_content(self.version)["tools"]
        return [{"type": "function", "function": tool} for tool in tools] or None

    def info(self) -> VariantInfo:
        return VariantInfo(self.label, self.model_name, content_hash(self.version), self.request_params())


@dataclass(frozen=True)
class Experiment:
    variants: tuple[Variant, ...]
    testset: TestSetSpec
    repetitions: int = 1
    judge_model: str | None = None  # the model llm-rubric assertions are graded by

    def __post_init__(self) -> None:
        labels = [v.label for v in self.variants]
        if not labels or len(set(labels)) != len(labels):
            raise ValidationError("An experiment needs at least one variant, each with its own label")
        if self.repetitions < 1:
            raise ValidationError("Repetitions must be at least 1")

    def cells(self) -> list[tuple[TestCaseSpec, Variant, int]]:
        return [(c, v, r) for c in self.testset.cases for v in self.variants for r in range(self.repetitions)]


@dataclass(frozen=True)
class CostEstimate:
    total_micro: int
    calls: int
    judge_calls: int = 0


def estimate_cost(experiment: Experiment, price_book: PriceBook, *, when: datetime | None = None) -> CostEstimate:
    """The most the experiment can cost, and how many calls it makes (cells that cannot render make none)."""
    when = when or clock.now()
    total = calls = judge_calls = 0
    for case, variant, _ in experiment.cells():
        try:
            messages = render_messages(variant.version, case.variables)
        except QuorumError:
            continue
        params = variant.request_params()
        bound = chat_input_tokens_upper_bound(
            messages=messages, tools=variant.openai_tools(), response_format=params.get("response_format")
        )
        price = price_book.price_at(variant.model_name, when)
        total += worst_case_cost_micro(price, bound, variant.max_output_tokens())
        calls += 1
        for assertion in case.assertions:
            if assertion.type == "llm-rubric" and experiment.judge_model and isinstance(assertion.value, str):
                # The judge sees at most JUDGE_MAX_OUTPUT_CHARS of output, 4 UTF-8 bytes each at most.
                judge_bound = (
                    chat_input_tokens_upper_bound(
                        messages=judge_messages(assertion.value, ""), response_format=JUDGE_PARAMS["response_format"]
                    )
                    + 4 * JUDGE_MAX_OUTPUT_CHARS
                )
                judge_price = price_book.price_at(experiment.judge_model, when)
                total += worst_case_cost_micro(judge_price, judge_bound, JUDGE_PARAMS["max_tokens"])
                judge_calls += 1
    return CostEstimate(total, calls + judge_calls, judge_calls)


def check_budget(estimate: CostEstimate, remaining_micro: int) -> None:
    if estimate.total_micro > remaining_micro:
        raise BudgetExceeded(
            f"This experiment could cost up to {format_micro(estimate.total_micro)} ({estimate.calls} calls), "
            f"more than the {format_micro(remaining_micro)} left in the budget; "
            "use fewer cases, variants or repetitions"
        )


class AimdLimiter:
    """How many calls may be in flight: halved on a rate limit, regrown by 1/limit per success."""

    def __init__(self, maximum: int, *, base_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        if maximum < 1:
            raise ValidationError("Concurrency must be at least 1")
        self.maximum, self.limit = maximum, float(maximum)
        self.base_backoff_s, self.max_backoff_s = base_backoff_s, max_backoff_s
        self.in_flight, self.rate_limits, self.lowest_limit = 0, 0, maximum
        self._resume_at, self._streak = 0.0, 0
        self._condition = threading.Condition()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Wait for a slot; False when cancelled while waiting."""
        with self._condition:
            while True:
                if cancel is not None and cancel.is_set():
                    return False
                wait = self._resume_at - time.monotonic()
                if wait <= 0 and self.in_flight < int(self.limit):
                    self.in_flight += 1
                    return True
                # Poll at most every 50 ms so that a cancel is noticed promptly.
                self._condition.wait(min(wait, 0.05) if wait > 0 else 0.05)

    def release(self) -> None:
        with self._condition:
            self.in_flight -= 1
            self._condition.notify_all()

    def succeeded(self) -> None:
        with self._condition:
            self._streak = 0
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
            self._condition.notify_all()

    def rate_limited(self, retry_after_s: float | None) -> None:
        with self._condition:
            self.rate_limits += 1
            now = time.monotonic()
            # Calls in flight together all see the same 429 burst: halve once per pause, not once each.
            if now >= self._resume_at:
                self.limit = max(1.0, self.limit / 2)
                self.lowest_limit = min(self.lowest_limit, int(self.limit))
            self._streak += 1
            backoff = min(self.max_backoff_s, self.base_backoff_s * 2 ** (self._streak - 1))
            pause = retry_after_s if retry_after_s is not None else backoff
            self._resume_at = max(self._resume_at, now + pause)


class _Cancelled(Exception):
    pass


def run_experiment(
    experiment: Experiment,
    *,
    call: Call,
    price_book: PriceBook,
    remaining_budget_micro: int | None = None,
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    limiter: AimdLimiter | None = None,
) -> ExperimentRun:
    """Run every cell; refuses (BudgetExceeded) before any call when the estimate exceeds the budget.

    ``llm-rubric`` assertions are graded by ``experiment.judge_model`` through the same ``call``
    (so the estimate, which counts judge calls, covers them); without a judge model they are errors.
    ``progress(done, total)`` is called in order, one call at a time.
    """
    estimate = estimate_cost(experiment, price_book)
    if remaining_budget_micro is not None:
        check_budget(estimate, remaining_budget_micro)
    judge = judge_with(call, experiment.judge_model) if experiment.judge_model else None
    limiter = limiter or AimdLimiter(concurrency)
    cells = experiment.cells()
    finished: list[CellResult] = []
    lock = threading.Lock()

    def attempt(function: Callable[[], CallResult]) -> CallResult:
        for _ in range(MAX_ATTEMPTS):
            if not limiter.acquire(cancel):
                raise _Cancelled
            try:
                result = function()
            except RateLimited as error:
                limiter.rate_limited(error.retry_after_s)
                continue
            finally:
                limiter.release()
            limiter.succeeded()
            return result
        raise RateLimited(None, f"still rate limited after {MAX_ATTEMPTS} attempts")

    def run_cell(case: TestCaseSpec, variant: Variant, repetition: int) -> None:
        if cancel is not None and cancel.is_set():
            return
        retrying_judge = (lambda messages: attempt(lambda: judge(messages))) if judge else None
        try:
            cell = _run_cell(experiment.testset, case, variant, repetition, attempt, call, retrying_judge)
        except _Cancelled:
            return
        with lock:
            finished.append(cell)
            if progress is not None:
                progress(len(finished), len(cells))

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="experiment") as pool:
        for future in [pool.submit(run_cell, *cell) for cell in cells]:
            future.result()
    return ExperimentRun(
        variants=tuple(v.info() for v in experiment.variants),
        case_ids=tuple(c.id for c in experiment.testset.cases),
        repetitions=experiment.repetitions,
        cells=ordered(finished, [c.id for c in experiment.testset.cases], [v.label for v in experiment.variants]),
        planned_cells=len(cells),
        cancelled=cancel is not None and cancel.is_set() and len(finished) < len(cells),
        estimate_micro=estimate.total_micro,
    )


class _CellKey(TypedDict):
    """Which cell a result is for: the fields every CellResult starts from."""

    case_id: str
    variant: str
    repetition: int


def _run_cell(
    testset: TestSetSpec,
    case: TestCaseSpec,
    variant: Variant,
    repetition: int,
    attempt: Callable[[Callable[[], CallResult]], CallResult],
    call: Call,
    judge: Judge | None,
) -> CellResult:
    base: _CellKey = {"case_id": case.id, "variant": variant.label, "repetition": repetition}
    threshold = testset.threshold_for(case)
    try:
        messages = render_messages(variant.version, case.variables)
    except QuorumError as error:
        return CellResult(**base, status="error", threshold=threshold, error=f"cannot render the prompt: {error}")
    params, tools = variant.request_params(), variant.openai_tools()
    try:
        result = attempt(lambda: call(messages, variant.model_name, params, tools))
    except _Cancelled:
        raise
    except Exception as error:  # noqa: BLE001 - one failed call is that cell's error, the run goes on
        return CellResult(
            **base, status="error", threshold=threshold, error=f"call failed: {type(error).__name__}: {error}"
        )
    schemas = {t.name: dict(t.parameters) for t in variant.version.tools}
    evaluation = evaluate_case(case.assertions, result, threshold=threshold, tools=schemas, judge=judge)
    return CellResult(
        **base,
        status=evaluation.status,
        output=result.text,
        tool_calls=tuple({"name": t.name, "arguments": t.arguments} for t in result.tool_calls),
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        latency_ms=result.latency_ms,
        cost_micro=result.cost_micro + evaluation.judge_cost_micro,
        score=evaluation.score,
        threshold=threshold,
        assertions=tuple(_outcome_json(o) for o in evaluation.outcomes),
        error=evaluation.error,
        escalation=escalation_of(variant.version, case.variables, result),
    )


def escalation_of(version: VersionSpec, variables: Mapping[str, Any], result: CallResult) -> tuple[str, ...]:
    """The rules production would fire on this answer: (action, rule, ...) or ().

    The playground and experiments run as people, whose calls the gateway never holds, so
    they show what the version's rules would do instead."""
    if not version.escalation:
        return ()
    rules = compiled_for(
        ("content", content_hash(version)), version.escalation, response_schema_of(version.params.response_format)
    )
    fired = rules.evaluate(
        Answer(
            text=result.text,
            variables=dict(variables),
            tool_names=[t.name for t in result.tool_calls],
            output_tokens=result.usage.output_tokens,
        )
    )
    return () if fired is None else (fired.action, *fired.rules)


def _outcome_json(outcome: AssertionOutcome) -> dict[str, Any]:
    return {
        "type": outcome.type, "passed": outcome.passed, "weight": outcome.weight, "reason": outcome.reason,
        "path": outcome.path, "error": outcome.error, "judge_score": outcome.judge_score,
    }  # fmt: skip
