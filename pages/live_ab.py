"""Live A/B: split a prompt's production traffic between two approved versions, and compare them."""

import pandas as pd
import streamlit as st

from core import db
from core.catalog import traffic, views
from core.experiments import live_ab
from core.formatting import money
from core.permissions import Permission
from pages.ui import charts, layout
from pages.ui.shown import when

actor = layout.page_setup(__file__)
st.title("Live A/B")
layout.show_flash()

with db.session_scope() as session:
    prompts = {p.id: p for p in views.list_prompts(session, actor=actor, state="approved")}
if not prompts:
    st.info("No prompt has an approved version yet.")
    st.stop()
prompt_id = st.selectbox("Prompt", list(prompts), format_func=lambda i: prompts[i].name, key="live_prompt")
with db.session_scope() as session:
    split = traffic.split_view(session, actor=actor, prompt_id=prompt_id)
    stats = live_ab.compare_live(session, actor=actor, prompt_id=prompt_id)

if split is None:
    st.caption("No live split: all traffic goes to the production label.")
else:
    st.write(
        f"Live split since {when(split.created_at)}: v{split.version_a_number} gets "
        f"{100 - split.percent_b}%, v{split.version_b_number} gets {split.percent_b}% of users."
    )
    rows = [
        {
            "version": f"v{s.version_number}",
            "share %": s.share_percent,
            "calls": s.calls,
            "error rate": round(s.error_rate, 4),
            "mean latency ms": round(s.mean_latency_ms, 1),
            "p95 latency ms": round(s.p95_latency_ms, 1),
            "cost": money(s.cost_micro),
            "feedback": s.feedback_count,
            "mean score": None if s.mean_feedback is None else round(s.mean_feedback, 3),
        }
        for s in stats
    ]
    st.dataframe(rows, hide_index=True, width="stretch", key="live_stats")
    if any(s.calls for s in stats):
        latency = pd.DataFrame(rows).melt(
            id_vars="version", value_vars=["mean latency ms", "p95 latency ms"], var_name="latency", value_name="ms"
        )
        st.plotly_chart(
            charts.bars(latency, x="version", y="ms", color="latency", title="Latency").update_layout(barmode="group"),
            key="live_latency_chart",
        )

if actor.can(Permission.PROMPT_REVIEW):
    st.subheader("Approve a split")
    with db.session_scope() as session:
        approved = {v.id: v for v in views.approved_versions(session, actor=actor, prompt_id=prompt_id)}
    if len(approved) < 2:
        st.caption("A split needs two approved versions of this prompt.")
    else:
        ids = list(approved)
        a_col, b_col, share_col = st.columns(3)
        version_a = a_col.selectbox("Version A", ids, key="live_a", format_func=lambda i: f"v{approved[i].number}")
        version_b = b_col.selectbox(
            "Version B", ids, index=1, key="live_b", format_func=lambda i: f"v{approved[i].number}"
        )
        percent_b = int(share_col.number_input("Share of B (%)", min_value=1, max_value=99, value=10, key="live_share"))
        if st.button("Approve split", type="primary", key="live_approve"):
            with db.session_scope(write=True) as session, layout.shows_errors("Split approved"):
                traffic.approve_split(
                    session=session,
                    actor=actor,
                    prompt_id=prompt_id,
                    version_a_id=version_a,
                    version_b_id=version_b,
                    percent_b=percent_b,
                )
    if split is not None and st.button("End the split", key="live_end"):
        with db.session_scope(write=True) as session, layout.shows_errors("Split ended"):
            traffic.end_split(session=session, actor=actor, prompt_id=prompt_id)
