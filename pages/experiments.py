"""Experiments: A/B runs of prompt versions over a test set, their results, and the test sets."""

import plotly.express as px
import streamlit as st

from core import db
from core.catalog import views
from core.errors import QuorumError
from core.experiments import production_cases, report, service, testset_store
from core.experiments.playground import runnable_versions
from core.formatting import money
from pages.ui import layout
from pages.ui.shown import when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Experiments")
layout.show_flash()

with db.session_scope() as session:
    testsets = testset_store.list_testsets(session, actor=actor)
    prompts = {p.id: p for p in views.list_prompts(session, actor=actor)}

run_tab, results_tab, sets_tab = layout.tabs(["Run", "Results", "Test sets"], key="experiments_tab")

# ---- run -------------------------------------------------------------------------------
with run_tab:
    mine = [t for t in testsets if t.team_id in actor.team_ids]
    if not mine:
        st.info("Your teams have no test sets yet; import one under Test sets.")
    else:
        sets = {t.id: t for t in mine}
        testset_id = st.selectbox(
            "Test set",
            list(sets),
            key="exp_testset",
            format_func=lambda i: f"{sets[i].prompt_name} / {sets[i].name} ({sets[i].cases} cases)",
        )
        with db.session_scope() as session:
            versions = {v.id: v for v in runnable_versions(session, actor=actor, prompt_id=sets[testset_id].prompt_id)}
        count = int(st.number_input("Variants", min_value=1, max_value=4, value=2, key="exp_count"))
        choices = []
        for index, column in enumerate(st.columns(count)):
            ids = list(versions)
            version_id = column.selectbox(
                "Version",
                ids,
                index=min(index, len(ids) - 1),
                key=f"exp_version_{index}",
                format_func=lambda i: f"v{versions[i].number} ({versions[i].state.replace('_', ' ')})",
            )
            model = column.text_input("Model", placeholder=versions[version_id].model, key=f"exp_model_{index}")
            temperature = column.text_input("Temperature", placeholder="the version's", key=f"exp_temperature_{index}")
            params = {}
            if temperature.strip():
                try:
                    params["temperature"] = float(temperature)
                except ValueError:
                    column.warning("Temperature must be a number")
            choices.append(service.VariantChoice(version_id, model.strip() or None, params))
        repetitions = int(
            st.number_input(
                "Repetitions", min_value=1, max_value=service.MAX_REPETITIONS, value=1, key="exp_repetitions"
            )
        )
        judge = (
            st.text_input(
                "Judge model for llm-rubric assertions",
                value=service.default_judge_model() or "",
                key="exp_judge",
                help="Grades each llm-rubric assertion; leave empty for the configured default (QUORUM_JUDGE_MODEL).",
            ).strip()
            or None
        )
        if st.button("Estimate cost", key="exp_estimate"):
            with db.session_scope() as session, layout.shows_errors():
                planned = service.plan(
                    session,
                    actor=actor,
                    testset_id=testset_id,
                    variants=choices,
                    repetitions=repetitions,
                    judge_model=judge,
                )
                st.session_state["exp_plan"] = {
                    "key": (testset_id, tuple(choices), repetitions, judge),
                    "estimate": planned.estimate.total_micro,
                    "calls": planned.estimate.calls,
                    "remaining": planned.remaining_micro,
                    "fits": planned.fits,
                }
        plan = st.session_state.get("exp_plan")
        if plan and plan["key"] == (testset_id, tuple(choices), repetitions, judge):
            left = "no hard budget" if plan["remaining"] is None else f"{money(plan['remaining'])} left"
            st.info(f"Up to {money(plan['estimate'])} for {plan['calls']:,} calls ({left}).")
            if not plan["fits"]:
                st.warning("This is more than the team's budget has left: use fewer cases, variants or repetitions.")
            elif st.button("Confirm and run", type="primary", key="exp_confirm"):
                with db.session_scope(write=True) as session, layout.shows_errors():
                    st.session_state["exp_running"] = service.start(
                        session=session,
                        actor=actor,
                        testset_id=testset_id,
                        variants=choices,
                        repetitions=repetitions,
                        judge_model=judge,
                        confirmed_estimate_micro=plan["estimate"],
                    )
                    st.session_state.pop("exp_plan", None)

    @st.fragment(run_every=1.0)
    def progress_panel() -> None:
        experiment_id = st.session_state.get("exp_running")
        if not experiment_id:
            return
        with db.session_scope() as session:
            done, total, status = service.progress(session, experiment_id=experiment_id)
        st.progress(
            done / total if total else 1.0, text=f"Experiment #{experiment_id}: {done} of {total} cells, {status}"
        )
        if status == "running":
            if st.button("Cancel", key="exp_cancel"):
                with db.session_scope(write=True) as session:
                    try:
                        service.cancel(session=session, actor=actor, experiment_id=experiment_id)
                    except QuorumError as error:
                        st.error(literal(error))
        else:
            # A full rerun, so the Results tab shows the finished run rather than the page as it
            # was when the run started.
            st.session_state.pop("exp_running", None)
            st.session_state["exp_selected"] = experiment_id
            layout.flash(f"Experiment #{experiment_id} {status}; open it under Results.")
            st.rerun(scope="app")

    progress_panel()

# ---- results ---------------------------------------------------------------------------
with results_tab:
    with db.session_scope() as session:
        past = service.list_experiments(session, actor=actor)
    if not past:
        st.info("No experiments yet.")
    else:
        st.dataframe(
            [
                {
                    "id": e.id,
                    "prompt": e.prompt_name,
                    "test set": e.testset_name,
                    "variants": ", ".join(v["label"] for v in e.variants),
                    "repetitions": e.repetitions,
                    "status": e.status,
                    "cells": f"{e.finished_cells}/{e.planned_cells}",
                    "estimate": money(e.estimate_micro),
                    "billed": money(e.billed_micro),
                    "started": when(e.created_at),
                }
                for e in past
            ],
            hide_index=True,
            width="stretch",
            key="exp_past",
        )
        ids = [e.id for e in past]
        selected = st.session_state.get("exp_selected")
        # The key names the newest run, so a run that just ended opens as a fresh choice
        # (at `selected`) rather than keeping the browser's earlier pick.
        experiment_id = st.selectbox(
            "Open experiment",
            ids,
            key=f"exp_open_{max(ids)}",
            format_func=lambda i: f"#{i}",
            index=ids.index(selected) if selected in ids else 0,
        )
        with db.session_scope() as session:
            view, run = service.open_run(session, actor=actor, experiment_id=experiment_id)
        if run is None:
            st.info(literal(f"Experiment #{view.id} is {view.status}" + (f": {view.error}" if view.error else ".")))
        else:
            if view.error:
                st.warning(literal(view.error))
            st.subheader("Per variant")
            summary = report.summary_rows(run)
            st.dataframe(summary, hide_index=True, width="stretch", key="exp_summary")
            chart = px.scatter(
                summary,
                x="variant",
                y="pass rate",
                title="Pass rate with 95% Wilson interval",
                error_y=[r["95% CI high"] - r["pass rate"] for r in summary],
                error_y_minus=[r["pass rate"] - r["95% CI low"] for r in summary],
                range_y=[0, 1],
            )
            st.plotly_chart(chart, key="exp_pass_chart")
            points = report.latency_points(run)
            if points:
                st.plotly_chart(
                    px.box(points, x="variant", y="latency ms", points="all", title="Latency"), key="exp_latency_chart"
                )
            comparisons = report.comparison_rows(run)
            if comparisons:
                st.subheader("Pairwise comparison")
                st.dataframe(comparisons, hide_index=True, width="stretch", key="exp_comparisons")
            st.subheader("Cases × variants")
            failures_col, differ_col = st.columns(2)
            failures_only = failures_col.toggle("Failures only", key="exp_failures_only")
            differing_only = differ_col.toggle("Only where variants differ", key="exp_differing_only")
            rows = report.matrix_rows(run, failures_only=failures_only, differing_only=differing_only)
            if rows:
                st.dataframe(
                    rows,
                    hide_index=True,
                    width="stretch",
                    key="exp_matrix",
                    column_config={
                        "reason": st.column_config.TextColumn("reason", width="large"),
                        "output": st.column_config.TextColumn("output", width="large"),
                    },
                )
            else:
                st.info(report.empty_matrix_reason(run, failures_only=failures_only, differing_only=differing_only))
            failed = [
                (r["case"], r["variant"]) for r in report.matrix_rows(run, failures_only=True) if r["result"] != "pass"
            ]
            if failed and view.team_id in actor.team_ids:
                case_col, add_col = st.columns([3, 1])
                picked = case_col.selectbox(
                    "Make a test case from a failed cell",
                    failed,
                    format_func=lambda pair: f"{pair[0]} under {pair[1]}",
                    key="exp_cell_case",
                )
                if add_col.button("Add to test set", key="exp_cell_case_add"):
                    with (
                        db.session_scope(write=True) as session,
                        layout.shows_errors("Added to the from-production set"),
                    ):
                        production_cases.add_case_from_cell(
                            session, actor=actor, experiment_id=view.id, case_id=picked[0], variant=picked[1]
                        )
            if view.team_id in actor.team_ids:
                st.subheader("Attach to review")
                with db.session_scope() as session:
                    attachable = service.versions_in_review(session, view)
                if not attachable:
                    st.info("None of this experiment's versions is in review now; submit one for review to attach it.")
                else:
                    target = st.selectbox(
                        "Version in review",
                        [v["version_id"] for v in attachable],
                        key="exp_attach_version",
                        format_func=lambda i: next(
                            f"v{v['version_number']} (in review)" for v in attachable if v["version_id"] == i
                        ),
                    )
                    if st.button("Attach to review", key="exp_attach"):
                        with db.session_scope(write=True) as session, layout.shows_errors("Attached to the review"):
                            service.attach_to_review(
                                session=session, actor=actor, experiment_id=view.id, version_id=target
                            )

# ---- test sets -------------------------------------------------------------------------
with sets_tab:
    if not testsets:
        st.info("No test sets yet.")
    else:
        sets = {t.id: t for t in testsets}
        chosen_set = st.selectbox(
            "Test set",
            list(sets),
            key="ts_pick",
            format_func=lambda i: f"{sets[i].prompt_name} / {sets[i].name} ({sets[i].cases} cases)",
        )
        with db.session_scope() as session:
            yaml_text = testset_store.export_yaml(session, actor=actor, testset_id=chosen_set)
            csv_text = testset_store.export_csv(session, actor=actor, testset_id=chosen_set)
        down_yaml, down_csv = st.columns(2)
        down_yaml.download_button(
            "Export YAML", yaml_text, file_name=f"{sets[chosen_set].prompt_name}.yaml", key="ts_export_yaml"
        )
        down_csv.download_button(
            "Export CSV", csv_text, file_name=f"{sets[chosen_set].prompt_name}.csv", key="ts_export_csv"
        )
        if sets[chosen_set].team_id in actor.team_ids:
            edited = st.text_area("Edit (YAML)", yaml_text, height=300, key=f"ts_yaml_{chosen_set}")
            if st.button("Save test set", key="ts_save"):
                with db.session_scope(write=True) as session, layout.shows_errors("Test set saved"):
                    testset_store.import_yaml(
                        session=session,
                        actor=actor,
                        prompt_id=sets[chosen_set].prompt_id,
                        text=edited,
                        name=sets[chosen_set].name,
                    )
            upload = st.file_uploader("Replace the cases from a CSV", type=["csv"], key="ts_csv_upload")
            if upload is not None and st.button("Import CSV", key="ts_import_csv"):
                try:
                    csv_text = upload.getvalue().decode("utf-8")
                except UnicodeDecodeError:
                    st.error("The CSV is not UTF-8 text; save it from the spreadsheet as CSV UTF-8.")
                else:
                    with db.session_scope(write=True) as session, layout.shows_errors("Cases imported"):
                        testset_store.import_csv(session=session, actor=actor, testset_id=chosen_set, text=csv_text)
    own = {p.id: p for p in prompts.values()}
    st.subheader("New test set from YAML")
    new_prompt = (
        st.selectbox("Prompt", list(own), format_func=lambda i: own[i].name, key="ts_new_prompt") if own else None
    )
    new_name = st.text_input("Name", value="default", key="ts_new_name")
    new_yaml = st.text_area("YAML (the prompts/testsets file format)", key="ts_new_yaml", height=150)
    if new_prompt is not None and st.button("Create", key="ts_create"):
        with db.session_scope(write=True) as session, layout.shows_errors("Test set saved"):
            testset_store.import_yaml(session=session, actor=actor, prompt_id=new_prompt, text=new_yaml, name=new_name)
