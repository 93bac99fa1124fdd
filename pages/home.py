"""Home: what needs my attention, and what happened lately."""

import streamlit as st

from core import attention, db
from core.audit import query as audit_query
from core.audit import record as audit
from core.identity import people as identity
from core.permissions import Permission
from pages.ui import layout
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Good to see you, " + literal(actor.display_name.split()[0]))

with db.session_scope() as session:
    panels = attention.attention_for(session, actor)
    teams = identity.list_teams(session)
    people = identity.list_people(session)
    recent = audit.recent_events(session, actor=actor, limit=10) if actor.can(Permission.AUDIT_READ) else []
    names = audit_query.actor_names(session, [e.actor for e in recent])

st.subheader("Needs your attention")
columns = st.columns(len(panels))
for column, (panel, items) in zip(columns, panels.items(), strict=True):
    with column.container(border=True):
        st.markdown(f"**{literal(panel)}**")
        if not items:
            st.caption("Nothing waiting.")
        for item in items:
            show = {"error": st.error, "warning": st.warning}.get(item.severity, st.info)
            show(f"**{literal(item.title)}**  \n{literal(item.detail)}" if item.detail else literal(item.title))
            if item.page:
                st.page_link(item.page, label="Open", icon=":material/arrow_forward:")

left, right = st.columns(2)
left.metric("Teams", len(teams))
right.metric("People", len(people))

if recent:
    st.subheader("Recent activity")
    st.dataframe(
        [
            {
                "time (UTC)": e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                "actor": names.get(e.actor, e.actor),
                "action": e.action,
                "target": f"{e.target_type} {e.target_id}",
            }
            for e in recent
        ],
        hide_index=True,
        width="stretch",
    )
