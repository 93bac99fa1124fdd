"""A finished (or cancelled) experiment: its cells, the case × variant matrix, summaries, verdicts.

Plain data, serializable to JSON and back (``run_to_json`` / ``run_from_json``) so a run
can be stored and reopened for comparison without re-running anything.

A cell is one (case, variant, repetition). Status "error" means the cell says nothing
about the prompt (the call failed, or an assertion could not be evaluated): error cells
are left out of pass rates and of the paired comparison, and counted on their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

from core.experiments.stats import Comparison, PairedOutcome, compare, mean, p95, wilson_interval

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CellResult:
    case_id: str
    variant: str
    repetition: int
    status: str  # "pass", "fail" or "error"
    output: str = ""
    tool_calls: tuple[Mapping[str, str], ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cost_micro: int = 0  # the call plus any judge calls, as billed
    score: float = 0.0
    threshold: float = 1.0
    assertions: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    # The version's escalation rules that fired on this answer (the strongest action first),
    # as production would have applied them: e.g. ("hold", "low-confidence").
    escalation: tuple[str, ...] = ()


@dataclass(frozen=True)
class VariantInfo:
    label: str
    model: str
    prompt_hash: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentRun:
    variants: tuple[VariantInfo, ...]
    case_ids: tuple[str, ...]
    repetitions: int
    cells: tuple[CellResult, ...]
    planned_cells: int
    cancelled: bool = False
    estimate_micro: int = 0

    @property
    def billed_micro(self) -> int:
        return sum(cell.cost_micro for cell in self.cells)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(v.label for v in self.variants)

    def cell(self, case_id: str, variant: str, repetition: int = 0) -> CellResult | None:
        return self._index().get((case_id, variant, repetition))

    def _index(self) -> dict[tuple[str, str, int], CellResult]:
        return {(c.case_id, c.variant, c.repetition): c for c in self.cells}


@dataclass(frozen=True)
class MatrixEntry:
    """One case under one variant, over its repetitions."""

    passed: int
    runs: int
    errors: int
    statuses: tuple[str, ...]
    output: str  # the first repetition's output
    reason: str  # why the first repetition that did not pass errored or failed; "" when all passed
    input_tokens: float
    output_tokens: float
    latency_ms: float
    cost_micro: int
    # What production's escalation rules would do with the first answer a rule fired on:
    # "hold: low-confidence"; "" when none fired.
    escalation: str = ""

    @property
    def label(self) -> str:
        if not self.runs:
            return "not run"
        if self.errors == self.runs:
            return "error"
        if self.runs == 1:
            return self.statuses[0]
        return f"{self.passed}/{self.runs - self.errors} pass"


def cell_reason(cell: CellResult) -> str:
    """Why a cell errored (its error) or failed (its failing assertions' reasons); "" for a pass."""
    if cell.status == "pass":
        return ""
    if cell.status == "error":
        return cell.error or "the cell could not be evaluated (no reason was recorded)"
    failed = [str(a.get("reason") or f"{a.get('type')} failed") for a in cell.assertions if not a.get("passed")]
    return "; ".join(failed) or f"score {cell.score:.2f} is below the threshold {cell.threshold:.2f}"


@dataclass(frozen=True)
class MatrixRow:
    case_id: str
    entries: Mapping[str, MatrixEntry]  # by variant label

    @property
    def has_failure(self) -> bool:
        return any(e.passed < e.runs or not e.runs for e in self.entries.values())

    @property
    def variants_differ(self) -> bool:
        return len({e.statuses for e in self.entries.values()}) > 1


def matrix(run: ExperimentRun, *, failures_only: bool = False, differing_only: bool = False) -> list[MatrixRow]:
    """Cases × variants in test-set order; optionally only failing rows or rows where variants differ."""
    index = run._index()
    rows = []
    for case_id in run.case_ids:
        entries = {}
        for label in run.labels:
            cells = [c for r in range(run.repetitions) if (c := index.get((case_id, label, r)))]
            entries[label] = MatrixEntry(
                passed=sum(c.status == "pass" for c in cells),
                runs=len(cells),
                errors=sum(c.status == "error" for c in cells),
                statuses=tuple(c.status for c in cells),
                output=cells[0].output if cells else "",
                reason=next((cell_reason(c) for c in cells if c.status != "pass"), ""),
                input_tokens=mean([c.input_tokens for c in cells]),
                output_tokens=mean([c.output_tokens for c in cells]),
                latency_ms=mean([c.latency_ms for c in cells]),
                cost_micro=sum(c.cost_micro for c in cells),
                escalation=next(
                    (
                        f"{c.escalation[0].replace('_', ' ')}: {', '.join(c.escalation[1:])}"
                        for c in cells
                        if c.escalation
                    ),
                    "",
                ),
            )
        row = MatrixRow(case_id, entries)
        if (failures_only and not row.has_failure) or (differing_only and not row.variants_differ):
            continue
        rows.append(row)
    return rows


@dataclass(frozen=True)
class VariantSummary:
    label: str
    cells: int
    passed: int
    errors: int
    pass_rate: float  # over cells that are not errors
    pass_rate_interval: tuple[float, float]
    mean_latency_ms: float
    p95_latency_ms: float
    cost_micro: int


def summarize(run: ExperimentRun) -> list[VariantSummary]:
    summaries = []
    for label in run.labels:
        cells = [c for c in run.cells if c.variant == label]
        judged = [c for c in cells if c.status != "error"]
        passed = sum(c.status == "pass" for c in judged)
        latencies = [c.latency_ms for c in cells if c.latency_ms > 0]
        summaries.append(
            VariantSummary(
                label=label,
                cells=len(cells),
                passed=passed,
                errors=len(cells) - len(judged),
                pass_rate=passed / len(judged) if judged else 0.0,
                pass_rate_interval=wilson_interval(passed, len(judged)),
                mean_latency_ms=mean(latencies),
                p95_latency_ms=p95(latencies),
                cost_micro=sum(c.cost_micro for c in cells),
            )
        )
    return summaries


def comparisons(run: ExperimentRun, *, seed: int = 0) -> list[Comparison]:
    """Every pair of variants, in the order they were declared."""
    outcomes = {label: _outcomes(run, label) for label in run.labels}
    return [compare(outcomes[a], outcomes[b], labels=(a, b), seed=seed) for a, b in combinations(run.labels, 2)]


def _outcomes(run: ExperimentRun, label: str) -> dict[tuple[str, int], PairedOutcome]:
    return {
        (c.case_id, c.repetition): PairedOutcome(c.status == "pass", c.score)
        for c in run.cells
        if c.variant == label and c.status != "error"
    }


def run_to_json(run: ExperimentRun) -> dict[str, Any]:
    """Plain JSON (dicts, lists, numbers, strings) of everything in the run."""
    data = asdict(run)
    data["format"] = FORMAT_VERSION
    data["cells"] = [{**asdict(c), "tool_calls": [dict(t) for t in c.tool_calls],
                      "assertions": [dict(a) for a in c.assertions]} for c in run.cells]  # fmt: skip
    data["variants"] = [{**asdict(v), "params": dict(v.params)} for v in run.variants]
    data["case_ids"] = list(run.case_ids)
    return data


def run_from_json(data: Mapping[str, Any]) -> ExperimentRun:
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"unknown experiment result format {data.get('format')!r}")
    return ExperimentRun(
        variants=tuple(VariantInfo(**v) for v in data["variants"]),
        case_ids=tuple(data["case_ids"]),
        repetitions=data["repetitions"],
        cells=tuple(_cell_from_json(c) for c in data["cells"]),
        planned_cells=data["planned_cells"],
        cancelled=data["cancelled"],
        estimate_micro=data["estimate_micro"],
    )


def _cell_from_json(data: Mapping[str, Any]) -> CellResult:
    return CellResult(
        **{
            **data,
            "tool_calls": tuple(data.get("tool_calls") or ()),
            "assertions": tuple(data.get("assertions") or ()),
            "escalation": tuple(data.get("escalation") or ()),
        }
    )


def ordered(cells: Sequence[CellResult], case_ids: Sequence[str], labels: Sequence[str]) -> tuple[CellResult, ...]:
    """Cells in test-set order, then variant order, then repetition: completion order never shows."""
    case_rank = {c: i for i, c in enumerate(case_ids)}
    label_rank = {v: i for i, v in enumerate(labels)}
    return tuple(sorted(cells, key=lambda c: (case_rank[c.case_id], label_rank[c.variant], c.repetition)))
