"""Held requests: calls held by moderation, answers flagged by the output scan and answers a
prompt's escalation rule held; a held answer can become a test case."""

import streamlit as st

from core import db
from core.experiments import production_cases as cases
from core.formatting import text_or_missing
from core.gateway import held as review_requests
from pages.ui import layout, paging
from pages.ui.shown import when
from pages.ui.text import literal

PENDING_PAGE = 20  # each waiting request is a panel of its own

actor = layout.page_setup(__file__)
st.title("Held requests")
layout.show_flash()
st.caption(
    "Requests held by moderation and answers flagged by the output scan wait here. "
    "The calling application polls for your decision and reads your comment."
)

with db.session_scope() as session:
    pending_page = review_requests.held_page(
        session, actor=actor, decided=False, before=paging.cursor("pending"), limit=PENDING_PAGE
    )
    decided_page = review_requests.held_page(session, actor=actor, decided=True, before=paging.cursor("decided"))

pending = pending_page.items
if not pending_page.total:
    st.info("Nothing is waiting for a decision.")
for held in pending:
    with st.container(border=True):
        st.markdown(
            f"**{literal(held.public_id)}** · "
            + literal(f"{held.team or '?'} · {held.kind} · rule {held.rule} · held since {when(held.created_at)}")
        )
        st.caption(literal(f"Called with {held.caller or 'an unknown key'} ({held.team or 'unknown team'})"))
        st.text_area(
            "Request (as stored under the team's payload policy)",
            value=held.request_text or "(no request text was stored)",
            disabled=True,
            key=f"request_{held.public_id}",
        )
        st.dataframe(
            [
                {"rule": f["rule"], "count": f["count"], "masked": ", ".join(f["masked"]), "action": f["action"]}
                for f in held.findings
            ],
            hide_index=True,
            key=f"findings_{held.public_id}",
        )
        if held.response:
            choices = held.response.get("choices") or []
            st.text_area(
                "Answer (redacted)",
                value=(choices[0].get("message", {}).get("content") or "")
                if choices
                else str(held.response.get("content", "")),
                disabled=True,
                key=f"answer_{held.public_id}",
            )
        comment = st.text_input("Comment (required)", key=f"comment_{held.public_id}")
        release_col, deny_col, case_col = st.columns(3)
        if release_col.button("Release", key=f"release_{held.public_id}", type="primary"):
            with db.session_scope(write=True) as session, layout.shows_errors("Released"):
                review_requests.decide(
                    session=session, actor=actor, public_id=held.public_id, release=True, comment=comment
                )
        if deny_col.button("Deny", key=f"deny_{held.public_id}"):
            with db.session_scope(write=True) as session, layout.shows_errors("Denied"):
                review_requests.decide(
                    session=session, actor=actor, public_id=held.public_id, release=False, comment=comment
                )
        if held.rule.startswith("escalation.") and case_col.button("Add to test set", key=f"case_{held.public_id}"):
            with db.session_scope(write=True) as session, layout.shows_errors("Added to the prompt's test set"):
                cases.add_case(session, actor=actor, source="held", ref=held.public_id)

if pending_page.total > PENDING_PAGE or paging.cursor("pending") is not None:
    paging.controls("pending", pending_page)

st.subheader("Decided")
st.dataframe(
    [
        {
            "Held": when(h.created_at),
            "Team": text_or_missing(h.team),
            "Caller": text_or_missing(h.caller),
            "Rule": h.rule,
            "Request": text_or_missing(h.request_text),
            "Status": h.status,
            "Decided by": text_or_missing(h.decided_by),
            "Decided": when(h.decided_at),
            "Comment": text_or_missing(h.comment),
            "Id": h.public_id,
        }
        for h in decided_page.items
    ],
    hide_index=True,
    width="stretch",
    key="decided_table",
)
paging.controls("decided", decided_page)

# A denied (or released) answer a prompt's escalation rule held becomes a test case here.
caught = [h for h in decided_page.items if h.rule.startswith("escalation.")]
if caught:
    caught_names = {h.public_id: f"{h.public_id} · {h.rule} · {h.status}" for h in caught}
    chosen = st.selectbox(
        "Make a test case from a decided answer",
        options=list(caught_names),
        format_func=caught_names.__getitem__,
        key="decided_case_choice",
    )
    if st.button("Add to test set", key="decided_case"):
        with db.session_scope(write=True) as session, layout.shows_errors("Added to the prompt's test set"):
            cases.add_case(session, actor=actor, source="held", ref=chosen)
