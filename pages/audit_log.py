"""Audit log: filter, page through and export the tamper-evident record of every change."""

import streamlit as st

from core import db, exports
from core.audit import checkpoints as audit_checkpoints
from core.audit import export as audit_export
from core.audit import query as audit_query
from core.errors import QuorumError
from core.formatting import MISSING
from core.identity import people as identity
from pages.ui import layout
from pages.ui.shown import when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Audit log")
layout.show_flash()
protected, protection = audit_checkpoints.protection_status()
if not protected:
    st.warning(protection, icon=":material/lock_open:")

with db.session_scope() as session:
    teams = {t.id: t.name for t in identity.list_teams(session)}

with st.expander("Filters", expanded=True):
    left, middle, right = st.columns(3)
    actor_text = left.text_input("Actor", key="audit_actor", placeholder="person:12, e-mail or name")
    action_text = middle.text_input(
        "Action",
        key="audit_action",
        placeholder="budget.  -team.",
        help="'budget.' is a prefix, '-team.' excludes, 'team.create' is exact",
    )
    team_id = right.selectbox(
        "Team", [None, *teams], format_func=lambda t: "any team" if t is None else teams[t], key="audit_team"
    )
    left, middle, right = st.columns(3)
    target_type = left.text_input("Target type", key="audit_target_type", placeholder="team, person, budget...")
    target_id = middle.text_input("Target id", key="audit_target_id")
    free_text = right.text_input("Text in the details", key="audit_text", help="Searched in the before/after JSON")
    left, right = st.columns(2)
    since_text = left.text_input(
        "From (UTC, inclusive)", key="audit_since", placeholder="2026-03-01 or 2026-03-01T14:30"
    )
    until_text = right.text_input("Until (UTC, exclusive)", key="audit_until")

try:
    filters = audit_query.AuditFilter(
        actor=actor_text,
        action=action_text,
        target_type=target_type,
        target_id=target_id,
        team_id=team_id,
        since=audit_query.parse_time(since_text, field="From"),
        until=audit_query.parse_time(until_text, field="Until"),
        text=free_text,
    )
    # A stack of page starts (seq cursors) for the current filters; new filters start over.
    if st.session_state.get("audit_filters") != filters:
        st.session_state["audit_filters"] = filters
        st.session_state["audit_pages"] = [None]
    cursors = st.session_state["audit_pages"]
    with db.session_scope() as session:
        page = audit_query.search(session, actor=actor, filters=filters, before_seq=cursors[-1])
        names = audit_query.actor_names(session, {e.actor for e in page.events})
except QuorumError as error:
    st.error(literal(error), icon=":material/block:")
    st.stop()


def actor_label(ref: str) -> str:
    return f"{names[ref]} ({ref})" if ref in names else ref


if not page.events:
    st.info("No audit events match these filters.")
else:
    picked = st.dataframe(
        [
            {
                "Seq": e.seq,
                "Time": when(e.occurred_at, seconds=True),
                "Actor": actor_label(e.actor),
                "Action": e.action,
                "Target": f"{e.target_type} {e.target_id}",
                "Team": teams.get(e.team_id, str(e.team_id)) if e.team_id is not None else MISSING,
            }
            for e in page.events
        ],
        hide_index=True,
        width="stretch",
        key="audit_table",
        on_select="rerun",
        selection_mode="single-row",
    )
newer, older, _ = st.columns([1, 1, 4])
if newer.button("Newer", key="audit_newer", disabled=len(cursors) == 1, icon=":material/arrow_back:"):
    cursors.pop()
    st.rerun()
if older.button("Older", key="audit_older", disabled=page.older is None, icon=":material/arrow_forward:"):
    cursors.append(page.older)
    st.rerun()

if page.events:
    rows = picked.selection.rows if picked and picked.selection else []
    if rows:
        event = page.events[rows[0]]
        st.subheader(literal(f"Event {event.seq}: {event.action}"))
        st.caption(
            literal(
                f"{when(event.occurred_at, seconds=True)} ({event.occurred_at:%Y-%m-%d %H:%M:%S.%f} UTC) · "
                f"{actor_label(event.actor)} · "
                f"{event.target_type} {event.target_id} · event id {event.event_id} · "
                f"hash {event.hash[:16]}…"
            )
        )
        changes = audit_query.diff(event.before, event.after)
        if changes:
            st.dataframe(
                [
                    {
                        "Field": c.path,
                        "Before": MISSING if c.before is None else str(c.before),
                        "After": MISSING if c.after is None else str(c.after),
                        "Change": c.kind,
                    }
                    for c in changes
                ],
                hide_index=True,
                width="stretch",
                key="audit_diff",
            )
        else:
            st.caption("No before/after details recorded.")
    else:
        st.caption("Select a row to see what the change did.")

st.subheader("Export")
st.caption(
    "Exactly the filtered events, oldest first, with UTC times and event ids for de-duplication. "
    "The file is written while it downloads (your browser shows its progress); the links last 15 minutes."
)
with db.session_scope() as session:
    links = {
        fmt: exports.download_link(
            audit_export.prepare(session=session, actor=actor, filters=filters, fmt=fmt), owner=actor.ref
        )
        for fmt in audit_export.FORMATS
    }
left, right, _ = st.columns([1, 1, 4])
left.link_button("CSV", links["csv"], icon=":material/download:", key="audit_export_csv")
right.link_button("JSON Lines", links["jsonl"], icon=":material/download:", key="audit_export_jsonl")
