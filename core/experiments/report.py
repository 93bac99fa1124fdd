"""An experiment's result as the tables and chart data people read (plain rows, no UI)."""

from __future__ import annotations

from typing import Any

from core.budgets.money import format_micro
from core.experiments.results import ExperimentRun, comparisons, matrix, summarize


def matrix_rows(
    run: ExperimentRun, *, failures_only: bool = False, differing_only: bool = False
) -> list[dict[str, Any]]:
    """One row per case and variant: pass/fail, output, tokens, latency, cost."""
    rows = []
    for row in matrix(run, failures_only=failures_only, differing_only=differing_only):
        for label, entry in row.entries.items():
            rows.append(
                {
                    "case": row.case_id,
                    "variant": label,
                    "result": entry.label,
                    "output": entry.output[:400],
                    "input tokens": round(entry.input_tokens, 1),
                    "output tokens": round(entry.output_tokens, 1),
                    "latency ms": round(entry.latency_ms, 1),
                    "cost": format_micro(entry.cost_micro),
                }
            )
    return rows


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
