"""The pages as people use them: an A/B run attached to a review, seen in the Review queue."""

from __future__ import annotations

import dataclasses

import pytest

from core.catalog import workflow
from core.catalog.demo_seed import seed_catalog
from core.catalog.spec import MessageSpec
from core.catalog.store import create_version, prompt_by_name, version_spec, versions_of
from core.experiments import running, service, testset_store
from core.gateway.wiring import set_gateway
from core.permissions import Actor
from core.settings import reset_settings
from tests.experiment_support import use_simulated_gateway
from tests.test_pages import errors_of, signed_in

TOM, LENA = "tom.becker@example.com", "lena.fischer@example.com"


def test_an_engineer_runs_an_ab_attaches_it_and_the_lead_sees_it_in_the_queue(session, directory):
    seed_catalog(session)
    use_simulated_gateway()
    try:
        tom = directory.by_email(TOM)
        prompt = prompt_by_name(session, "ticket-triage")
        full = testset_store.import_directory(session=session, actor=Actor.system("t"), only={"ticket-triage"})[0]
        spec = testset_store.testset_spec(session, full.id)
        small = testset_store.save_testset(
            session=session,
            actor=tom,
            prompt_id=prompt.id,
            name="small",
            spec=dataclasses.replace(spec, cases=spec.cases[:4]),
        )
        production = versions_of(session, prompt.id)[-1]
        base = version_spec(production)
        shorter = (
            MessageSpec(base.messages[0].role, base.messages[0].content + "\nKeep reasons short.\n"),
            *base.messages[1:],
        )
        candidate = create_version(
            session=session,
            actor=tom,
            prompt_id=prompt.id,
            version=dataclasses.replace(base, messages=shorter, change_note="Shorter reasons"),
        )
        workflow.submit(session=session, actor=tom, version_id=candidate.id)

        at = signed_in(session, TOM)
        at.switch_page("pages/experiments.py").run()
        at.selectbox(key="exp_testset").set_value(small.id).run()
        at.selectbox(key="exp_version_0").set_value(production.id)
        at.selectbox(key="exp_version_1").set_value(candidate.id).run()
        at.button(key="exp_estimate").click().run()
        assert not errors_of(at) and any("Up to $" in i.value for i in at.info)
        at.button(key="exp_confirm").click().run()
        assert not at.exception and not errors_of(at)
        experiment_id = at.session_state["exp_running"]
        assert running.wait(experiment_id, 60)
        at.run()
        session.rollback()
        view, run = service.open_run(session, actor=tom, experiment_id=experiment_id)
        assert view.status == "finished" and len(run.cells) == 8

        at.selectbox(key=f"exp_open_{experiment_id}").set_value(experiment_id).run()
        summary = next(d.value for d in at.dataframe if "pass rate" in d.value.columns)
        assert list(summary["variant"]) == ["v2", "v3"]
        assert not at.exception
        at.toggle(key="exp_failures_only").set_value(True).run()
        at.selectbox(key="exp_attach_version").set_value(candidate.id).run()
        at.button(key="exp_attach").click().run()
        assert not errors_of(at) and any("Attached" in s.value for s in at.success)

        lead = signed_in(session, LENA)
        lead.switch_page("pages/review_queue.py").run()
        evidence = next(d.value for d in lead.dataframe if "reference" in d.value.columns)
        assert list(evidence["reference"]) == [f"experiment:{experiment_id}"]
        assert "McNemar" in evidence["summary"][0] and "v2 vs v3" in evidence["summary"][0]
    finally:
        set_gateway(None)


def test_the_playground_runs_two_versions_side_by_side_and_continues_the_chat(session, directory):
    seed_catalog(session)
    transport = use_simulated_gateway()
    try:
        prompt = prompt_by_name(session, "ticket-triage")
        at = signed_in(session, TOM)
        at.switch_page("pages/playground.py").run()
        at.selectbox(key="pg_prompt").set_value(prompt.id).run()
        at.number_input(key="pg_count").set_value(2).run()
        for name, value in (
            ("subject", "Charged twice"),
            ("body", "Refund one please"),
            ("channel", "email"),
            ("customer_plan", "pro"),
        ):
            at.text_area(key=f"pg_var_{prompt.id}_{name}").input(value)
        at.button(key="pg_run").click().run()
        assert not errors_of(at) and not at.exception
        answers = at.session_state["pg_answers"]
        assert len(answers) == 2 and all(a.request_id and not a.error for a in answers)
        image = "And the urgency? ![seen](http://tracker.example/pixel.png)"
        at.text_input(key="pg_follow_up").input(image)
        at.button(key="pg_send").click().run()
        assert len(at.session_state["pg_history"]) == 2
        assert len(transport.bodies("/chat/completions")) == 4
        assert b"And the urgency?" in transport.bodies("/chat/completions")[-1]
        # The typed message is shown as written, not as an image the browser would fetch.
        shown = [m.markdown[0].value for m in at.chat_message]
        assert len(shown) == 2 and all("![" not in text for text in shown)
        assert "\\[seen\\]" in shown[1]  # escaped: the reader sees the brackets, no image
    finally:
        set_gateway(None)


def test_the_playground_samples_the_model_every_time_instead_of_answering_from_the_cache(session, directory):
    from sqlmodel import select

    from core.experiments.playground import VariantChoice, run
    from core.models.gateway import GatewayCall

    seed_catalog(session)
    transport = use_simulated_gateway()
    try:
        prompt = prompt_by_name(session, "ticket-triage")
        version = versions_of(session, prompt.id)[-1]
        variables = {
            "subject": "Charged twice",
            "body": "Refund one please",
            "channel": "email",
            "customer_plan": "pro",
        }
        for _ in range(2):  # the same version twice side by side, run twice
            answers = run(
                session=session,
                actor=directory.by_email(TOM),
                variants=[VariantChoice(version.id)] * 2,
                variables=variables,
            )
            assert [a.error for a in answers] == [None, None]
        assert len(transport.bodies("/chat/completions")) == 4
        session.rollback()
        assert not any(call.cache_hit for call in session.exec(select(GatewayCall)))
    finally:
        set_gateway(None)


def test_the_demo_seed_has_a_finished_ab_in_review_and_the_pages_render_it(session, directory):
    from core.demo.steps import STEPS

    for step in STEPS:
        step(session)
    try:
        tom = directory.by_email(TOM)
        [view] = service.list_experiments(session, actor=tom)
        assert (view.prompt_name, view.status, view.finished_cells) == ("ticket-triage", "finished", 20)
        for email, path in (
            (TOM, "pages/experiments.py"),
            (TOM, "pages/playground.py"),
            (LENA, "pages/live_ab.py"),
            (LENA, "pages/review_queue.py"),
        ):
            at = signed_in(session, email)
            at.switch_page(path).run()
            assert not at.exception and not errors_of(at), path
        assert any("experiment:" in str(d.value) for d in at.dataframe)
    finally:
        set_gateway(None)


def run_as(session, tom, testset_id, version_ids):
    choices = [service.VariantChoice(v) for v in version_ids]
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
    return experiment_id


def test_the_results_show_outputs_and_reasons_default_to_the_version_in_review_and_explain_an_empty_table(
    session, directory, monkeypatch
):
    monkeypatch.setenv("QUORUM_JUDGE_MODEL", "off")  # llm-rubric cells become errors, which must say why
    reset_settings()
    seed_catalog(session)
    use_simulated_gateway()
    try:
        tom = directory.by_email(TOM)
        prompt = prompt_by_name(session, "ticket-triage")
        full = testset_store.import_directory(session=session, actor=Actor.system("t"), only={"ticket-triage"})[0]
        spec = testset_store.testset_spec(session, full.id)
        small = testset_store.save_testset(
            session=session,
            actor=tom,
            prompt_id=prompt.id,
            name="small",
            spec=dataclasses.replace(spec, cases=spec.cases[:3]),
        )
        production = versions_of(session, prompt.id)[-1]
        base = version_spec(production)
        candidate = create_version(
            session=session,
            actor=tom,
            prompt_id=prompt.id,
            version=dataclasses.replace(
                base,
                messages=(
                    MessageSpec(base.messages[0].role, base.messages[0].content + "\nBe brief.\n"),
                    *base.messages[1:],
                ),
                change_note="Brief",
            ),
        )
        workflow.submit(session=session, actor=tom, version_id=candidate.id)
        single = run_as(session, tom, small.id, [candidate.id])
        both = run_as(session, tom, small.id, [production.id, candidate.id])

        at = signed_in(session, TOM)
        at.switch_page("pages/experiments.py").run()
        at.selectbox(key=f"exp_open_{both}").set_value(both).run()
        matrix = next(d.value for d in at.dataframe if "reason" in d.value.columns)
        assert all(matrix["output"]) and max(len(o) for o in matrix["output"]) <= 160
        errors = matrix[matrix["result"] == "error"]
        assert len(errors) and all("no judge model is configured" in r for r in errors["reason"])
        assert all(matrix[matrix["result"] == "pass"]["reason"] == "")
        # The approved production version comes first in the run; the selector opens on the one in review.
        attach = at.selectbox(key="exp_attach_version")
        assert attach.value == candidate.id and attach.options == [f"v{candidate.number} (in review)"]

        at.selectbox(key=f"exp_open_{both}").set_value(single).run()
        at.toggle(key="exp_differing_only").set_value(True).run()
        assert not any("reason" in d.value.columns for d in at.dataframe)
        assert any("Every variant got the same result" in i.value for i in at.info)
        assert not at.exception and not errors_of(at)
    finally:
        set_gateway(None)


@pytest.mark.parametrize(
    "email", ["tom.becker@example.com", "mei.chen@example.com", "sofia.rossi@example.com", "jonas.berg@example.com"]
)
def test_the_playground_opens_on_something_the_engineer_can_run_with_its_own_parameters(session, directory, email):
    seed_catalog(session)
    at = signed_in(session, email)
    at.switch_page("pages/playground.py").run()
    assert not at.exception and not errors_of(at)
    assert not [i.value for i in at.info if "No version of this prompt" in i.value]
    version_id = at.selectbox(key="pg_version_0").value
    spec = version_spec(
        next(v for p in [at.selectbox(key="pg_prompt").value] for v in versions_of(session, p) if v.id == version_id)
    )
    temperature = at.slider(key=f"pg_temperature_0_{version_id}").value
    max_tokens = at.number_input(key=f"pg_max_tokens_0_{version_id}").value
    assert temperature == (spec.params.temperature if spec.params.temperature is not None else 1.0)
    assert max_tokens == (spec.params.max_tokens or 512)
