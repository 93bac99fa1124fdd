"""The loop end to end: a production call violates a rule and is held; a lead denies it and
adds it to the test set; an engineer's new version passes that case in an experiment; the
review shows it; after approval the same input is delivered. Each step is audited."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlmodel import select

from core.catalog import labels, store, workflow
from core.catalog.spec import MessageSpec
from core.errors import Conflict, ValidationError
from core.experiments import production_cases as cases
from core.experiments import report, service
from core.gateway import policies
from core.gateway.errors import HeldForReview
from core.gateway.held import decide
from core.models.audit import AuditEvent
from core.settings import reset_settings
from tests.escalation_support import MONEY_RULE, QUESTION, RAFAEL, TOM, call_prompt, create_prompt, key_caller, version


def audited(session) -> list[str]:
    session.rollback()
    return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


def test_a_held_catch_becomes_a_case_the_next_version_passes_before_it_is_approved(
    session, directory, gateway, monkeypatch
):
    monkeypatch.setenv("QUORUM_JUDGE_MODEL", "off")
    reset_settings()
    policies.forget()
    tom, lead = directory.by_email(TOM), directory.by_email(RAFAEL)
    first = create_prompt(session, directory, (MONEY_RULE,))
    caller = key_caller(session)

    # 1. Production: the answer talks about money back, the rule holds it.
    with pytest.raises(HeldForReview) as caught:
        call_prompt(gateway, caller)
    held_id = caught.value.held_id

    # 2. A lead denies it and adds it to the test set.
    decide(session=session, actor=lead, public_id=held_id, release=False, comment="Never promise money back")
    case = cases.add_case(session, actor=lead, source="held", ref=held_id)
    assert json.loads(case.assertions_json) == [{"type": "not-contains", "value": "money"}]
    first_results = cases.results_on_production_cases(session, actor=tom, version_id=first.id)
    assert first_results is not None and first_results.not_run == (case.case_key,) and not first_results.passes_all

    # 3. An engineer's new version answers about the refund instead, and is put in review.
    refund_wording = MessageSpec("user", '{{ question | replace("money back", "a refund") }}')
    new = version((MONEY_RULE,), note="Speak of a refund, never of money back")
    new = dataclasses.replace(new, messages=(new.messages[0], refund_wording))
    second = store.create_version(session=session, actor=tom, prompt_id=first.prompt_id, version=new)
    workflow.submit(session=session, actor=tom, version_id=second.id)

    # 4. It passes the production-born case in an experiment, attached to its review.
    testset_id = case.testset_id
    choices = [service.VariantChoice(first.id), service.VariantChoice(second.id)]
    planned = service.plan(session, actor=tom, testset_id=testset_id, variants=choices)
    experiment_id = service.start(
        session=session,
        actor=tom,
        testset_id=testset_id,
        variants=choices,
        confirmed_estimate_micro=planned.estimate.total_micro,
        background=False,
    )
    session.expire_all()
    _view, run = service.open_run(session, actor=tom, experiment_id=experiment_id)
    assert run is not None
    statuses = {cell.variant: cell.status for cell in run.cells}
    assert sorted(statuses.values()) == ["fail", "pass"]  # the old version fails its own catch
    # Each cell shows what production's rules would have done with its answer.
    first_label, second_label = (v.label for v in run.variants)
    by_label = {cell.variant: cell for cell in run.cells}
    assert by_label[first_label].escalation == ("hold", "money-back") and by_label[second_label].escalation == ()
    shown_rows = {row["variant"]: row for row in report.matrix_rows(run)}
    assert shown_rows[first_label]["escalation"] == "hold: money-back" and shown_rows[second_label]["escalation"] == ""
    service.attach_to_review(session=session, actor=tom, experiment_id=experiment_id, version_id=second.id)
    shown = cases.results_on_production_cases(session, actor=lead, version_id=second.id)
    assert shown is not None and shown.passes_all and shown.passed == (case.case_key,)
    old = cases.results_on_production_cases(session, actor=lead, version_id=first.id)
    assert old is not None and old.failed == (case.case_key,)

    # The old version's failed cell can itself become a case (its rule says what to check).
    def from_cell_of(label: str):
        return cases.add_case_from_cell(
            session, actor=tom, experiment_id=experiment_id, case_id=case.case_key, variant=label
        )

    from_cell = from_cell_of(first_label)
    assert json.loads(from_cell.assertions_json) == [{"type": "not-contains", "value": "money"}]
    assert from_cell.source_request_id is None and json.loads(from_cell.source_json)["kind"] == "cell"
    with pytest.raises(ValidationError, match="no failed cell"):
        cases.add_case_from_cell(
            session, actor=tom, experiment_id=experiment_id, case_id=case.case_key, variant=second_label
        )
    with pytest.raises(Conflict, match="already"):
        cases.add_case_from_cell(
            session, actor=tom, experiment_id=experiment_id, case_id=case.case_key, variant=first_label
        )

    # 5. Approved and labelled, the same input is delivered.
    workflow.approve(session=session, actor=lead, version_id=second.id, comment="Passes the caught case")
    labels.move_label(session=session, actor=lead, version_id=second.id)
    delivered = call_prompt(gateway, caller, QUESTION)
    assert "money" not in delivered.body["choices"][0]["message"]["content"]

    actions = audited(session)
    for step in (
        "gateway.call",
        "held_request.deny",
        "testset.case.from_production",
        "prompt.version.create",
        "prompt.version.submit",
        "prompt.evidence.attach",
        "prompt.version.approve",
    ):
        assert step in actions, step
    assert actions.index("held_request.deny") < actions.index("testset.case.from_production")
