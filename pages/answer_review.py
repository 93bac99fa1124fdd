"""Answer review: answers delivered and queued by a prompt's escalation rule, for a
reviewer to mark correct or wrong; any caught answer can become a test case."""

import streamlit as st

from core import db
from core.experiments import catches
from core.experiments import production_cases as cases
from pages.ui import layout
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Answer review")
layout.show_flash()
st.caption(
    "Answers a prompt's escalation rule delivered and queued for a look afterwards. Mark each "
    "correct, or wrong with what it should have said; add it to the prompt's test set so the "
    "next version is tested against it. Answers are shown as the team's payload policy kept them."
)

waiting_tab, reviewed_tab = layout.tabs(["Waiting", "Reviewed"], key="answer_review_tabs")

with db.session_scope() as session:
    waiting = catches.review_queue(session, actor=actor)
    reviewed = catches.review_queue(session, actor=actor, pending=False)

with waiting_tab:
    if not waiting:
        st.info("No delivered answer is waiting for review.")
    for item in waiting:
        with st.container(border=True):
            st.markdown(
                f"**{literal(item.prompt_name)} {literal(item.prompt_version)}** · "
                + literal(f"rule {item.rule.removeprefix('escalation.')} · {item.created_at:%Y-%m-%d %H:%M} UTC")
            )
            if item.answer is None:
                st.caption("The team's payload policy keeps no answer text for this call.")
            else:
                st.text_area("Answer as delivered", value=item.answer, disabled=True, key=f"answer_{item.id}")
            expected = st.text_area("What it should have said (when wrong)", key=f"expected_{item.id}")
            correct_col, wrong_col, case_col = st.columns(3)
            if correct_col.button("Correct", key=f"correct_{item.id}", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Marked correct"):
                    catches.mark(session, actor=actor, catch_id=item.id, correct=True)
            if wrong_col.button("Wrong", key=f"wrong_{item.id}"):
                with db.session_scope(write=True) as session, layout.shows_errors("Marked wrong"):
                    catches.mark(session, actor=actor, catch_id=item.id, correct=False, expected=expected)
            if case_col.button("Add to test set", key=f"case_{item.id}"):
                with db.session_scope(write=True) as session, layout.shows_errors("Added to the test set"):
                    cases.add_case(session, actor=actor, source="catch", ref=str(item.id))

with reviewed_tab:
    if not reviewed:
        st.info("No answer was reviewed yet.")
    else:
        st.dataframe(
            [
                {
                    "prompt": f"{r.prompt_name} {r.prompt_version}",
                    "rule": r.rule.removeprefix("escalation."),
                    "verdict": r.review_status,
                    "should have said": r.expected,
                }
                for r in reviewed
            ],
            hide_index=True,
            width="stretch",
            key="reviewed_table",
        )
        names = {
            r.id: f"{r.prompt_name} {r.prompt_version} · {r.review_status} · {r.created_at:%Y-%m-%d %H:%M}"
            for r in reviewed
        }
        choice = st.selectbox(
            "Make a test case from a reviewed answer",
            options=list(names),
            format_func=names.__getitem__,
            key="reviewed_case_choice",
        )
        if st.button("Add to test set", key="reviewed_case"):
            with db.session_scope(write=True) as session, layout.shows_errors("Added to the test set"):
                cases.add_case(session, actor=actor, source="catch", ref=str(choice))
