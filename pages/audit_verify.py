"""Verify audit chain: check every link and signed checkpoint, and sign new checkpoints."""

from datetime import datetime

import streamlit as st

from core import db
from core.audit import checkpoints as audit_checkpoints
from core.audit import verify as audit_verify
from core.formatting import MISSING
from pages.ui import layout
from pages.ui.shown import when

actor = layout.page_setup(__file__)
st.title("Verify the audit chain")
layout.show_flash()
protected, protection = audit_checkpoints.protection_status()
(st.info if protected else st.warning)(
    protection, icon=":material/verified_user:" if protected else ":material/lock_open:"
)
st.caption(
    "Every event's hash and every link between events is checked, not a sample, together with every "
    "signed checkpoint in the database and in the checkpoint file."
)

FULL, INCREMENTAL = "Full: every event", "Incremental: events after the last verified checkpoint"
mode = st.radio(
    "What to read",
    [FULL, INCREMENTAL],
    key="verify_mode",
    horizontal=True,
    help="Incremental reads only the events after the newest checkpoint a clean verification signed. Of the "
    "events before it, it checks only that the last one still ends in the signed hash and that none is missing "
    "or doubled: an edit among them that keeps their hashes is found by a full verification only.",
)
if st.button("Verify the chain", key="verify_run", type="primary", icon=":material/fact_check:"):
    bar = st.progress(0.0, text="Starting…")

    def progress(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 1.0, text=f"{done:,} of {total:,} events checked")

    with db.session_scope() as session, layout.shows_errors():
        result = audit_verify.verify_chain(
            session=session, actor=actor, progress=progress, checkpoint=True, incremental=mode == INCREMENTAL
        )
        bar.progress(1.0, text=f"{result.events:,} events checked")
        if result.ok:
            st.success(result.summary(), icon=":material/check_circle:")
        else:
            st.error(
                f"{len(result.problems) + result.dropped_problems} problem(s) found in {result.events:,} events",
                icon=":material/gpp_bad:",
            )
            st.code("\n".join(result.lines()), language=None)
        for note in result.notes:
            st.caption(note)

if protected and st.button("Sign a checkpoint now", key="verify_checkpoint", icon=":material/approval:"):
    with db.session_scope(write=True) as session, layout.shows_errors("Checkpoint signed"):
        audit_checkpoints.create_checkpoint(session=session, actor=actor)

with db.session_scope() as session:
    checkpoints = audit_checkpoints.recent_checkpoints(session, actor=actor)
st.subheader("Recent checkpoints")
if checkpoints:
    st.dataframe(
        [
            {
                "Seq": c.seq,
                "Signed": when(datetime.fromisoformat(c.created_at), seconds=True),
                "Head hash": c.head_hash[:16] + "…",
                "Signing key": c.key_id,
                "Pruned before": c.pruned_before or MISSING,
            }
            for c in checkpoints
        ],
        hide_index=True,
        width="stretch",
        key="verify_checkpoints",
    )
else:
    st.caption("No checkpoints yet.")
