"""The test-set file format: ``prompts/testsets/<prompt-name>.yaml``, and its CSV form.

A test set holds the cases a prompt's versions are evaluated on (A/B runs, submission
evidence). Layout::

    prompt: ticket-triage            # must equal the file name without .yaml
    description: ...                 # optional
    pass_threshold: 1.0              # optional default for cases, 0..1 (default 1.0)
    cases:
      - id: double-charge            # slug, unique in the file
        description: ...
        variables: {subject: ..., body: ...}   # exactly the prompt's declared variables
        pass_threshold: 0.8          # optional: share of assertion weight that must pass
        assertions:
          - {type: is-json}
          - {type: equals, path: urgency, value: high, weight: 2}

Assertion types: equals, contains, icontains, not-contains, starts-with, regex (value is a
string, or any JSON value for equals); is-json (no value); json-schema (value is a JSON
Schema); max-latency-ms (integer), max-cost-usd (number); llm-rubric (value is the rubric
text a grader model scores against); tool-call (value ``{name, arguments?}``: the model
must call that tool, with at least those arguments). ``path`` (dotted, e.g.
``claim_issues.0.problem``) applies a text assertion to a field of the JSON output instead
of the whole text. ``weight`` defaults to 1. A case passes when the weight of its passing
assertions divided by its total weight reaches its threshold.

CSV form (one row per case, for editing in a spreadsheet): columns ``id``,
``description``, ``pass_threshold`` (blank = the set's default), one ``var.<name>`` column
per declared variable, and ``assertions`` holding the JSON array of assertions. A string
variable's cell is its text as is; other types are JSON (``42``, ``true``, ``["a", "b"]``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from core.catalog.file_schemas import TESTSET_FILE_SCHEMA
from core.catalog.render import variable_problems
from core.catalog.spec import VariableSpec, VersionSpec
from core.catalog.yaml_io import (
    CatalogValidationError,
    check_size,
    dump_yaml,
    parse_yaml,
    read_limited,
    schema_problems,
)  # fmt: skip

DEFAULT_PASS_THRESHOLD = 1.0
TESTSET_FILE_SUFFIX = ".yaml"
CSV_VARIABLE_PREFIX = "var."


@dataclass(frozen=True)
class Assertion:
    type: str
    value: Any = None
    path: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class TestCaseSpec:
    __test__ = False  # not a pytest class, whatever its name

    id: str
    description: str
    variables: Mapping[str, Any]
    assertions: tuple[Assertion, ...]
    pass_threshold: float | None = None  # None: the test set's default


@dataclass(frozen=True)
class TestSetSpec:
    __test__ = False

    prompt: str
    cases: tuple[TestCaseSpec, ...]
    description: str = ""
    pass_threshold: float = DEFAULT_PASS_THRESHOLD

    def threshold_for(self, case: TestCaseSpec) -> float:
        return self.pass_threshold if case.pass_threshold is None else case.pass_threshold


def parse_testset_document(document: Any, source: str, *, expected_prompt: str | None = None) -> TestSetSpec:
    problems = schema_problems(document, TESTSET_FILE_SCHEMA, source)
    if not problems:
        problems = _semantic_problems(document, source, expected_prompt)
    if problems:
        raise CatalogValidationError(problems)
    return TestSetSpec(
        prompt=document["prompt"],
        description=document.get("description", ""),
        pass_threshold=document.get("pass_threshold", DEFAULT_PASS_THRESHOLD),
        cases=tuple(_case_from_dict(case) for case in document["cases"]),
    )


def load_testset_text(text: str, source: str = "<testset>") -> TestSetSpec:
    return parse_testset_document(parse_yaml(text, source), source)


def load_testset_file(path: str | Path) -> TestSetSpec:
    path = Path(path)
    text = read_limited(path)
    return parse_testset_document(parse_yaml(text, str(path)), str(path), expected_prompt=path.stem)


def load_testset_directory(directory: str | Path) -> list[TestSetSpec]:
    """Every test set in ``directory``, sorted by prompt; all or nothing, all problems listed."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogValidationError([f"{directory}: not a directory"])
    loaded, problems = [], []
    for path in sorted(directory.glob(f"*{TESTSET_FILE_SUFFIX}")):
        try:
            loaded.append(load_testset_file(path))
        except CatalogValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CatalogValidationError(problems)
    return loaded


def dump_testset(testset: TestSetSpec) -> str:
    document: dict[str, Any] = {"prompt": testset.prompt}
    if testset.description:
        document["description"] = testset.description
    if testset.pass_threshold != DEFAULT_PASS_THRESHOLD:
        document["pass_threshold"] = testset.pass_threshold
    document["cases"] = [_case_to_dict(case) for case in testset.cases]
    return dump_yaml(document)


def case_variable_problems(testset: TestSetSpec, version: VersionSpec, source: str) -> list[str]:
    """Cases whose variables do not fit the version's declarations (names and types)."""
    return [
        f"{source}: case '{case.id}': {problem}"
        for case in testset.cases
        for problem in variable_problems(version.variables, case.variables)
    ]


def cases_to_csv(cases: Sequence[TestCaseSpec], variables: Sequence[VariableSpec]) -> str:
    columns = ["id", "description", "pass_threshold"]
    columns += [CSV_VARIABLE_PREFIX + v.name for v in variables] + ["assertions"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for case in cases:
        row = {
            "id": case.id,
            "description": case.description,
            "pass_threshold": "" if case.pass_threshold is None else case.pass_threshold,
            "assertions": json.dumps([assertion_to_dict(a) for a in case.assertions], ensure_ascii=False),
        }
        for variable in variables:
            value = case.variables.get(variable.name, "")
            cell = value if variable.type == "string" else json.dumps(value, ensure_ascii=False)
            row[CSV_VARIABLE_PREFIX + variable.name] = cell
        writer.writerow(row)
    return buffer.getvalue()


def cases_from_csv(text: str, variables: Sequence[VariableSpec], source: str = "cases.csv") -> list[TestCaseSpec]:
    """Cases from CSV; all or nothing, each problem naming the row and column."""
    check_size(len(text.encode("utf-8")), source)
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:
        # e.g. a cell longer than the csv module's field limit (131,072 characters)
        raise CatalogValidationError([f"{source}: cannot read the CSV: {exc}"]) from None
    header = reader.fieldnames or []
    declared = {v.name: v for v in variables}
    columns = {c[len(CSV_VARIABLE_PREFIX) :] for c in header if c.startswith(CSV_VARIABLE_PREFIX)}
    problems = [f"{source}: missing column '{c}'" for c in ("id", "assertions") if c not in header]
    problems += [f"{source}: missing column 'var.{n}'" for n in declared if n not in columns]
    problems += [f"{source}: column 'var.{n}' is not a declared variable" for n in sorted(columns - set(declared))]
    if problems:
        raise CatalogValidationError(problems)
    cases = []
    for row_number, row in enumerate(rows, start=2):  # row 1 is the header
        where = f"{source}: row {row_number}"
        case: dict[str, Any] = {"id": row["id"], "variables": {}}
        if row.get("description"):
            case["description"] = row["description"]
        for name, variable in declared.items():
            cell = row[CSV_VARIABLE_PREFIX + name] or ""
            try:
                case["variables"][name] = cell if variable.type == "string" else json.loads(cell)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: var.{name}: not valid JSON for a {variable.type}: {exc.msg}")
            except RecursionError:
                problems.append(f"{where}: var.{name}: JSON nested too deeply")
        for column, parse in (("assertions", json.loads), ("pass_threshold", float)):
            if row.get(column):
                try:
                    case[column] = parse(row[column])
                except ValueError as exc:
                    problems.append(f"{where}: {column}: cannot be read: {exc}")
                except RecursionError:
                    problems.append(f"{where}: {column}: JSON nested too deeply")
        cases.append(case)
    document = {"prompt": "csv-import", "cases": cases}
    problems += schema_problems(document, TESTSET_FILE_SCHEMA, source) if cases else [f"{source}: no cases"]
    if not problems:
        problems = _semantic_problems(document, source, None)
        problems += [
            f"{source}: case '{case['id']}': {problem}"
            for case in cases
            for problem in variable_problems(variables, case["variables"])
        ]
    if problems:
        raise CatalogValidationError(problems)
    return [_case_from_dict(case) for case in cases]


def _semantic_problems(document: dict[str, Any], source: str, expected_prompt: str | None) -> list[str]:
    """What the schema cannot say: unique ids, regexes that compile, schemas that are schemas."""
    problems = []
    if expected_prompt is not None and document["prompt"] != expected_prompt:
        problems.append(
            f"{source}: prompt: '{document['prompt']}' does not match the file name "
            f"'{expected_prompt}{TESTSET_FILE_SUFFIX}'"
        )
    seen: set[str] = set()
    for index, case in enumerate(document["cases"]):
        where = f"{source}: cases.{index} ('{case['id']}')"
        if case["id"] in seen:
            problems.append(f"{where}: id is used by an earlier case")
        seen.add(case["id"])
        for number, assertion in enumerate(case["assertions"]):
            if assertion["type"] == "regex":
                try:
                    re.compile(assertion["value"])
                except re.error as exc:
                    problems.append(f"{where}: assertions.{number}: invalid regex: {exc}")
            elif assertion["type"] == "json-schema":
                try:
                    jsonschema.Draft202012Validator.check_schema(assertion["value"])
                except jsonschema.SchemaError as exc:
                    problems.append(f"{where}: assertions.{number}: invalid JSON Schema: {exc.message}")
    return problems


def _case_from_dict(case: Mapping[str, Any]) -> TestCaseSpec:
    return TestCaseSpec(
        id=case["id"],
        description=case.get("description", ""),
        variables=dict(case["variables"]),
        assertions=tuple(
            Assertion(a["type"], a.get("value"), a.get("path"), a.get("weight", 1.0)) for a in case["assertions"]
        ),
        pass_threshold=case.get("pass_threshold"),
    )


def _case_to_dict(case: TestCaseSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"id": case.id}
    if case.description:
        data["description"] = case.description
    data["variables"] = dict(case.variables)
    if case.pass_threshold is not None:
        data["pass_threshold"] = case.pass_threshold
    data["assertions"] = [assertion_to_dict(a) for a in case.assertions]
    return data


def assertion_to_dict(assertion: Assertion) -> dict[str, Any]:
    data: dict[str, Any] = {"type": assertion.type}
    if assertion.path is not None:
        data["path"] = assertion.path
    if assertion.type != "is-json":
        data["value"] = assertion.value
    if assertion.weight != 1.0:
        data["weight"] = assertion.weight
    return data
