"""From a catch to a test: "add to test set", and how versions do on such cases.

From a held request, a reviewed answer or a call with a low feedback score, ``add_case``
makes a test case in the prompt's ``from-production`` set: the call's variables as the
team's guardrail policy redacted them, assertions prefilled from the rule or the verdict,
and a link to the source. The case points at the call's stored payload, so when retention
or an erasure deletes that payload the case goes with it (a foreign key with ON DELETE
CASCADE). ``results_on_production_cases`` says how a version did on them in its latest
experiment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.catalog.escalation import EscalationRule, response_schema_of
from core.catalog.spec import VersionSpec
from core.catalog.store import prompt_by_name, version_spec
from core.db import saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.experiments.catches import WRONG, answer_text, catch_by_id
from core.experiments.results import run_from_json
from core.gateway.catches import LOW_FEEDBACK
from core.models.catalog import Prompt, PromptVersion
from core.models.experiments import Experiment, RequestFeedback, TestSet, TestSetCase
from core.models.gateway import GatewayCall, HeldRequest, StoredPayload
from core.permissions import Actor, Permission, require

PRODUCTION_SET = "from-production"
SOURCES = ("held", "catch", "feedback")


def production_cases(session: Session, *, actor: Actor, prompt_name: str) -> list[dict[str, Any]]:
    """The prompt's cases made from production, each with where it came from."""
    require(actor, Permission.CATALOG_READ)
    prompt = prompt_by_name(session, prompt_name)
    testset = _production_set(session, saved_id(prompt))
    if testset is None:
        return []
    rows = session.exec(
        select(TestSetCase).where(TestSetCase.testset_id == testset.id).order_by(col(TestSetCase.position))
    ).all()
    return [
        {
            "case": r.case_key,
            "source": json.loads(r.source_json or "{}"),
            "variables": json.loads(r.variables_json),
            "assertions": json.loads(r.assertions_json),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class CaseResults:
    """How one version did on the prompt's production-born cases, in its latest experiment."""

    version_number: int
    experiment_id: int | None  # None: no finished experiment ran the version on them yet
    passed: tuple[str, ...]
    failed: tuple[str, ...]
    not_run: tuple[str, ...]  # cases added after that experiment

    @property
    def passes_all(self) -> bool:
        return self.experiment_id is not None and not self.failed and not self.not_run


def results_on_production_cases(session: Session, *, actor: Actor, version_id: int) -> CaseResults | None:
    """The version's results on its prompt's production-born cases (None: the prompt has none)."""
    require(actor, Permission.CATALOG_READ)
    version = session.get(PromptVersion, version_id)
    if version is None:
        raise NotFound(f"No prompt version {version_id}")
    testset = _production_set(session, version.prompt_id)
    if testset is None:
        return None
    case_keys = session.exec(select(TestSetCase.case_key).where(TestSetCase.testset_id == testset.id)).all()
    if not case_keys:
        return None
    runs = session.exec(
        select(Experiment)
        .where(Experiment.testset_id == testset.id, Experiment.status == "finished")
        .order_by(col(Experiment.id).desc())
    ).all()
    for experiment in runs:
        label = next((v["label"] for v in json.loads(experiment.variants_json) if v["version_id"] == version_id), None)
        if label is None or not experiment.results_json:
            continue
        run = run_from_json(json.loads(experiment.results_json))
        status: dict[str, bool] = {}
        for cell in run.cells:
            if cell.variant == label:
                # A case passes when every repetition passed.
                status[cell.case_id] = status.get(cell.case_id, True) and cell.status == "pass"
        return CaseResults(
            version_number=version.number,
            experiment_id=saved_id(experiment),
            passed=tuple(k for k in case_keys if status.get(k) is True),
            failed=tuple(k for k in case_keys if status.get(k) is False),
            not_run=tuple(k for k in case_keys if k not in status),
        )
    return CaseResults(version.number, None, (), (), tuple(case_keys))


def add_case(session: Session, *, actor: Actor, source: str, ref: str) -> TestSetCase:
    """A test case from a held request (``ref`` its held id), a catch (its id) or a call's
    low feedback score (``ref`` the request id), in the prompt's ``from-production`` set."""
    if source not in SOURCES:
        raise ValidationError(f"A test case comes from one of: {', '.join(SOURCES)}")
    request_id, assertions, description = _source(session, actor, source, ref)
    call = session.exec(select(GatewayCall).where(GatewayCall.request_id == request_id)).first()
    if call is None or not call.prompt_name:
        raise ValidationError(
            "Only a call of a catalog prompt can become a test case (it needs the prompt's variables)"
        )
    prompt = prompt_by_name(session, call.prompt_name)
    if source == "feedback":
        # A user's low score reaches the team's prompt engineers; held and reviewed answers
        # are the reviewers' (checked in _source).
        require(actor, Permission.PLAYGROUND_RUN, team_id=prompt.team_id)
    payload = session.get(StoredPayload, request_id)
    variables = json.loads(payload.request_json or "{}").get("variables") if payload is not None else None
    if variables is None:
        raise ValidationError(
            "The team's payload policy kept no input for this call (or its prompt had no escalation rules "
            "when it ran), so there is nothing to make a test case from"
        )
    if session.exec(select(TestSetCase.id).where(TestSetCase.source_request_id == request_id)).first():
        raise Conflict("A test case was already made from this call")
    return _insert_case(
        session,
        actor,
        prompt,
        case_key=f"{source}-{request_id.removeprefix('req_')[:12]}",
        description=description,
        variables=variables,
        assertions=assertions,
        source={"kind": source, "ref": ref, "request_id": request_id},
        request_id=request_id,
    )


def add_case_from_cell(
    session: Session, *, actor: Actor, experiment_id: int, case_id: str, variant: str
) -> TestSetCase:
    """A failed experiment cell as a case of the prompt's ``from-production`` set.

    Its input is the experiment's test case (not a production payload, so no payload links
    it); its assertions come from the escalation rule the cell's answer fired, else they
    are the original case's."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or not experiment.results_json:
        raise NotFound(f"No finished experiment #{experiment_id}")
    require(actor, Permission.PLAYGROUND_RUN, team_id=experiment.team_id)
    run = run_from_json(json.loads(experiment.results_json))
    cell = next((c for c in run.cells if c.case_id == case_id and c.variant == variant and c.status != "pass"), None)
    if cell is None:
        raise ValidationError(f"Experiment #{experiment_id} has no failed cell for case {case_id!r} under {variant!r}")
    original = session.exec(
        select(TestSetCase).where(TestSetCase.testset_id == experiment.testset_id, TestSetCase.case_key == case_id)
    ).first()
    if original is None:
        raise NotFound(f"The case {case_id!r} is no longer in the experiment's test set")
    version_id = next((v["version_id"] for v in json.loads(experiment.variants_json) if v["label"] == variant), None)
    version = session.get(PromptVersion, version_id) if version_id is not None else None
    assertions = (
        _rule_assertions(f"escalation.{cell.escalation[1]}", None, version_spec(version))
        if cell.escalation and version is not None
        else json.loads(original.assertions_json)
    )
    prompt = session.get(Prompt, experiment.prompt_id)
    if prompt is None:
        raise NotFound(f"The prompt of experiment #{experiment_id} is gone")
    return _insert_case(
        session,
        actor,
        prompt,
        case_key=f"cell-{experiment_id}-{case_id}"[:64],
        description=f"Failed in experiment #{experiment_id} under {variant}",
        variables=json.loads(original.variables_json),
        assertions=assertions,
        source={"kind": "cell", "ref": f"{experiment_id}/{case_id}/{variant}"},
        request_id=None,
    )


def _insert_case(
    session: Session,
    actor: Actor,
    prompt: Prompt,
    *,
    case_key: str,
    description: str,
    variables: dict[str, Any],
    assertions: list[dict[str, Any]],
    source: dict[str, Any],
    request_id: str | None,
) -> TestSetCase:
    testset = _production_set(session, saved_id(prompt))
    if (
        testset is not None
        and session.exec(
            select(TestSetCase.id).where(TestSetCase.testset_id == testset.id, TestSetCase.case_key == case_key)
        ).first()
    ):
        raise Conflict("A test case was already made from this")
    with committing(session):
        if testset is None:
            testset = TestSet(
                prompt_id=saved_id(prompt),
                team_id=prompt.team_id,
                name=PRODUCTION_SET,
                description="Cases made from what reviewers and users caught in production",
                updated_by=actor.ref,
            )
            session.add(testset)
            session.flush()
        position = session.exec(
            select(func.count()).select_from(TestSetCase).where(TestSetCase.testset_id == testset.id)
        ).one()
        row = TestSetCase(
            testset_id=saved_id(testset),
            position=position,
            case_key=case_key,
            description=description[:500],
            variables_json=json.dumps(variables, ensure_ascii=False),
            assertions_json=json.dumps(assertions, ensure_ascii=False),
            source_request_id=request_id,
            source_json=json.dumps(source),
        )
        session.add(row)
        testset.updated_by, testset.updated_at = actor.ref, clock.now()
        session.add(testset)
        session.flush()
        record(
            session,
            actor=actor,
            action="testset.case.from_production",
            target_type="testset",
            target_id=saved_id(testset),
            team_id=prompt.team_id,
            after={"case": row.case_key, "source": source},
        )
    return row


# ---- helpers -------------------------------------------------------------------------------


def _source(session: Session, actor: Actor, source: str, ref: str) -> tuple[str, list[dict[str, Any]], str]:
    """(request id, prefilled assertions, description) of a catch."""
    if source == "held":
        require(actor, Permission.REQUEST_REVIEW)
        held = session.exec(select(HeldRequest).where(HeldRequest.public_id == ref)).first()
        if held is None:
            raise NotFound(f"No held request {ref!r}")
        # Denied: the answer was wrong, so the case asks the prompt not to trip the rule again.
        verdict = "denied" if held.status == "denied" else held.status
        assertions = _rule_assertions(held.rule, held.response_json, _version_of(session, held.request_id))
        return held.request_id, assertions, f"Held by {held.rule} ({verdict})"
    if source == "catch":
        require(actor, Permission.REQUEST_REVIEW)
        row = catch_by_id(session, _int(ref))
        if row.review_status == WRONG:
            return row.request_id, [{"type": "icontains", "value": row.expected}], f"Reviewed wrong ({row.rule})"
        stored = session.get(StoredPayload, row.request_id)
        answer = stored.response_json if stored else None
        return row.request_id, _rule_assertions(row.rule, answer, _version_of(session, row.request_id)), row.rule
    feedback = session.exec(
        select(RequestFeedback).where(RequestFeedback.request_id == ref).order_by(col(RequestFeedback.id).desc())
    ).first()
    if feedback is None:
        raise NotFound(f"No feedback on the call {ref!r}")
    if feedback.score > LOW_FEEDBACK:
        raise ValidationError("Only a low feedback score (a user's catch) becomes a test case")
    stored = session.get(StoredPayload, ref)
    return ref, _rule_assertions("feedback", stored.response_json if stored else None), "A user scored the answer low"


def _rule_assertions(rule: str, response_json: str | None, spec: VersionSpec | None = None) -> list[dict[str, Any]]:
    """Assertions the caught answer fails: from the rule that caught it when the rule says
    what a good answer looks like, else "not this answer again" (a reviewer sharpens it)."""
    written = next((r for r in spec.escalation if f"escalation.{r.name}" == rule), None) if spec else None
    if written is not None:
        from_rule = _assertions_of_rule(written, spec)
        if from_rule:
            return from_rule
    answer = answer_text(response_json)
    if answer:
        first_line = answer.strip().splitlines()[0][:200]
        return [{"type": "not-contains", "value": first_line}]
    return [{"type": "regex", "value": r"\S"}]  # at least an answer; a reviewer sharpens it


def _assertions_of_rule(rule: EscalationRule, spec: VersionSpec | None) -> list[dict[str, Any]]:
    when = rule.when
    if "mentions" in when:
        return [{"type": "not-contains", "value": str(term)} for term in when["mentions"]]
    schema = response_schema_of(spec.params.response_format) if spec else None
    if "fails_schema" in when and schema is not None:
        return [{"type": "json-schema", "value": dict(schema)}]
    if "field" in when and "." not in str(when["field"]):
        bound = {"minimum": when["below"]} if "below" in when else {"maximum": when["above"]}
        field_schema = {"type": "object", "required": [when["field"]], "properties": {when["field"]: bound}}
        return [{"type": "json-schema", "value": field_schema}]
    return []


def _version_of(session: Session, request_id: str) -> VersionSpec | None:
    """The prompt version a call ran (its rules say what the case should check)."""
    call = session.exec(select(GatewayCall).where(GatewayCall.request_id == request_id)).first()
    if call is None or not call.prompt_name or not (call.prompt_version or "").startswith("v"):
        return None
    prompt = prompt_by_name(session, call.prompt_name)
    number = (call.prompt_version or "")[1:]
    found = (
        session.exec(
            select(PromptVersion).where(PromptVersion.prompt_id == prompt.id, PromptVersion.number == int(number))
        ).first()
        if number.isdigit()
        else None
    )
    return version_spec(found) if found is not None else None


def _production_set(session: Session, prompt_id: int) -> TestSet | None:
    return session.exec(select(TestSet).where(TestSet.prompt_id == prompt_id, TestSet.name == PRODUCTION_SET)).first()


def _int(ref: str) -> int:
    if not re.fullmatch(r"\d{1,12}", str(ref)):
        raise NotFound(f"No caught answer {ref!r}")
    return int(ref)
