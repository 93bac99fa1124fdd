"""The statistics against values computed by hand (scipy is not a dependency)."""

from __future__ import annotations

import math

import pytest

from core.experiments.results import CellResult, ExperimentRun, VariantInfo, comparisons, matrix, summarize
from core.experiments.stats import (
    NO_DIFFERENCE,
    PairedOutcome,
    compare,
    mcnemar,
    p95,
    paired_bootstrap,
    wilson_interval,
)  # fmt: skip


def test_wilson_interval_known_values():
    # 8/10: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.71674,
    # half-width 1.96·sqrt(0.016 + 1.96²/400) / 1.38415 = 0.22657.
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    # 0/10 and 10/10: the interval still has width, unlike p ± z·sqrt(p(1-p)/n).
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_for_few_discordant_pairs():
    # b=1, c=7: 2 · (C(8,0) + C(8,1)) / 2⁸ = 18/256 = 0.0703125.
    result = mcnemar(1, 7)
    assert result.method == "exact" and result.p_value == pytest.approx(0.0703125)
    # b=2, c=10: 2 · (1 + 12 + 66) / 4096 = 0.038574.
    assert mcnemar(10, 2).p_value == pytest.approx(158 / 4096)
    assert mcnemar(3, 3).p_value == 1.0  # capped, never above 1
    assert mcnemar(0, 0).p_value == 1.0
    assert mcnemar(12, 12).method == "exact"  # b + c = 24 < 25


def test_mcnemar_chi_square_with_continuity_correction_from_25_discordant_pairs():
    # b=10, c=25: X² = (15 - 1)² / 35 = 5.6; P[χ²₁ > 5.6] = erfc(sqrt(2.8)) = 0.017960
    # (chi-square tables: 5.024 → 0.025, 6.635 → 0.01).
    result = mcnemar(10, 25)
    assert result.method == "chi-square" and result.p_value == pytest.approx(0.017960, abs=1e-6)
    # Agresti, Categorical Data Analysis (2nd ed.), §10.1.1, presidential approval: b=150,
    # c=86. Without correction z² = 64²/236 = 17.36; with it (63)²/236 = 16.818, p = 4.1e-5.
    assert mcnemar(150, 86).p_value == pytest.approx(math.erfc(math.sqrt(16.8178 / 2)), rel=1e-3)
    assert mcnemar(150, 86).p_value == pytest.approx(4.115e-5, rel=1e-2)


def test_paired_bootstrap_is_seeded_and_brackets_the_difference():
    a = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0] * 3
    b = [1, 1, 1, 1, 0, 1, 1, 1, 1, 1] * 3
    first = paired_bootstrap(a, b, seed=7)
    assert first == paired_bootstrap(a, b, seed=7)
    difference, low, high = first
    assert difference == pytest.approx(0.3)
    assert 0 < low < difference < high <= 0.6
    assert paired_bootstrap([1, 1, 0], [1, 1, 0]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_bootstrap([1], [1, 0])


def test_p95_is_nearest_rank():
    assert p95(list(range(1, 101))) == 95
    assert p95(list(range(1, 21))) == 19
    assert p95([5.0]) == 5.0 and p95([]) == 0.0


def test_compare_names_a_winner_only_when_mcnemar_is_significant():
    # 40 cases: B fixes 12 that A fails and breaks 2 → b=2, c=12, exact p = 2·(1+14+91)/2¹⁴ = 0.01294.
    a = {i: PairedOutcome(i < 20 or i >= 38, 1.0 if i < 20 or i >= 38 else 0.0) for i in range(40)}
    b = {i: PairedOutcome(i < 32, 1.0 if i < 32 else 0.0) for i in range(40)}
    result = compare(a, b, labels=("v1", "v2"))
    assert (result.mcnemar.only_a_passed, result.mcnemar.only_b_passed) == (2, 12)
    assert result.mcnemar.p_value == pytest.approx(212 / 2**14)
    assert result.winner == "v2" and result.verdict == "v2 is better"
    assert result.score_interval[0] > 0
    # b=1, c=7 (p = 0.0703): a visible lead, but not enough to name a winner.
    b = {i: PairedOutcome(i < 26, 1.0 if i < 26 else 0.0) for i in range(40)}
    a = {i: PairedOutcome(i < 19 or i == 39, 1.0 if i < 19 or i == 39 else 0.0) for i in range(40)}
    close = compare(a, b)
    assert close.mcnemar.p_value == pytest.approx(0.0703125)
    assert close.winner is None and close.verdict == NO_DIFFERENCE


def cell(case: str, variant: str, passed: bool, latency: float = 100.0) -> CellResult:
    return CellResult(case, variant, 0, "pass" if passed else "fail", output=f"{case}/{variant}",
                      latency_ms=latency, cost_micro=10, score=1.0 if passed else 0.0)  # fmt: skip


def test_equal_pass_rates_can_hide_a_regression_the_matrix_shows():
    cases = [f"case-{i}" for i in range(10)]
    # Both pass 6 of 10; B breaks case-0 and fixes case-9.
    a_pass = {f"case-{i}" for i in range(6)}
    b_pass = {f"case-{i}" for i in range(1, 6)} | {"case-9"}
    run = ExperimentRun(
        variants=(VariantInfo("A", "gpt-4o-mini"), VariantInfo("B", "gpt-4.1-mini")),
        case_ids=tuple(cases),
        repetitions=1,
        cells=tuple(cell(c, v, c in passing) for c in cases for v, passing in (("A", a_pass), ("B", b_pass))),
        planned_cells=20,
    )
    summary = {s.label: s for s in summarize(run)}
    assert summary["A"].pass_rate == summary["B"].pass_rate == 0.6
    (verdict,) = comparisons(run)
    assert verdict.winner is None and verdict.mcnemar.p_value == 1.0
    differing = matrix(run, differing_only=True)
    assert [(r.case_id, r.entries["A"].label, r.entries["B"].label) for r in differing] == [
        ("case-0", "pass", "fail"),
        ("case-9", "fail", "pass"),
    ]
    assert [r.case_id for r in matrix(run, failures_only=True)] == ["case-0", "case-6", "case-7", "case-8", "case-9"]
