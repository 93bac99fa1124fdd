"""Every role sees exactly its pages, and each of them renders without an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import PEOPLE
from core.identity import people as identity
from core.permissions import Role
from pages.ui.registry import PAGES, pages_for
from tests.conftest import APP

EMAIL_BY_ROLE = {role: next(email for _n, email, roles, _t in PEOPLE if role in roles) for role in Role}


def signed_in(session, email: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_person_id"] = identity.person_by_email(session, email).id
    at.run()
    assert not at.exception, at.exception
    return at


def errors_of(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_its_pages_and_only_those(session, directory, role):
    actor = directory.with_role(role)
    allowed = {spec.path for spec in pages_for(actor)}
    at = signed_in(session, EMAIL_BY_ROLE[role])
    for spec in PAGES:
        if spec.path not in allowed:
            with pytest.raises(ValueError):
                at.switch_page(spec.path)
    for path in allowed:
        # A fresh session per page: after one switch AppTest falls back to the legacy
        # pages-directory registry, which would hide a wrongly registered page.
        at = signed_in(session, EMAIL_BY_ROLE[role])
        at.switch_page(path).run()
        assert not at.exception, f"{path} raised for {role}: {at.exception}"
        assert not errors_of(at), f"{path} shows errors for {role}: {errors_of(at)}"


@pytest.mark.parametrize("role", list(Role))
def test_a_page_run_directly_refuses_a_role_it_is_not_for(session, directory, role):
    actor = directory.with_role(role)
    allowed = pages_for(actor)
    for spec in [p for p in PAGES if p not in allowed]:
        at = AppTest.from_file(str(Path(APP).parent / spec.path), default_timeout=60)
        at.session_state["actor"] = actor
        at.run()
        assert not at.exception
        assert errors_of(at) == ["You do not have access to this page."], spec.path


def test_without_a_person_the_demo_sign_in_is_shown(session, directory):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "Demo mode" in at.warning[0].value
    assert at.selectbox(key="demo_pick").options
    at.button(key="demo_sign_in").click().run()
    assert not at.exception
    assert "Good to see you" in at.title[0].value


def test_admin_creates_a_team_and_sees_it(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/teams.py").run()
    at.text_input(key="team_name").input("Research")
    at.text_area(key="team_description").input("Applied research")
    at.button[[b.label for b in at.button].index("Create team")].click().run()
    assert not at.exception
    assert any("Research" in s.value for s in at.success)
    session.rollback()  # end the test's read snapshot to see the page's write
    assert "Research" in [t.name for t in identity.list_teams(session)]


def test_an_empty_team_name_gets_a_clear_message_and_nothing_is_written(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/teams.py").run()
    at.button[[b.label for b in at.button].index("Create team")].click().run()
    assert errors_of(at) == ["A team needs a name"]
    assert len(identity.list_teams(session)) == 4


def test_a_duplicate_email_gets_a_clear_message_in_the_page(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/teams.py").run()
    at.text_input(key="person_email").input("tom.becker@example.com")
    at.text_input(key="person_name").input("Tom Again")
    at.button[[b.label for b in at.button].index("Add person")].click().run()
    assert errors_of(at) == ["A person with e-mail 'tom.becker@example.com' already exists"]


def test_auditors_see_the_directory_read_only(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/teams.py").run()
    assert not at.exception
    assert "Create team" not in [b.label for b in at.button]
    assert any("Read-only" in c.value for c in at.caption)


def test_an_unknown_oidc_user_gets_no_access(session, directory, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nclient_id = "quorum"\ncookie_secret = "' + "s" * 40 + '"\n')
    monkeypatch.setenv("QUORUM_SECRETS_FILE", str(secrets))
    monkeypatch.delenv("QUORUM_DEMO")
    from core.settings import reset_settings

    reset_settings()
    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": True, "email": "stranger@example.com"}
    at.run()
    assert not at.exception
    assert "No access" in errors_of(at)[0]

    at = AppTest.from_file(APP, default_timeout=60)
    at.user = {"is_logged_in": True, "email": "priya.raman@example.com"}
    at.run()
    assert not at.exception and not errors_of(at)
    assert at.title[0].value == "Good to see you, Priya"
    assert not at.warning, "no demo banner when OIDC is configured"
    with pytest.raises(ValueError):
        at.switch_page("pages/teams.py")
