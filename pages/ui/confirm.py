"""Destructive actions in two steps: the button asks, a box names the object and what happens,
and only "Yes, …" does it.

The question remembers which object it was asked about: if the selection changes before the
answer, the question is dropped rather than applied to whatever is selected now.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import streamlit as st

from pages.ui.text import literal


def confirmed(
    key: str,
    *,
    button: str,
    target: Hashable,
    question: str,
    consequence: str,
    where: Any = st,
    primary: bool = False,
) -> bool:
    """True on the run where the person confirmed `question` for this same `target`.

    `question` names the object ("Revoke key sk-qrm-ab12… of Support?"); `consequence` says what
    follows and whether it can be undone."""
    state = f"_confirm_{key}"
    if where.button(button, key=key, type="primary" if primary else "secondary"):
        st.session_state[state] = target
    if state not in st.session_state:
        return False
    if st.session_state[state] != target:
        del st.session_state[state]
        return False
    box = where.container(border=True)
    box.warning(literal(f"{question} {consequence}"), icon=":material/warning:")
    yes, cancel = box.columns(2)
    if yes.button(f"Yes, {button[0].lower()}{button[1:]}", key=f"{key}_yes", type="primary"):
        del st.session_state[state]
        return True
    if cancel.button("Cancel", key=f"{key}_cancel"):
        del st.session_state[state]
        st.rerun()
    return False
