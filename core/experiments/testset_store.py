"""Test sets in the database: imported from ``prompts/testsets``, edited in the app, exported.

The file format (YAML, and CSV for the cases) is core.catalog.testsets'; this module
stores a set per prompt under a name, checks every case against the variables the
prompt's latest version declares, and audits each change. Changes need
``playground.run`` for the prompt's team.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, col, delete, select

from core import clock
from core.audit.record import committing, record
from core.catalog.spec import VariableSpec
from core.catalog.store import get_prompt, latest_version, prompt_by_name, version_spec
from core.catalog.testsets import (
    TestCaseSpec,
    TestSetSpec,
    assertion_to_dict,
    case_variable_problems,
    cases_from_csv,
    cases_to_csv,
    dump_testset,
    load_testset_directory,
    load_testset_text,
)  # fmt: skip
from core.catalog.yaml_io import CatalogValidationError
from core.db import get_or_not_found, saved_id
from core.errors import NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets, refuse_secrets_in
from core.models.catalog import Prompt
from core.models.experiments import TestSet, TestSetCase
from core.permissions import Actor, Permission, require
from core.settings import PROJECT_ROOT

TESTSETS_DIR = PROJECT_ROOT / "prompts" / "testsets"
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class TestSetRow:
    __test__ = False

    id: int
    prompt_id: int
    prompt_name: str
    team_id: int
    name: str
    cases: int
    updated_at: object


def list_testsets(session: Session, *, actor: Actor, prompt_id: int | None = None) -> list[TestSetRow]:
    require(actor, Permission.CATALOG_READ)
    query = select(TestSet, Prompt.name).join(Prompt, col(Prompt.id) == col(TestSet.prompt_id))
    if prompt_id is not None:
        query = query.where(TestSet.prompt_id == prompt_id)
    rows = []
    for testset, prompt_name in session.exec(query.order_by(col(Prompt.name), col(TestSet.name))):
        count = len(session.exec(select(TestSetCase.id).where(TestSetCase.testset_id == testset.id)).all())
        rows.append(
            TestSetRow(
                saved_id(testset),
                testset.prompt_id,
                prompt_name,
                testset.team_id,
                testset.name,
                count,
                testset.updated_at,
            )
        )
    return rows


def get_testset(session: Session, testset_id: int) -> TestSet:
    return get_or_not_found(session, TestSet, testset_id, "test set")


def testset_spec(session: Session, testset_id: int) -> TestSetSpec:
    """The stored set in the engine's (and the file format's) shape, cases in order."""
    testset = get_testset(session, testset_id)
    prompt = get_prompt(session, testset.prompt_id)
    cases = session.exec(
        select(TestSetCase).where(TestSetCase.testset_id == testset_id).order_by(col(TestSetCase.position))
    )
    document = {
        "prompt": prompt.name,
        "description": testset.description,
        "pass_threshold": testset.pass_threshold,
        "cases": [_case_document(c) for c in cases],
    }
    from core.catalog.testsets import parse_testset_document

    return parse_testset_document(document, f"test set {testset.name!r}")


def save_testset(
    *, session: Session, actor: Actor, prompt_id: int, spec: TestSetSpec, name: str = DEFAULT_NAME
) -> TestSet:
    """Create the prompt's set `name`, or replace its description, threshold and cases."""
    prompt = get_prompt(session, prompt_id)
    require(actor, Permission.PLAYGROUND_RUN, team_id=prompt.team_id)
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ValidationError("A test set needs a name of 1 to 64 characters")
    if not spec.cases:
        raise ValidationError("A test set needs at least one case")
    refuse_secrets_in({"the test set name": name, "the test set description": spec.description})
    for position, case in enumerate(spec.cases, start=1):
        # The case as it would be stored: its id, description, variables and assertions.
        refuse_secrets(_case_document(_case_row(0, position, case)), field=f"test case {position}")
    _check_variables(session, prompt, spec)
    testset = session.exec(select(TestSet).where(TestSet.prompt_id == prompt.id, TestSet.name == name)).first()
    before = None
    sources: dict[str, tuple[str | None, str | None]] = {}
    with committing(session):
        if testset is None:
            testset = TestSet(prompt_id=saved_id(prompt), team_id=prompt.team_id, name=name, updated_by=actor.ref)
            session.add(testset)
            session.flush()
        else:
            before = {"cases": _case_count(session, saved_id(testset))}
            # A case made from production keeps its link to the call it came from (and so
            # its retention) through an edit of the set, by its id.
            sources = {
                key: (request_id, source)
                for key, request_id, source in session.exec(
                    select(TestSetCase.case_key, TestSetCase.source_request_id, TestSetCase.source_json).where(
                        TestSetCase.testset_id == testset.id, col(TestSetCase.source_json).is_not(None)
                    )
                )
            }
            session.exec(delete(TestSetCase).where(col(TestSetCase.testset_id) == testset.id))
        testset.description, testset.pass_threshold = spec.description, spec.pass_threshold
        testset.updated_by, testset.updated_at = actor.ref, clock.now()
        session.add(testset)
        for position, case in enumerate(spec.cases):
            row = _case_row(saved_id(testset), position, case)
            row.source_request_id, row.source_json = sources.get(case.id, (None, None))
            session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="testset.save" if before else "testset.create",
            target_type="testset",
            target_id=saved_id(testset),
            team_id=prompt.team_id,
            before=before,
            after={"prompt_id": prompt.id, "name": name, "cases": len(spec.cases)},
        )
    return testset


def import_yaml(*, session: Session, actor: Actor, prompt_id: int, text: str, name: str = DEFAULT_NAME) -> TestSet:
    """Replace (or create) a set from the YAML file format; the file must name this prompt."""
    prompt = get_prompt(session, prompt_id)
    spec = _parsed(lambda: load_testset_text(text, "the YAML"))
    if spec.prompt != prompt.name:
        raise ValidationError(f"The YAML is a test set for {spec.prompt!r}, not for {prompt.name!r}")
    return save_testset(session=session, actor=actor, prompt_id=prompt_id, spec=spec, name=name)


def import_csv(*, session: Session, actor: Actor, testset_id: int, text: str) -> TestSet:
    """Replace a set's cases by those of a CSV (columns as core.catalog.testsets describes)."""
    testset = get_testset(session, testset_id)
    prompt = get_prompt(session, testset.prompt_id)
    variables = _variables(session, prompt)
    cases = _parsed(lambda: cases_from_csv(text, variables, "the CSV"))
    spec = TestSetSpec(
        prompt=prompt.name, cases=tuple(cases), description=testset.description, pass_threshold=testset.pass_threshold
    )
    return save_testset(session=session, actor=actor, prompt_id=saved_id(prompt), spec=spec, name=testset.name)


def delete_case(*, session: Session, actor: Actor, testset_id: int, case_key: str) -> None:
    testset = get_testset(session, testset_id)
    require(actor, Permission.PLAYGROUND_RUN, team_id=testset.team_id)
    row = session.exec(
        select(TestSetCase).where(TestSetCase.testset_id == testset_id, TestSetCase.case_key == case_key)
    ).first()
    if row is None:
        raise NotFound(f"Test set {testset.name!r} has no case {case_key!r}")
    if _case_count(session, testset_id) <= 1:
        raise ValidationError("A test set needs at least one case; delete the set's last case by replacing the set")
    with committing(session):
        session.delete(row)
        testset.updated_by, testset.updated_at = actor.ref, clock.now()
        session.add(testset)
        record(
            session,
            actor=actor,
            action="testset.case.delete",
            target_type="testset",
            target_id=saved_id(testset),
            team_id=testset.team_id,
            before={"case": case_key},
        )


def export_yaml(session: Session, *, actor: Actor, testset_id: int) -> str:
    require(actor, Permission.CATALOG_READ)
    return dump_testset(testset_spec(session, testset_id))


def export_csv(session: Session, *, actor: Actor, testset_id: int) -> str:
    require(actor, Permission.CATALOG_READ)
    spec = testset_spec(session, testset_id)
    testset = get_testset(session, testset_id)
    return cases_to_csv(spec.cases, _variables(session, get_prompt(session, testset.prompt_id)))


def import_directory(
    *, session: Session, actor: Actor, directory: Path = TESTSETS_DIR, only: set[str] | None = None
) -> list[TestSet]:
    """Every file of ``prompts/testsets`` whose prompt is in the catalog, as its 'default' set."""
    stored = []
    for spec in _parsed(lambda: load_testset_directory(directory)):
        if only is not None and spec.prompt not in only:
            continue
        try:
            prompt = prompt_by_name(session, spec.prompt)
        except NotFound:
            continue
        stored.append(save_testset(session=session, actor=actor, prompt_id=saved_id(prompt), spec=spec))
    return stored


# ---- helpers -------------------------------------------------------------------------


Parsed = TypeVar("Parsed")


def _parsed(load: Callable[[], Parsed]) -> Parsed:
    try:
        return load()
    except CatalogValidationError as error:
        raise ValidationError("; ".join(error.problems[:10])) from None


def _variables(session: Session, prompt: Prompt) -> tuple[VariableSpec, ...]:
    version = latest_version(session, saved_id(prompt))
    return version_spec(version).variables if version else ()


def _check_variables(session: Session, prompt: Prompt, spec: TestSetSpec) -> None:
    version = latest_version(session, saved_id(prompt))
    if version is None:
        return
    problems = case_variable_problems(spec, version_spec(version), prompt.name)
    if problems:
        raise ValidationError("; ".join(problems[:10]))


def _case_count(session: Session, testset_id: int) -> int:
    return len(session.exec(select(TestSetCase.id).where(TestSetCase.testset_id == testset_id)).all())


def _case_row(testset_id: int, position: int, case: TestCaseSpec) -> TestSetCase:
    return TestSetCase(
        testset_id=testset_id,
        position=position,
        case_key=case.id,
        description=case.description,
        variables_json=json.dumps(dict(case.variables), ensure_ascii=False),
        assertions_json=json.dumps([assertion_to_dict(a) for a in case.assertions], ensure_ascii=False),
        pass_threshold=case.pass_threshold,
    )


def _case_document(row: TestSetCase) -> dict[str, Any]:
    data = {
        "id": row.case_key,
        "variables": json.loads(row.variables_json),
        "assertions": json.loads(row.assertions_json),
    }
    if row.description:
        data["description"] = row.description
    if row.pass_threshold is not None:
        data["pass_threshold"] = row.pass_threshold
    return data
