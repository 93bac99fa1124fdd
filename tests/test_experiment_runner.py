"""Running experiments against the simulator: budget refusal, cancellation, 429s, determinism."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from core.budgets.pricing import PriceBook
from core.catalog.files import load_prompt_file
from core.catalog.spec import MessageSpec
from core.catalog.testsets import load_testset_file
from core.experiments.calls import openai_call
from core.experiments.results import comparisons, matrix, run_from_json, run_to_json, summarize
from core.experiments.runner import (
    AimdLimiter,
    BudgetExceeded,
    Experiment,
    Variant,
    estimate_cost,
    run_experiment,
)  # fmt: skip
from core.simulator import SimulatorConfig, simulated_client

BOOK = PriceBook.from_yaml()
_, TRIAGE = load_prompt_file("prompts/ticket-triage.yaml")
TRIAGE_CASES = load_testset_file("prompts/testsets/ticket-triage.yaml")


class CountingCall:
    """Wraps a call and records what started and what came back (billed)."""

    def __init__(self, inner):
        self.inner, self.started, self.finished = inner, 0, []
        self._lock = threading.Lock()

    def __call__(self, *args):
        with self._lock:
            self.started += 1
        result = self.inner(*args)
        with self._lock:
            self.finished.append(result)
        return result


def simulator(**config) -> tuple[SimulatorConfig, CountingCall]:
    settings = SimulatorConfig(**config)
    return settings, CountingCall(openai_call(simulated_client(settings, max_retries=0), BOOK))


def reworded(version):
    """The same prompt told to be decisive instead of asking; a second variant that really differs."""
    system = MessageSpec("system", version.messages[0].content.replace("If the ticket is too vague", "Be decisive. If"))
    return dataclasses.replace(version, messages=(system, *version.messages[1:]))


def test_an_experiment_over_the_remaining_budget_is_refused_before_any_call():
    config, call = simulator()
    experiment = Experiment(
        (Variant("A", TRIAGE), Variant("B", TRIAGE, model="gpt-4.1")), TRIAGE_CASES, judge_model="gpt-4o-mini"
    )
    estimate = estimate_cost(experiment, BOOK)
    assert estimate.calls == 2 * 22 + 2 * 4  # every case per variant, plus the rubric cases' judge calls
    assert estimate.judge_calls == 8
    with pytest.raises(BudgetExceeded, match="more than the"):
        run_experiment(experiment, call=call, price_book=BOOK, remaining_budget_micro=estimate.total_micro - 1)
    assert call.started == 0 and config.calls == 0
    run = run_experiment(experiment, call=call, price_book=BOOK, remaining_budget_micro=estimate.total_micro)
    assert len(run.cells) == 44 and 0 < run.billed_micro <= estimate.total_micro


def test_cancelling_midway_keeps_finished_cells_and_bills_only_them():
    config, call = simulator(latency_ms=40)
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done >= 4:
            cancel.set()

    experiment = Experiment((Variant("A", TRIAGE),), TRIAGE_CASES)
    run = run_experiment(experiment, call=call, price_book=BOOK, concurrency=2, progress=progress, cancel=cancel)
    assert run.cancelled
    assert 4 <= len(run.cells) <= 5 < run.planned_cells == 22
    # Calls in flight when the cancel came finished and were kept; none was started after.
    assert call.started == len(call.finished) == len(run.cells) == config.calls
    assert run.billed_micro == sum(result.cost_micro for result in call.finished) > 0
    assert seen[0] == (1, 22) and [done for done, _ in seen] == list(range(1, len(run.cells) + 1))
    assert {c.case_id for c in run.cells} <= {c.id for c in TRIAGE_CASES.cases[:6]}


def test_rate_limits_are_retried_with_back_off_and_the_run_completes():
    # The first three calls are refused with retry-after 0.2 s.
    config, call = simulator(faults=["429", "429", "429"], retry_after_s=0.2)
    limiter = AimdLimiter(4)
    experiment = Experiment((Variant("A", TRIAGE),), TRIAGE_CASES)
    started = time.perf_counter()
    run = run_experiment(experiment, call=call, price_book=BOOK, limiter=limiter)
    assert time.perf_counter() - started >= 0.2  # the retry-after was honoured
    assert len(run.cells) == 22 and not run.cancelled
    assert not [c for c in run.cells if c.error and "call failed" in c.error]
    assert limiter.rate_limits == 3 and limiter.lowest_limit <= 2
    assert config.calls == 22 + 3 and config.fault_counts()["429"] == 3


def test_a_call_rate_limited_too_often_becomes_that_cells_error():
    _, call = simulator(faults=["429"] * 8, retry_after_s=0.01)
    single = dataclasses.replace(TRIAGE_CASES, cases=(TRIAGE_CASES.cases[0], TRIAGE_CASES.cases[2]))
    run = run_experiment(Experiment((Variant("A", TRIAGE),), single), call=call, price_book=BOOK, concurrency=1)
    assert run.cells[0].status == "error" and "rate limited after 8 attempts" in run.cells[0].error
    assert run.cells[1].status in ("pass", "fail") and run.cells[0].cost_micro == 0


def test_the_limiter_halves_once_per_burst_and_grows_back_slowly():
    limiter = AimdLimiter(8)
    limiter.rate_limited(0.05)
    limiter.rate_limited(0.05)  # same burst: already pausing
    assert int(limiter.limit) == 4
    time.sleep(0.06)
    limiter.rate_limited(None)
    assert int(limiter.limit) == 2
    limiter.succeeded()
    assert int(limiter.limit) == 2
    for _ in range(20):
        limiter.succeeded()
    assert 4 <= limiter.limit < 8  # about one slot per window of successes
    for _ in range(500):
        limiter.succeeded()
    assert limiter.limit == 8


def test_failed_calls_and_unrenderable_cases_are_errors_of_their_cells():
    _, good = simulator()

    def flaky(messages, model, params, tools):
        if "Charged twice" in messages[1]["content"]:
            raise ConnectionError("upstream reset the connection")
        return good(messages, model, params, tools)

    broken = dataclasses.replace(TRIAGE_CASES.cases[1], variables={"subject": "x"})
    cases = dataclasses.replace(TRIAGE_CASES, cases=(TRIAGE_CASES.cases[0], broken, TRIAGE_CASES.cases[2]))
    run = run_experiment(Experiment((Variant("A", TRIAGE),), cases), call=flaky, price_book=BOOK)
    assert [c.status for c in run.cells[:2]] == ["error", "error"] and run.cells[2].status in ("pass", "fail")
    assert "upstream reset the connection" in run.cells[0].error
    assert "cannot render the prompt" in run.cells[1].error and "missing variable 'body'" in run.cells[1].error
    assert good.started == 1
    assert summarize(run)[0].errors == 2


def stable(run):
    """What must not change between two runs of the same inputs (latency may)."""
    return [
        (c.case_id, c.variant, c.repetition, c.status, c.output, c.input_tokens, c.output_tokens, c.cost_micro,
         c.score, [a["passed"] for a in c.assertions])
        for c in run.cells
    ]  # fmt: skip


def test_same_inputs_give_the_same_results_and_they_survive_json():
    experiment = Experiment((Variant("A", TRIAGE), Variant("B", reworded(TRIAGE))), TRIAGE_CASES, repetitions=2,
                            judge_model="gpt-4o-mini")  # fmt: skip
    first = run_experiment(experiment, call=simulator()[1], price_book=BOOK, concurrency=8)
    second = run_experiment(experiment, call=simulator()[1], price_book=BOOK, concurrency=3)
    assert stable(first) == stable(second)
    assert [c.to_json() for c in comparisons(first)] == [c.to_json() for c in comparisons(second)]
    reopened = run_from_json(json.loads(json.dumps(run_to_json(first))))
    assert reopened == first
    assert summarize(reopened) == summarize(first) and matrix(reopened) == matrix(first)
    with pytest.raises(ValueError, match="format"):
        run_from_json({**run_to_json(first), "format": 99})


def test_ticket_triage_against_the_simulator(capsys):
    experiment = Experiment(
        (Variant("seed", TRIAGE), Variant("decisive-4.1", reworded(TRIAGE), model="gpt-4.1")),
        TRIAGE_CASES,
        judge_model="gpt-4o-mini",
    )
    run = run_experiment(experiment, call=simulator()[1], price_book=BOOK)
    seed, other = summarize(run)
    with capsys.disabled():
        for summary in (seed, other):
            low, high = summary.pass_rate_interval
            print(f"\n{summary.label}: {summary.passed}/{summary.cells} pass ({summary.pass_rate:.0%}, "
                  f"95% CI {low:.2f}-{high:.2f}), {summary.errors} errors, {summary.cost_micro} µ$")  # fmt: skip
        print(comparisons(run)[0].verdict)
    assert seed.errors == other.errors == 0  # every assertion, rubrics included, could be evaluated
    assert 0 < seed.pass_rate < 1
    # The simulator answers differently to a different prompt and model: some case differs.
    differing = matrix(run, differing_only=True)
    assert differing and all(r.variants_differ for r in differing)
    assert all(a["judge_score"] is not None for c in run.cells for a in c.assertions if a["type"] == "llm-rubric")
    assert other.cost_micro > seed.cost_micro  # gpt-4.1 costs more than gpt-4o-mini


def test_tool_calls_from_the_simulator_are_checked_against_the_tool_schema():
    _, support = load_prompt_file("prompts/support-answer.yaml")
    cases = load_testset_file("prompts/testsets/support-answer.yaml")
    run = run_experiment(Experiment((Variant("A", support),), cases, judge_model="gpt-4o-mini"),
                         call=simulator()[1], price_book=BOOK)  # fmt: skip
    tool_outcomes = [a for c in run.cells for a in c.assertions if a["type"] == "tool-call"]
    assert tool_outcomes and not any(a["error"] for a in tool_outcomes)
    called = [c for c in run.cells if c.tool_calls]
    assert called and all(t["name"] == "create_ticket" for c in called for t in c.tool_calls)
