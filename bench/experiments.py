"""How close the experiment runner gets to ideal parallelism.

50 cases × 2 variants against the simulator answering in 200 ms, at concurrency 8:
the ideal wall time is 100 × 0.2 s / 8 = 2.5 s; the target is a ratio of at most 1.3.

Run: python bench/experiments.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.budgets.pricing import PriceBook  # noqa: E402
from core.budgets.usage import Usage  # noqa: E402
from core.catalog.files import load_prompt_file  # noqa: E402
from core.catalog.testsets import Assertion, TestCaseSpec, TestSetSpec  # noqa: E402
from core.experiments.calls import CallResult, openai_call  # noqa: E402
from core.experiments.results import summarize  # noqa: E402
from core.experiments.runner import Experiment, Variant, run_experiment  # noqa: E402
from core.simulator import SimulatorConfig, simulated_client  # noqa: E402

CASES, LATENCY_S, CONCURRENCY = 50, 0.2, 8


def main() -> None:
    _, triage = load_prompt_file("prompts/ticket-triage.yaml")
    cases = tuple(
        TestCaseSpec(
            id=f"case-{index}",
            description="",
            variables={
                "subject": f"Ticket {index}",
                "body": f"Order {index} has not arrived.",
                "channel": "email",
                "customer_plan": "pro",
            },  # fmt: skip
            assertions=(Assertion("is-json"), Assertion("equals", "shipping", "intent")),
        )
        for index in range(CASES)
    )
    experiment = Experiment(
        (Variant("gpt-4o-mini", triage), Variant("gpt-4.1-mini", triage, model="gpt-4.1-mini")),
        TestSetSpec("ticket-triage", cases),
    )
    book = PriceBook.from_yaml()
    client = simulated_client(SimulatorConfig(latency_ms=LATENCY_S * 1000), max_retries=0)
    call = openai_call(client, book)
    call([{"role": "user", "content": "warm up"}], "gpt-4o-mini", {}, None)  # SDK import and first connection

    started = time.perf_counter()
    run = run_experiment(experiment, call=call, price_book=book, concurrency=CONCURRENCY)
    wall = time.perf_counter() - started
    ideal = CASES * 2 * LATENCY_S / CONCURRENCY
    print(
        f"{len(run.cells)} calls, {CASES} cases x 2 variants, {LATENCY_S * 1000:.0f} ms each, concurrency {CONCURRENCY}"
    )
    print(f"wall time {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f} (target <= 1.3)")
    for summary in summarize(run):
        print(f"  {summary.label}: {summary.passed}/{summary.cells} pass, p95 latency {summary.p95_latency_ms:.0f} ms")

    # The same run with a call that only sleeps: the runner's own overhead, without the
    # openai SDK and the simulator competing for the GIL (~10 ms of CPU per call).
    reply = run.cells[0]
    canned = CallResult(
        reply.output, usage=Usage(reply.input_tokens, 0, reply.output_tokens), cost_micro=reply.cost_micro
    )

    def sleeping_call(messages, model, params, tools):
        time.sleep(LATENCY_S)
        return canned

    started = time.perf_counter()
    run_experiment(experiment, call=sleeping_call, price_book=book, concurrency=CONCURRENCY)
    wall = time.perf_counter() - started
    print(f"runner alone (call = sleep): wall time {wall:.2f} s, ratio {wall / ideal:.2f}")


if __name__ == "__main__":
    main()
