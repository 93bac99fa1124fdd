"""An experiment's result as the tables and chart data people read (plain rows, no UI)."""

from __future__ import annotations

from typing import Any

from core.budgets.money import format_micro
from core.experiments.results import ExperimentRun, MatrixEntry, comparisons, matrix, summarize

# The output column shows the start of each output on one line; the whole output is in
# the exported run.
OUTPUT_CHARS = 160


def matrix_rows(
    run: ExperimentRun, *, failures_only: bool = False, differing_only: bool = False
) -> list[dict[str, Any]]:
    """One row per case and variant: pass/fail, why not, the output shortened, tokens, latency, cost."""
    rows = []
    for row in matrix(run, failures_only=failures_only, differing_only=differing_only):
        for label, entry in row.entries.items():
            rows.append(
                {
                    "case": row.case_id,
                    "variant": label,
                    "result": entry.label,
                    "reason": entry.reason,
                    "escalation": entry.escalation,
                    "output": shown_output(entry),
                    "input tokens": round(entry.input_tokens, 1),
                    "output tokens": round(entry.output_tokens, 1),
                    "latency ms": round(entry.latency_ms, 1),
                    "cost": format_micro(entry.cost_micro),
                }
            )
    return rows


def failed_cells(run: ExperimentRun) -> list[tuple[str, str]]:
    """(case, variant) of every case a variant ran and did not always pass."""
    return [
        (row.case_id, label)
        for row in matrix(run)
        for label, entry in row.entries.items()
        if entry.runs and entry.passed < entry.runs
    ]


def shown_output(entry: MatrixEntry) -> str:
    """The output on one line, cut at ``OUTPUT_CHARS`` with an ellipsis; "(no output)" when empty."""
    text = " ".join(entry.output.split())
    if not text:
        return "(no output)" if entry.runs else ""
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 1].rstrip() + "…"


def empty_matrix_reason(run: ExperimentRun, *, failures_only: bool, differing_only: bool) -> str:
    """Why the cases × variants table has no row, for the reader of an empty table."""
    if not run.cells:
        return "This run has no finished cells: it was cancelled or stopped before any call was answered."
    if failures_only and differing_only:
        return "No case fails and differs between variants; turn off the filters to see every case."
    if failures_only:
        return 'Every case passed under every variant; turn off "Failures only" to see them all.'
    if differing_only:
        return 'Every variant got the same result on every case; turn off "Only where variants differ" to see them all.'
    return "This run has no cases."


def summary_rows(run: ExperimentRun) -> list[dict[str, Any]]:
    rows = []
    for s in summarize(run):
        low, high = s.pass_rate_interval
        rows.append(
            {
                "variant": s.label,
                "cells": s.cells,
                "passed": s.passed,
                "errors": s.errors,
                "pass rate": round(s.pass_rate, 4),
                "95% CI low": round(low, 4),
                "95% CI high": round(high, 4),
                "mean latency ms": round(s.mean_latency_ms, 1),
                "p95 latency ms": round(s.p95_latency_ms, 1),
                "total cost": format_micro(s.cost_micro),
            }
        )
    return rows


def comparison_rows(run: ExperimentRun) -> list[dict[str, Any]]:
    """Each pair: McNemar p on paired pass/fail, the bootstrap interval, and a winner only when significant."""
    return [
        {
            "A": c.a,
            "B": c.b,
            "pairs": c.pairs,
            "only A passed": c.mcnemar.only_a_passed,
            "only B passed": c.mcnemar.only_b_passed,
            "McNemar p": round(c.mcnemar.p_value, 4),
            "score B-A": round(c.score_difference, 4),
            "95% interval": f"[{c.score_interval[0]:+.3f}, {c.score_interval[1]:+.3f}]",
            "verdict": c.verdict,
        }
        for c in comparisons(run)
    ]


def latency_points(run: ExperimentRun) -> list[dict[str, Any]]:
    return [{"variant": c.variant, "latency ms": c.latency_ms} for c in run.cells if c.latency_ms > 0]
