"""Show a version's changes field by field: what changed, how, and a message's lines in a diff
block (removed lines red, added green); text is shown as text, never as Markdown."""

from __future__ import annotations

import streamlit as st

from core.catalog.diff import WHITESPACE, FieldChange
from pages.ui.text import literal

_MAX_INLINE = 80  # longer old/new values go in a block rather than on one line


def show_changes(changes: list[FieldChange], *, empty: str = "No changes.") -> None:
    if not changes:
        st.caption(empty)
        return
    for change in changes:
        title = f"**{literal(change.field)}** · {change.kind}"
        if change.kind == WHITESPACE:
            title += " (spaces or line breaks moved; the words are the same)"
        if change.lines:
            st.markdown(title)
            st.code("\n".join(change.lines), language="diff")
        elif max(len(change.old), len(change.new)) <= _MAX_INLINE and "\n" not in change.old + change.new:
            old = f"`{literal(change.old)}`" if change.old else "—"
            new = f"`{literal(change.new)}`" if change.new else "—"
            st.markdown(f"{title}: {old} → {new}")
        else:
            st.markdown(title)
            st.code(f"- {change.old}\n+ {change.new}", language="diff")
