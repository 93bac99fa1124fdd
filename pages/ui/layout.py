"""The frame around every page: the signed-in person in the sidebar, and error display."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from core.errors import QuorumError
from core.permissions import ROLE_LABELS, Actor
from pages.ui import registry, signin
from pages.ui.text import literal


def sidebar(actor: Actor) -> None:
    with st.sidebar:
        roles = ", ".join(ROLE_LABELS[r] for r in sorted(actor.roles)) or "no role"
        st.caption(f"Signed in as **{literal(actor.display_name)}** · {literal(roles)}")
        st.button("Sign out", on_click=signin.sign_out, key="sign_out")


def page_setup(page_file: str) -> Actor:
    """The first line of every page: the signed-in actor, if this page is theirs to use.

    app.py registers only a role's own pages, but Streamlit can still run a file under
    `pages/` directly (its legacy multipage mode does so for a fresh process), so each
    page checks again rather than trusting that it was reached through the navigation.
    """
    actor = st.session_state.get("actor")
    if actor is None:
        st.info("Please sign in first.")
        st.stop()
    if not registry.allowed(actor, page_file):
        st.error("You do not have access to this page.")
        st.stop()
    return actor


FAVICON = Path(__file__).parent / "assets" / "favicon.png"
_FLASH_KEY = "flash_message"


def tabs(labels: list[str], *, key: str) -> Sequence[Any]:
    """Tabs that keep the chosen tab across reruns.

    Without a key the tab set's identity is its position on the page, so the notice a change
    leaves above it (or an error box) made a new tab set and showed the first tab, hiding the
    result of what was just done in another one."""
    return st.tabs(labels, key=key, on_change="rerun")


@contextmanager
def shows_errors(success: str | None = None) -> Iterator[None]:
    """Run a core call; show a refusal as an error box, and on success rerun with a notice.

    The rerun makes every table on the page show the change at once; the notice survives it.
    """
    try:
        yield
    except QuorumError as error:
        st.error(literal(error), icon=":material/block:")
    else:
        if success:
            flash(success)
            st.rerun()


def flash(message: str) -> None:
    """Leave a notice for the next run to show (after an explicit st.rerun)."""
    st.session_state[_FLASH_KEY] = message


def show_flash() -> None:
    """Show the notice left by the previous run's successful change, once."""
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.success(literal(message), icon=":material/check_circle:")
