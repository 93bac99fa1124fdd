"""The API keys page: a new key's secret stays until the admin says it was copied, and a key is
never made for a team nobody chose."""

from __future__ import annotations

from sqlmodel import select

from core.identity import key_auth
from core.models.keys import ApiKey
from core.permissions import Role
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in


def _open(session):
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/api_keys.py").run()
    assert not at.exception, at.exception
    return at


def _shown_secrets(at) -> list[str]:
    return [c.value for c in at.code]


def test_the_new_secret_survives_other_clicks_until_it_is_marked_copied(session, directory):
    at = _open(session)
    at.selectbox(key="key_team").set_value(1)
    at.text_input(key="key_label").input("billing-app")
    at.button(key="FormSubmitter:create_key-Create key").click().run()
    assert not errors_of(at)
    [secret] = _shown_secrets(at)
    session.rollback()
    stored = session.exec(select(ApiKey)).one()
    assert key_auth.hash_key(secret) == stored.key_hash  # what is shown is the key that works

    # Anything else the admin does first (here: asking to revoke, then cancelling) keeps it.
    at.button(key="revoke_key").click().run()
    at.button(key="revoke_key_cancel").click().run()
    assert _shown_secrets(at) == [secret]

    at.button(key="new_api_key_copied").click().run()
    assert _shown_secrets(at) == []


def test_a_key_needs_a_team_chosen_on_purpose(session, directory):
    at = _open(session)
    assert at.selectbox(key="key_team").value is None
    at.text_input(key="key_label").input("billing-app")
    at.button(key="FormSubmitter:create_key-Create key").click().run()
    assert errors_of(at) == ["Choose the team the key is for."]
    session.rollback()
    assert session.exec(select(ApiKey)).all() == []
