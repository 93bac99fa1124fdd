"""Catalog: every prompt, filtered; one prompt's versions, diffs, labels, reviews and catches."""

import streamlit as st

from core import db
from core.catalog import risk as risk_tiers
from core.catalog import views
from core.catalog.diff import version_changes
from core.catalog.spec import RISK_TIERS
from core.catalog.store import STATES
from core.formatting import text_or_missing
from core.identity import people as identity
from pages.ui import diff_view, layout, production_cases
from pages.ui.shown import when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Prompt catalog")
layout.show_flash()

search_col, team_col, state_col, label_col, risk_col = st.columns([3, 2, 2, 2, 2])
search = search_col.text_input("Search", key="catalog_search", placeholder="name or purpose")
with db.session_scope() as session:
    team_names = [t.name for t in identity.list_teams(session)]
team = team_col.selectbox("Team", [None, *team_names], format_func=lambda t: t or "All", key="catalog_team")
state = state_col.selectbox(
    "Has a version in state", [None, *STATES], format_func=lambda s: s or "Any", key="catalog_state"
)
label = label_col.selectbox(
    "Label", [None, "production", "staging"], format_func=lambda s: s or "Any", key="catalog_label"
)
risk = risk_col.selectbox("Risk tier", [None, *RISK_TIERS], format_func=lambda s: s or "Any", key="catalog_risk")

with db.session_scope() as session:
    rows = views.list_prompts(session, actor=actor, search=search, team=team, state=state, label=label, risk_tier=risk)
st.dataframe(
    [
        {
            "prompt": r.name,
            "team": r.team,
            "risk": r.risk_tier,
            "data": r.data_classification,
            "versions": r.versions,
            "latest": r.latest_state,
            "labels": ", ".join(f"{n} → v{v}" for n, v in r.labels.items()),
            "purpose": r.purpose,
        }
        for r in rows
    ],
    hide_index=True,
    width="stretch",
    key="catalog_table",
)
if not rows:
    st.info("No prompts match. Prompt engineers add prompts in the editor or with `quorum prompts import`.")
    st.stop()

by_id = {r.id: r for r in rows}
chosen = st.selectbox("Show prompt", list(by_id), format_func=lambda i: by_id[i].name, key="catalog_prompt")
with db.session_scope() as session:
    detail = views.prompt_detail(session, actor=actor, prompt_id=chosen)
st.subheader(literal(detail.prompt.name))
st.caption(literal(f"{detail.prompt.team} · {detail.prompt.risk_tier} risk · {detail.prompt.data_classification} data"))
st.markdown(literal(detail.prompt.purpose))
with db.session_scope() as session:
    open_tiers = risk_tiers.tiers_open_to(session, actor=actor, prompt_id=chosen)
if open_tiers:
    with st.expander("Change the risk tier"):
        st.caption(
            "Lowering a tier is for governance leads; a prompt's engineers may raise it. "
            "A version already in review still needs what its tier at submission required."
        )
        new_tier = st.selectbox("New risk tier", open_tiers, key="catalog_new_risk")
        if st.button("Change risk tier", key="catalog_change_risk"):
            with (
                db.session_scope(write=True) as session,
                layout.shows_errors(f"{detail.prompt.name} is now {new_tier} risk"),
            ):
                risk_tiers.change_risk_tier(session=session, actor=actor, prompt_id=chosen, risk_tier=new_tier)

versions_tab, diff_tab, labels_tab, reviews_tab, loop_tab = layout.tabs(
    ["Versions", "Compare", "Label history", "Reviews", "Catches"], key="catalog_tab"
)
with versions_tab:
    st.dataframe(
        [
            {
                "version": v.number,
                "state": v.state,
                "labels": ", ".join(v.labels) or "—",
                "author": v.author,
                "created": when(v.created_at),
                "change note": text_or_missing(v.change_note),
                "hash": v.content_hash[:12],
            }
            for v in detail.versions
        ],
        hide_index=True,
        width="stretch",
        key="catalog_versions",
    )
with diff_tab:
    numbers = {v.id: v.number for v in detail.versions}
    ids = list(numbers)
    left, right = st.columns(2)
    old = left.selectbox(
        "Old", ids, index=min(1, len(ids) - 1), format_func=lambda i: f"v{numbers[i]}", key="catalog_diff_old"
    )
    new = right.selectbox("New", ids, index=0, format_func=lambda i: f"v{numbers[i]}", key="catalog_diff_new")
    if old == new:
        st.caption("Pick two different versions to see what changed.")
    else:
        with db.session_scope() as session:
            changes = version_changes(
                views.version_spec_of(session, actor=actor, version_id=old),
                views.version_spec_of(session, actor=actor, version_id=new),
            )
        diff_view.show_changes(changes, empty="The two versions have the same content.")
with labels_tab:
    if detail.label_moves:
        st.dataframe(
            [
                {
                    "label": m.label,
                    "from": f"v{m.from_version}" if m.from_version else "—",
                    "to": f"v{m.to_version}",
                    "by": m.actor,
                    "when": when(m.moved_at),
                }
                for m in detail.label_moves
            ],
            hide_index=True,
            width="stretch",
            key="catalog_label_moves",
        )
    else:
        st.caption("No label has pointed at this prompt yet.")
with reviews_tab:
    if detail.reviews:
        st.dataframe(
            [
                {
                    "version": r.version,
                    "reviewer": r.reviewer,
                    "decision": r.decision.replace("_", " "),
                    "comment": text_or_missing(r.comment),
                    "when": when(r.created_at),
                }
                for r in detail.reviews
            ],
            hide_index=True,
            width="stretch",
            key="catalog_reviews",
        )
    else:
        st.caption("No reviews yet.")
with loop_tab:
    newest = max(detail.versions, key=lambda v: v.number)
    production_cases.show_loop(actor, detail.prompt.name, newest.id, newest.number)
