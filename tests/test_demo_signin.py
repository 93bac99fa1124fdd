"""Demo sign-in survives a reload (the person rides in the address) and only in demo mode."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core.identity import people as identity
from core.settings import reset_settings
from tests.conftest import APP

TOM = "tom.becker@example.com"


def _fresh_session_at(address_person: str) -> AppTest:
    """A new browser session (a reload) whose address carries ?as=…"""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["as"] = address_person
    return at.run()


def _signed_in_as(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption if "Signed in as" in c.value)


def test_a_reload_keeps_the_demo_person_and_sign_out_forgets_them(session, directory):
    tom = identity.person_by_email(session, TOM)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.selectbox(key="demo_pick").set_value(tom.id)
    at.button(key="demo_sign_in").click().run()
    assert at.query_params["as"] in (str(tom.id), [str(tom.id)])

    reloaded = _fresh_session_at(str(tom.id))
    assert not reloaded.exception
    assert "Tom Becker" in _signed_in_as(reloaded)

    next(b for b in reloaded.sidebar.button if b.label == "Sign out").click().run()
    assert "as" not in reloaded.query_params
    assert "demo_person_id" not in reloaded.session_state  # (the browser test sees the picker again)


def test_outside_demo_mode_the_address_signs_nobody_in(session, directory, monkeypatch):
    monkeypatch.delenv("QUORUM_DEMO")
    reset_settings()
    at = _fresh_session_at(str(identity.person_by_email(session, TOM).id))
    assert _signed_in_as(at) == ""
    assert any("Quorum is not configured" in e.value for e in at.error)


def test_a_stale_or_malformed_address_shows_the_picker(session, directory):
    for value in ("999999", "abc", "-1"):
        at = _fresh_session_at(value)
        assert not at.exception
        assert [s.key for s in at.selectbox] == ["demo_pick"]
