"""The human-in-the-loop loop of one prompt, as the catalog and the review queue show it:
catches per version over time, cases made from production, and how a version does on them."""

from __future__ import annotations

import streamlit as st

from core import db
from core.experiments import catches
from core.experiments import production_cases as cases
from core.permissions import Actor
from pages.ui.text import literal


def show_results(actor: Actor, version_id: int, number: int) -> None:
    """One line on a version's results on its prompt's production-born cases."""
    with db.session_scope() as session:
        results = cases.results_on_production_cases(session, actor=actor, version_id=version_id)
    if results is None:
        return
    total = len(results.passed) + len(results.failed) + len(results.not_run)
    if results.experiment_id is None:
        st.caption(f"v{number} has not been run on the {total} case(s) made from production yet.")
        return
    line = f"v{number} passes {len(results.passed)} of {total} case(s) made from production"
    if results.failed:
        line += "; fails " + ", ".join(results.failed)
    if results.not_run:
        line += f"; {len(results.not_run)} added since its experiment"
    (st.success if results.passes_all else st.warning)(literal(line), icon=":material/fact_check:")


def show_loop(actor: Actor, prompt_name: str, newest_version_id: int, newest_number: int) -> None:
    with db.session_scope() as session:
        counted = catches.catches_per_version(session, actor=actor, prompt_name=prompt_name)
        made = cases.production_cases(session, actor=actor, prompt_name=prompt_name)
    st.markdown("**Catches per version**")
    if counted:
        st.dataframe(
            [
                {
                    "day": c["day"],
                    "version": c["version"],
                    "action": c["action"].replace("_", " "),
                    "catches": c["catches"],
                }
                for c in counted
            ],
            hide_index=True,
            width="stretch",
            key="loop_catches",
        )
    else:
        st.caption("No escalation rule of this prompt has caught an answer yet.")
    st.markdown("**Cases made from production**")
    if made:
        st.dataframe(
            [
                {
                    "case": c["case"],
                    "from": c["source"].get("kind", "?"),
                    "source": c["source"].get("ref", ""),
                    "checks": "; ".join(f"{a['type']} {a.get('value', '')}"[:80] for a in c["assertions"]),
                }
                for c in made
            ],
            hide_index=True,
            width="stretch",
            key="loop_cases",
        )
        show_results(actor, newest_version_id, newest_number)
    else:
        st.caption("No held, reviewed or low-scored answer has been added to a test set yet.")
