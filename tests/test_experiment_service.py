"""Experiments through the gateway: budget refusal before any call, cancel bills only what
finished, results reopen identically, stored test sets, live splits and feedback."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest
from sqlmodel import select

from core import db
from core.audit.record import recent_events
from core.budgets.config import BudgetInput, set_budget
from core.catalog import labels, traffic, workflow
from core.catalog.demo_seed import seed_catalog
from core.catalog.resolve import resolve
from core.catalog.store import prompt_by_name, versions_of
from core.errors import Conflict, PermissionDenied, ValidationError
from core.experiments import running, service, testset_store
from core.experiments.results import matrix, run_to_json, summarize
from core.experiments.runner import BudgetExceeded
from core.gateway.wiring import set_gateway
from core.identity import keys
from core.models.budgets import UsageRecord
from core.models.experiments import RequestFeedback
from core.models.gateway import GatewayCall
from core.permissions import Actor, Role
from core.settings import reset_settings
from core.simulator import SimulatorConfig
from tests.experiment_support import use_simulated_gateway
from tests.gateway_support import Server

SYSTEM = Actor.system("test")
TOM = "tom.becker@example.com"


@pytest.fixture
def catalog(session, directory):
    seed_catalog(session)
    testset_store.import_directory(session=session, actor=SYSTEM, only={"ticket-triage", "support-answer"})
    yield directory
    set_gateway(None)


def _triage(session):
    prompt = prompt_by_name(session, "ticket-triage")
    versions = versions_of(session, prompt.id)
    testset = testset_store.list_testsets(session, actor=SYSTEM, prompt_id=prompt.id)[0]
    return prompt, versions, testset


def _choices(versions):
    return [service.VariantChoice(versions[-1].id), service.VariantChoice(versions[-1].id, model="gpt-4.1-mini")]


def _team_budget(session, team_id, cap_usd):
    set_budget(
        session=session, actor=SYSTEM, scope="team", target_id=team_id, data=BudgetInput(cap_usd=cap_usd, hard=True)
    )


def test_an_experiment_over_the_remaining_budget_is_refused_before_any_call(session, catalog):
    transport = use_simulated_gateway()
    tom = catalog.by_email(TOM)
    prompt, versions, testset = _triage(session)
    planned = service.plan(session, actor=tom, testset_id=testset.id, variants=_choices(versions), repetitions=3)
    assert planned.remaining_micro is None and planned.fits
    _team_budget(session, prompt.team_id, "0.01")  # far below the estimate of 22 cases x 2 variants x 3
    planned = service.plan(session, actor=tom, testset_id=testset.id, variants=_choices(versions), repetitions=3)
    assert not planned.fits and planned.estimate.total_micro > 10_000
    with pytest.raises(BudgetExceeded, match="more than the \\$0.01"):
        service.start(
            session=session,
            actor=tom,
            testset_id=testset.id,
            variants=_choices(versions),
            repetitions=3,
            confirmed_estimate_micro=planned.estimate.total_micro,
            background=False,
        )
    session.rollback()
    assert transport.received == []
    assert session.exec(select(GatewayCall)).all() == [] and session.exec(select(UsageRecord)).all() == []
    assert service.list_experiments(session, actor=tom) == []


def test_a_confirmed_estimate_that_grew_is_refused(session, catalog):
    use_simulated_gateway()
    tom = catalog.by_email(TOM)
    _prompt, versions, testset = _triage(session)
    planned = service.plan(session, actor=tom, testset_id=testset.id, variants=_choices(versions)[:1])
    with pytest.raises(Conflict, match="confirm again"):
        service.start(
            session=session,
            actor=tom,
            testset_id=testset.id,
            variants=_choices(versions),
            confirmed_estimate_micro=planned.estimate.total_micro,
            background=False,
        )


def test_a_person_of_another_team_may_not_run_the_experiment(session, catalog):
    _prompt, versions, testset = _triage(session)
    mei = catalog.by_email("mei.chen@example.com")  # Marketing
    with pytest.raises(PermissionDenied):
        service.plan(session, actor=mei, testset_id=testset.id, variants=_choices(versions))
    with pytest.raises(PermissionDenied):
        service.plan(
            session, actor=catalog.with_role(Role.GOVERNANCE_LEAD), testset_id=testset.id, variants=_choices(versions)
        )


def test_a_cancelled_run_keeps_what_finished_and_bills_only_that(session, catalog, monkeypatch):
    # One gateway call per cell: no judge model grades the set's llm-rubric cases here.
    monkeypatch.setenv("QUORUM_JUDGE_MODEL", "off")
    reset_settings()
    use_simulated_gateway(SimulatorConfig(latency_ms=60))
    tom = catalog.by_email(TOM)
    _prompt, versions, testset = _triage(session)
    planned = service.plan(session, actor=tom, testset_id=testset.id, variants=_choices(versions), repetitions=2)
    experiment_id = service.start(
        session=session,
        actor=tom,
        testset_id=testset.id,
        variants=_choices(versions),
        repetitions=2,
        confirmed_estimate_micro=planned.estimate.total_micro,
    )
    deadline = time.monotonic() + 20
    while service.progress(session, experiment_id=experiment_id)[0] < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    session.rollback()
    with db.write_session() as writer:  # as the page does: a write session for a change
        service.cancel(session=writer, actor=tom, experiment_id=experiment_id)
    assert running.wait(experiment_id, 30)
    session.rollback()
    view, run = service.open_run(session, actor=tom, experiment_id=experiment_id)
    assert view.status == "cancelled" and run.cancelled
    assert 6 <= view.finished_cells < view.planned_cells == 88
    ledger = session.exec(select(UsageRecord)).all()
    assert len(ledger) == view.finished_cells == len(run.cells)
    assert sum(r.cost_micro for r in ledger) == view.billed_micro == run.billed_micro > 0
    actions = [e.action for e in recent_events(session, actor=SYSTEM, action_prefix="experiment.")]
    assert Counter(actions) == {"experiment.start": 1, "experiment.cancel": 1, "experiment.finish": 1}
    with pytest.raises(Conflict, match="only a running experiment"):
        service.cancel(session=session, actor=tom, experiment_id=experiment_id)


def test_results_reopen_identically_and_attach_to_a_version_in_review(session, catalog, monkeypatch):
    # One gateway call per cell: no judge model grades the set's llm-rubric cases here.
    monkeypatch.setenv("QUORUM_JUDGE_MODEL", "off")
    reset_settings()
    use_simulated_gateway()
    tom = catalog.by_email(TOM)
    prompt, versions, testset = _triage(session)
    choices = [
        service.VariantChoice(versions[-1].id),
        service.VariantChoice(versions[-1].id, params={"temperature": 1}),
    ]
    planned = service.plan(session, actor=tom, testset_id=testset.id, variants=choices)
    experiment_id = service.start(
        session=session,
        actor=tom,
        testset_id=testset.id,
        variants=choices,
        confirmed_estimate_micro=planned.estimate.total_micro,
        background=False,
    )
    session.expire_all()
    view, run = service.open_run(session, actor=tom, experiment_id=experiment_id)
    assert view.status == "finished" and len(run.cells) == 44 and run.billed_micro == view.billed_micro > 0
    assert session.exec(select(GatewayCall)).all().__len__() == 44  # every cell through the gateway
    again = service.open_run(session, actor=catalog.with_role(Role.AUDITOR), experiment_id=experiment_id)[1]
    assert run_to_json(again) == run_to_json(run)
    assert matrix(again) == matrix(run) and summarize(again) == summarize(run)
    with pytest.raises(Conflict, match="not in review"):
        service.attach_to_review(session=session, actor=tom, experiment_id=experiment_id, version_id=versions[-1].id)
    with pytest.raises(ValidationError, match="only to a version it ran"):
        service.attach_to_review(session=session, actor=tom, experiment_id=experiment_id, version_id=versions[0].id)


def test_test_sets_import_export_and_edit_with_audit(session, catalog):
    tom = catalog.by_email(TOM)
    _prompt, _versions, testset = _triage(session)
    assert testset.cases == 22
    text = testset_store.export_csv(session, actor=tom, testset_id=testset.id)
    lines = text.splitlines()
    testset_store.import_csv(session=session, actor=tom, testset_id=testset.id, text="\n".join(lines[:4]) + "\n")
    assert testset_store.testset_spec(session, testset.id).cases.__len__() == 3
    with pytest.raises(ValidationError, match="var"):
        testset_store.import_csv(session=session, actor=tom, testset_id=testset.id, text="id,assertions\nx,[]\n")
    testset_store.delete_case(session=session, actor=tom, testset_id=testset.id, case_key="double-charge")
    yaml_text = testset_store.export_yaml(session, actor=tom, testset_id=testset.id)
    assert "double-charge" not in yaml_text and "prompt: ticket-triage" in yaml_text
    with pytest.raises(ValidationError, match="not for 'ticket-triage'"):
        testset_store.import_yaml(
            session=session,
            actor=tom,
            prompt_id=testset.prompt_id,
            text=yaml_text.replace("prompt: ticket-triage", "prompt: sql-explain"),
        )
    with pytest.raises(PermissionDenied):
        testset_store.delete_case(
            session=session,
            actor=catalog.by_email("mei.chen@example.com"),
            testset_id=testset.id,
            case_key="vague-help",
        )
    actions = [e.action for e in recent_events(session, actor=SYSTEM, action_prefix="testset.")]
    assert actions[:2] == ["testset.case.delete", "testset.save"]


def _approved_pair(session, catalog):
    """ticket-triage v2 (production) and a new v3 (a draft)."""
    from core.catalog.store import create_version

    prompt, versions, _ = _triage(session)
    v3 = create_version(
        session=session, actor=catalog.by_email(TOM), prompt_id=prompt.id, version=_edited(versions[-1])
    )
    return prompt, versions[-1], v3


def _edited(version):
    import dataclasses

    from core.catalog.spec import MessageSpec
    from core.catalog.store import version_spec

    spec = version_spec(version)
    first = spec.messages[0]
    return dataclasses.replace(
        spec,
        change_note="Shorter",
        messages=(MessageSpec(first.role, first.content + "\nBe brief.\n"), *spec.messages[1:]),
    )


def test_a_live_split_assigns_each_user_stably_near_its_share_and_only_between_approved_versions(session, catalog):
    prompt, v2, v3 = _approved_pair(session, catalog)
    lena, rafael = catalog.by_email("lena.fischer@example.com"), catalog.by_email("rafael.gomez@example.com")
    with pytest.raises(Conflict, match="only approved versions"):
        traffic.approve_split(
            session=session, actor=lena, prompt_id=prompt.id, version_a_id=v2.id, version_b_id=v3.id, percent_b=10
        )
    with pytest.raises(PermissionDenied):
        traffic.approve_split(
            session=session,
            actor=catalog.by_email(TOM),
            prompt_id=prompt.id,
            version_a_id=v2.id,
            version_b_id=v3.id,
            percent_b=10,
        )
    workflow.submit(session=session, actor=catalog.by_email(TOM), version_id=v3.id)
    workflow.approve(session=session, actor=rafael, version_id=v3.id, comment="fine")
    with pytest.raises(ValidationError, match="1 to 99"):
        traffic.approve_split(
            session=session, actor=lena, prompt_id=prompt.id, version_a_id=v2.id, version_b_id=v3.id, percent_b=100
        )
    traffic.approve_split(
        session=session, actor=lena, prompt_id=prompt.id, version_a_id=v2.id, version_b_id=v3.id, percent_b=10
    )
    users = [f"user-{i}" for i in range(2000)]
    first = {u: resolve(session, "ticket-triage", assignment_key=u).version_id for u in users}
    assert all(resolve(session, "ticket-triage", assignment_key=u).version_id == first[u] for u in users[:300])
    share_b = sum(v == v3.id for v in first.values()) / len(users)
    assert 0.08 <= share_b <= 0.12
    assert resolve(session, "ticket-triage").version_id == v2.id  # no key: the production label
    with pytest.raises(Exception, match="no 'staging' label"):
        resolve(session, "ticket-triage", labels.STAGING, assignment_key="user-1")  # a split serves production only
    event = recent_events(session, actor=SYSTEM, action_prefix="prompt.traffic_split")[0]
    assert event.action == "prompt.traffic_split.approve" and event.after["percent_b"] == 10
    traffic.end_split(session=session, actor=lena, prompt_id=prompt.id)
    assert {resolve(session, "ticket-triage", assignment_key=u).version_id for u in users[:200]} == {v2.id}


def test_feedback_endpoint_stores_a_score_for_the_teams_own_request(session, catalog):
    use_simulated_gateway()
    support = prompt_by_name(session, "ticket-triage").team_id
    created = keys.create_key(session=session, actor=SYSTEM, team_id=support, label="app")
    other = keys.create_key(session=session, actor=SYSTEM, team_id=support + 1, label="other")
    server = Server().start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            auth = {"authorization": f"Bearer {created.secret}"}
            answer = client.post(
                "/chat/completions",
                headers=auth,
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
            )
            request_id = answer.headers["x-request-id"]
            ok = client.post(
                "/feedback", headers=auth, json={"request_id": request_id, "score": 0.8, "comment": "helpful"}
            )
            assert ok.status_code == 201 and ok.json()["request_id"] == request_id
            bad = client.post("/feedback", headers=auth, json={"request_id": request_id, "score": 1.5})
            assert bad.status_code == 400 and "from 0 to 1" in bad.json()["error"]["message"]
            foreign = client.post(
                "/feedback",
                headers={"authorization": f"Bearer {other.secret}"},
                json={"request_id": request_id, "score": 1},
            )
            assert foreign.status_code == 404
            assert client.post("/feedback", json={"request_id": request_id, "score": 1}).status_code == 401
    finally:
        server.stop()
    session.rollback()
    stored = session.exec(select(RequestFeedback)).all()
    assert [(f.request_id, f.score, f.comment) for f in stored] == [(request_id, 0.8, "helpful")]
    event = recent_events(session, actor=SYSTEM, action_prefix="gateway.feedback")[0]
    assert "helpful" not in json.dumps(event.after)
