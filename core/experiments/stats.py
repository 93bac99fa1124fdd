"""Is the difference between two prompt variants more than noise?

Pure Python (no scipy), deterministic. The pieces:

- ``wilson_interval``: 95% Wilson score interval for a pass rate; unlike the normal
  approximation it stays inside [0, 1] and behaves at 0/n and n/n, which small test sets hit.
- ``mcnemar``: McNemar's test on paired pass/fail. Only discordant pairs matter (b: A
  passed where B failed, c: the reverse). When b + c < ``MCNEMAR_EXACT_BELOW`` (25) the
  exact two-sided binomial test is used (p = 2·P[X <= min(b, c)], X ~ Bin(b + c, 1/2),
  capped at 1); from 25 on, the chi-square statistic with continuity correction
  (|b - c| - 1)² / (b + c) on 1 degree of freedom. 25 is the usual textbook cutoff
  (e.g. the statsmodels default): below it the chi-square approximation is poor.
- ``paired_bootstrap``: 95% percentile interval of the mean difference in case scores,
  resampling cases (pairs kept together) with a seeded PRNG.
- ``compare``: the verdict. A winner is named only when McNemar's p < 0.05 on paired
  pass/fail - the outcome an approval is about. The bootstrap interval is reported next
  to it but never names a winner on its own: partial credit moving while no case changes
  pass/fail is not a reason to approve, and one test means one chance of a false alarm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

Z_95 = 1.959963984540054
MCNEMAR_EXACT_BELOW = 25
SIGNIFICANCE = 0.05
BOOTSTRAP_RESAMPLES = 2000
NO_DIFFERENCE = "no significant difference"


def wilson_interval(passed: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval; (0, 1) when there is no data."""
    if total <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= total:
        raise ValueError("passed must be between 0 and total")
    p = passed / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == total else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class McNemar:
    only_a_passed: int  # b
    only_b_passed: int  # c
    p_value: float
    method: str  # "exact" or "chi-square"


def mcnemar(only_a_passed: int, only_b_passed: int) -> McNemar:
    b, c = only_a_passed, only_b_passed
    n = b + c
    if n == 0:
        return McNemar(b, c, 1.0, "exact")
    if n < MCNEMAR_EXACT_BELOW:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
        return McNemar(b, c, min(1.0, 2 * tail), "exact")
    statistic = (abs(b - c) - 1) ** 2 / n
    # Survival function of chi-square with 1 df: P[Z² > x] = erfc(sqrt(x / 2)).
    return McNemar(b, c, math.erfc(math.sqrt(statistic / 2)), "chi-square")


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(mean of b - a, low, high): the 95% percentile interval of the mean paired difference."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if not a:
        return 0.0, 0.0, 0.0
    differences = [y - x for x, y in zip(a, b, strict=True)]
    n = len(differences)
    rng = random.Random(seed)
    means = sorted(sum(differences[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    low = means[int(0.025 * (resamples - 1))]
    high = means[math.ceil(0.975 * (resamples - 1))]
    return sum(differences) / n, low, high


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, nearest-rank: a latency some call actually had, never interpolated."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    pairs: int
    a_pass_rate: float
    b_pass_rate: float
    mcnemar: McNemar
    score_difference: float  # mean of b - a
    score_interval: tuple[float, float]
    winner: str | None  # a label, or None

    @property
    def verdict(self) -> str:
        return f"{self.winner} is better" if self.winner else NO_DIFFERENCE

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["score_interval"] = list(self.score_interval)
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        fields = {k: v for k, v in data.items() if k != "verdict"}
        fields["mcnemar"] = McNemar(**fields["mcnemar"])
        fields["score_interval"] = tuple(fields["score_interval"])
        return cls(**fields)


@dataclass(frozen=True)
class PairedOutcome:
    """One case (and repetition) as run by a variant: did it pass, and its score 0..1."""

    passed: bool
    score: float


Key = TypeVar("Key", bound=Hashable)  # what pairs two variants' outcomes: (case id, repetition)


def compare(
    a: Mapping[Key, PairedOutcome],
    b: Mapping[Key, PairedOutcome],
    *,
    labels: tuple[str, str] = ("A", "B"),
    seed: int = 0,
) -> Comparison:
    """Compare two variants on the keys (case, repetition) both have results for."""
    keys = [key for key in a if key in b]
    only_a = sum(1 for k in keys if a[k].passed and not b[k].passed)
    only_b = sum(1 for k in keys if b[k].passed and not a[k].passed)
    test = mcnemar(only_a, only_b)
    difference, low, high = paired_bootstrap([a[k].score for k in keys], [b[k].score for k in keys], seed=seed)
    winner = None
    if test.p_value < SIGNIFICANCE:
        winner = labels[0] if only_a > only_b else labels[1]

    def rate(side: Mapping[Key, PairedOutcome]) -> float:
        return sum(side[k].passed for k in keys) / len(keys) if keys else 0.0

    return Comparison(labels[0], labels[1], len(keys), rate(a), rate(b), test, difference, (low, high), winner)
