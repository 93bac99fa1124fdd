"""Quorum: the dashboard and the gateway's HTTP routes, served by one server.

`quorum run` (Streamlit's `streamlit run app.py`, through pages.ui.server for its socket
options) finds the `st.App` below and serves it with the HTTP routes mounted beside the
pages. Each browser session then runs this same file as its page script, which
signs the person in and registers only the pages their roles may use.
"""

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

if get_script_run_ctx(suppress_warning=True) is None:
    # Imported by the ASGI server: build the app with its HTTP routes.
    from core.http.routes import http_middleware, http_routes, lifespan

    app = st.App("app.py", routes=http_routes(), middleware=http_middleware(), lifespan=lifespan)
else:
    # A browser session's run: sign in, then show the pages this person may use.
    from core import migrate
    from pages.ui import layout, registry, signin

    # A file, not a Material icon name: Streamlit fetches those favicons from fonts.gstatic.com,
    # and the app makes no request that leaves the machine.
    st.set_page_config(page_title="Quorum", page_icon=str(layout.FAVICON), layout="wide")
    migrate.upgrade_once()
    actor = signin.current_actor()
    st.session_state["actor"] = actor
    layout.sidebar(actor)
    sections: dict[str, list] = {}
    for spec in registry.pages_for(actor):
        sections.setdefault(spec.section, []).append(st.Page(spec.path, title=spec.title, icon=spec.icon))
    st.navigation(sections).run()
