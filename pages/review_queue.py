"""Review queue: decide on versions in review, four eyes; point labels at approved versions."""

import streamlit as st

from core import db
from core.catalog import labels, views, workflow
from core.permissions import Permission
from pages.ui import confirm, diff_view, layout, production_cases
from pages.ui.shown import when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Review queue")
layout.show_flash()

with db.session_scope() as session:
    queue = views.review_queue(session, actor=actor)

if not queue:
    st.info("Nothing waits for review.")
for item in queue:
    with st.container(border=True):
        st.subheader(literal(f"{item.prompt_name} v{item.number}"))
        st.caption(
            literal(
                f"{item.team} · {item.risk_tier} risk · by {item.author} · "
                f"approvals {item.approvals} of {item.required}"
            )
        )
        st.markdown("Change note: " + literal(item.change_note or "—"))
        with st.expander(literal(f"Changes against {item.baseline}: {len(item.changes)}"), expanded=True):
            diff_view.show_changes(item.changes)
        if item.checks:
            st.warning("Static checks:\n\n" + "\n\n".join(literal(check) for check in item.checks))
        else:
            st.caption("Static checks: no findings.")
        if item.evidence:
            st.markdown("**Evidence**")
            st.dataframe(
                [
                    {
                        "kind": e.kind,
                        "reference": e.reference_id,
                        "summary": e.summary,
                        "by": e.attached_by,
                        "when": when(e.attached_at),
                    }
                    for e in item.evidence
                ],
                hide_index=True,
                width="stretch",
                key=f"evidence_{item.version_id}",
            )
        production_cases.show_results(actor, item.version_id, item.number)
        if item.superseded_by:
            st.warning(
                literal(f"Superseded: {item.superseded_by} is newer and already approved."),
                icon=":material/history:",
            )
        if item.mine:
            st.caption("You wrote this version, so another reviewer decides on it.")
            continue
        if item.already_reviewed:
            st.caption("You have approved this version; it waits for another reviewer.")
            continue
        st.info(literal(item.outcome), icon=":material/gavel:")
        comment = st.text_area("Comment (required)", key=f"comment_{item.version_id}", height=80)
        approve_col, changes_col, reject_col = st.columns(3)
        if approve_col.button("Approve", type="primary", key=f"approve_{item.version_id}"):
            with (
                db.session_scope(write=True) as session,
                layout.shows_errors(f"Approved {item.prompt_name} v{item.number}"),
            ):
                workflow.approve(session=session, actor=actor, version_id=item.version_id, comment=comment)
        if changes_col.button("Request changes", key=f"request_changes_{item.version_id}"):
            with db.session_scope(write=True) as session, layout.shows_errors("Changes requested"):
                workflow.request_changes(session=session, actor=actor, version_id=item.version_id, comment=comment)
        if reject_col.button("Reject", key=f"reject_{item.version_id}"):
            with db.session_scope(write=True) as session, layout.shows_errors("Rejected"):
                workflow.reject(session=session, actor=actor, version_id=item.version_id, comment=comment)

if not actor.can(Permission.LABEL_MOVE):
    st.stop()
st.subheader("Labels")
with db.session_scope() as session:
    prompts = [p for p in views.list_prompts(session, actor=actor, state="approved")]
if not prompts:
    st.caption("No approved versions yet.")
    st.stop()
by_id = {p.id: p for p in prompts}
prompt_col, version_col, label_col = st.columns(3)
prompt_id = prompt_col.selectbox("Prompt", list(by_id), format_func=lambda i: by_id[i].name, key="label_prompt")
with db.session_scope() as session:
    approved = views.approved_versions(session, actor=actor, prompt_id=prompt_id)
versions = {v.id: v for v in approved}
version_id = version_col.selectbox(
    "Approved version",
    list(versions),
    key="label_version",
    format_func=lambda i: (
        f"v{versions[i].number}" + (f" ({', '.join(versions[i].labels)})" if versions[i].labels else "")
    ),
)
label = label_col.selectbox("Label", [labels.PRODUCTION, labels.STAGING], key="label_name")
move_col, deprecate_col = st.columns(2)
current = next((v for v in versions.values() if label in v.labels), None)
if confirm.confirmed(
    "move_label",
    button="Move label here",
    target=(version_id, label),
    where=move_col,
    primary=True,
    question=f"Point '{label}' at v{versions[version_id].number}"
    + (f" instead of v{current.number}" if current else "")
    + (" (an older version: a rollback)?" if current and current.number > versions[version_id].number else "?"),
    consequence="Applications calling this prompt by its label get this version from the next call.",
):
    with (
        db.session_scope(write=True) as session,
        layout.shows_errors(f"'{label}' now points at v{versions[version_id].number}"),
    ):
        labels.move_label(session=session, actor=actor, version_id=version_id, label=label)
if deprecate_col.button("Deprecate this version", key="deprecate_version"):
    with db.session_scope(write=True) as session, layout.shows_errors(f"v{versions[version_id].number} deprecated"):
        workflow.deprecate(session=session, actor=actor, version_id=version_id)
