"""Newer / Older buttons and a "51–100 of 612" caption under a paged table (core.paging)."""

from __future__ import annotations

import streamlit as st


def cursor(key: str) -> int | None:
    """Where the table `key` starts now (None: the newest page)."""
    return st.session_state.setdefault(f"{key}_cursors", [None])[-1]


def controls(key: str, page) -> None:
    stack = st.session_state.setdefault(f"{key}_cursors", [None])
    newer, older, where = st.columns([1, 1, 4])
    if newer.button("Newer", key=f"{key}_newer", disabled=len(stack) == 1, icon=":material/arrow_back:"):
        stack.pop()
        st.rerun()
    if older.button("Older", key=f"{key}_older", disabled=page.older is None, icon=":material/arrow_forward:"):
        stack.append(page.older)
        st.rerun()
    where.caption(page.caption)
