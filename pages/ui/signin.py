"""Sign-in: OIDC through `st.login` when configured, otherwise the demo picker."""

from __future__ import annotations

import streamlit as st

from core import db
from core.identity import people as identity
from core.permissions import ROLE_LABELS, Actor
from core.settings import settings
from pages.ui.text import literal

DEMO_PERSON_KEY = "demo_person_id"
DEMO_ADDRESS_PARAM = "as"
_ADDRESS_READ = "_demo_address_read"


def current_actor() -> Actor:
    """The signed-in actor; draws the sign-in screen and stops the run when there is none."""
    config = settings()
    if config.auth_configured:
        return _oidc_actor()
    if not config.demo_mode:
        st.error(
            "Quorum is not configured: set up [auth] in .streamlit/secrets.toml, "
            "or start it in demo mode with QUORUM_DEMO=1."
        )
        st.stop()
    return _demo_actor()


def _oidc_actor() -> Actor:
    if not st.user.is_logged_in:
        st.title("Quorum")
        st.write("Sign in with your company account to continue.")
        st.button("Sign in", type="primary", on_click=st.login, key="oidc_login")
        st.stop()
    email = str(st.user.get("email") or "")
    with db.session_scope() as session:
        actor = identity.actor_for_email(session, email) if email else None
    if actor is None:
        st.error(literal(f"No access: {email or 'your account'} is not registered in Quorum. Ask an admin to add you."))
        st.button("Sign out", on_click=st.logout, key="oidc_logout_denied")
        st.stop()
    return actor


def _demo_actor() -> Actor:
    demo_banner()
    person_id = st.session_state.get(DEMO_PERSON_KEY)
    if person_id is None and not st.session_state.get(_ADDRESS_READ):
        # A reload starts a new session: the demo person rides in the address (demo mode only,
        # where the picker lets anyone be anyone; with OIDC this is never read). Read once per
        # session, so signing out is not undone by the address of the same page.
        person_id = _person_in_address()
    st.session_state[_ADDRESS_READ] = True
    if person_id is not None:
        with db.session_scope() as session:
            try:
                actor = identity.actor_for_person(session, person_id)
            except Exception:  # noqa: BLE001 - a stale id (after a reset) just means sign in again
                _forget_demo_person()
            else:
                st.session_state[DEMO_PERSON_KEY] = person_id
                if st.query_params.get(DEMO_ADDRESS_PARAM) != str(person_id):
                    st.query_params[DEMO_ADDRESS_PARAM] = str(person_id)
                return actor
    _demo_picker()
    st.stop()


def _person_in_address() -> int | None:
    value = st.query_params.get(DEMO_ADDRESS_PARAM, "")
    return int(value) if value.isdigit() else None


def _forget_demo_person() -> None:
    st.session_state.pop(DEMO_PERSON_KEY, None)
    st.query_params.pop(DEMO_ADDRESS_PARAM, None)


def demo_banner() -> None:
    st.warning(
        "**Demo mode** — sign-in is simulated and model calls go to Quorum's built-in simulator. Not for production.",
        icon=":material/science:",
    )


def _demo_picker() -> None:
    st.title("Sign in to Quorum (demo)")
    with db.session_scope() as session:
        people = [p for p in identity.list_people(session) if p.active]
    if not people:
        st.info("No people yet. Run `quorum demo seed` to create the demo teams and people.")
        return
    labels = {p.id: f"{p.display_name} — {', '.join(ROLE_LABELS[r] for r in p.roles) or 'no role'}" for p in people}
    choice = st.selectbox("Sign in as", options=list(labels), format_func=labels.get, key="demo_pick")
    if st.button("Sign in", type="primary", key="demo_sign_in"):
        st.session_state[DEMO_PERSON_KEY] = choice
        st.rerun()


def sign_out() -> None:
    if settings().auth_configured:
        st.logout()
    else:
        _forget_demo_person()
