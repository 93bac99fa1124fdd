"""Home: for each of my roles, what that role came to see first; then what happened lately."""

import streamlit as st

from core import db
from core import formatting as fmt
from core.anomalies import run as anomaly_run
from core.audit import query as audit_query
from core.audit import record as audit
from core.permissions import Permission
from core.settings import settings
from pages.ui import home_sections, layout
from pages.ui.text import literal


def _who(ref: str) -> str:
    """An actor who is not (or no longer) a person in the directory, e.g. `system:seed`."""
    if ref.startswith("system:"):
        return f"system ({ref.split(':', 1)[1]})"
    return "a former member" if ref.startswith("person:") else ref


actor = layout.page_setup(__file__)
if actor.can(Permission.ALERT_READ):
    # The first view after an hour closes looks at that hour (cron's `quorum alerts detect` may
    # already have); otherwise this is one read.
    anomaly_run.detect_if_due()
st.title("Good to see you, " + literal(actor.display_name.split()[0]))
layout.show_flash()

mine = [(role, section) for role, section in home_sections.SECTIONS.items() if role in actor.roles]
if not mine:
    st.info("You have no role in Quorum yet: an admin grants roles under Teams & people.")
for role, (title, draw) in mine:
    with st.container(border=True, key=f"home_{role.value}"):
        st.caption(title.upper())
        draw(actor)

if actor.can(Permission.AUDIT_READ):
    with db.session_scope() as session:
        recent = audit.recent_events(session, actor=actor, limit=10)
        names = audit_query.actor_names(session, [e.actor for e in recent])
    if recent:
        st.subheader("Recent activity")
        zone = settings().timezone
        st.dataframe(
            [
                {
                    "Time": fmt.when(e.occurred_at, zone, seconds=True),
                    "Who": names.get(e.actor) or _who(e.actor),
                    "Action": e.action,
                    "Target": f"{e.target_type} {e.target_id}",
                }
                for e in recent
            ],
            hide_index=True,
            width="stretch",
            key="home_recent",
        )
