"""Sign-in through a real OpenID provider, in a real browser, with Quorum not in demo mode.

The provider is the certified `oidc-provider` package (Node.js), run locally from
tests/e2e/oidc/ with one client (Quorum) and two accounts: Priya, a seeded finance person,
and a stranger whose e-mail Quorum does not know. Quorum's server gets an [auth] section
pointing at it, exactly as a deployment would configure its identity provider.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from core.demo import PEOPLE
from core.permissions import Actor
from pages.ui.registry import pages_for
from tests.e2e.conftest import (
    assert_no_errors,
    free_port,
    open_page,
    require_chromium,
    settle,
    start_server,
)
from tests.node_packages import node_and_npm, npm_ci

OIDC_DIR = Path(__file__).parent / "oidc"
CLIENT_ID = "quorum-e2e"
ACCOUNTS = {
    "priya": {"email": "priya.raman@example.com", "name": "Priya Raman"},
    "stranger": {"email": "stranger@example.com", "name": "A Stranger"},
}
SIGN_IN_SCREEN = "Sign in with your company account to continue."


def _wait_for_discovery(issuer: str, process, log_path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("OpenID provider exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("OpenID provider did not come up:\n" + log_path.read_text()[-3000:])


@pytest.fixture(scope="module")
def oidc_quorum(tmp_path_factory):
    """(Quorum's base URL, the provider's issuer): both running, wired to each other."""
    require_chromium()
    node, npm = node_and_npm("the local OpenID provider (tests/e2e/oidc)")
    npm_ci(npm, OIDC_DIR, "oidc-provider")
    tmp = tmp_path_factory.mktemp("oidc")
    app_port, provider_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{app_port}/oauth2callback"
    client_secret = secrets.token_urlsafe(24)
    config = tmp / "provider.json"
    config.write_text(
        json.dumps(
            {
                "port": provider_port,
                "client": {
                    "client_id": CLIENT_ID,
                    "client_secret": client_secret,
                    "redirect_uri": callback,
                    "post_logout_redirect_uri": callback,
                },
                "accounts": ACCOUNTS,
            }
        )
    )
    issuer = f"http://127.0.0.1:{provider_port}"
    log_path = tmp / "provider.log"
    with open(log_path, "w") as log:
        provider = subprocess.Popen(
            [node, "provider.js", str(config)], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT
        )
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{callback}"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{client_secret}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
    )
    try:
        # QUORUM_DEMO off even if the developer's shell has it on: this is the production path.
        # Quorum reads the provider's metadata only at the first sign-in, so both start together.
        with start_server(
            tmp, {"QUORUM_DEMO": "0"}, port=app_port, secrets_file=secrets_file, db_suffix="e2e_oidc"
        ) as server:
            _wait_for_discovery(issuer, provider, log_path)
            yield server.base, issuer
    finally:
        provider.terminate()
        provider.wait(timeout=10)
    assert "server_error" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture
def tab(browser, oidc_quorum):
    base, _issuer = oidc_quorum
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def _sign_in_at_provider(tab, oidc_quorum, account: str) -> None:
    base, issuer = oidc_quorum
    tab.goto("/")
    tab.get_by_text(SIGN_IN_SCREEN).wait_for()
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(f"^{re.escape(issuer)}/interaction/"))
    tab.get_by_label("Account").fill(account)
    tab.get_by_role("button", name="Continue").click()
    tab.wait_for_url(re.compile(f"^{re.escape(base)}/?$"))


def _sign_out_at_provider(tab, oidc_quorum) -> None:
    base, issuer = oidc_quorum
    tab.get_by_role("button", name="Sign out").click()
    # st.logout ends the provider's session too (RP-initiated logout), which asks to confirm.
    tab.wait_for_url(re.compile(f"^{re.escape(issuer)}/session/end"))
    tab.get_by_role("button", name="Yes, sign me out").click()
    tab.wait_for_url(re.compile(f"^{re.escape(base)}/?$"))
    tab.get_by_text(SIGN_IN_SCREEN).wait_for()


def _nav_titles(tab) -> list[str]:
    # A link reads "<icon name>\n\n<title>"; the title is its last line.
    return [link.inner_text().strip().split("\n")[-1] for link in tab.locator('[data-testid="stSidebarNavLink"]').all()]


def test_a_known_email_gets_its_roles_pages_and_can_sign_out(tab, oidc_quorum):
    name, _email, roles, _teams = next(p for p in PEOPLE if p[1] == ACCOUNTS["priya"]["email"])
    expected = [spec.title for spec in pages_for(Actor(ref="e2e", display_name=name, roles=frozenset(roles)))]
    assert "Spend" in expected  # the journey below is only meaningful for a finance person

    _sign_in_at_provider(tab, oidc_quorum, "priya")
    # Wait for either outcome, so a refusal fails with its message rather than a timeout.
    tab.get_by_text("Signed in as").or_(tab.locator('[data-testid="stAlertContentError"]')).first.wait_for()
    assert_no_errors(tab, "after OIDC sign-in")
    settle(tab)
    assert tab.get_by_text(f"Signed in as {name}").is_visible()
    assert _nav_titles(tab) == expected
    assert tab.get_by_text("Demo mode").count() == 0
    assert_no_errors(tab, "Home after OIDC sign-in")
    open_page(tab, "Spend")
    assert_no_errors(tab, "Spend after OIDC sign-in")

    _sign_out_at_provider(tab, oidc_quorum)
    # The session is gone, not just hidden: a fresh load still asks to sign in.
    tab.reload()
    tab.get_by_text(SIGN_IN_SCREEN).wait_for()
    assert tab.get_by_text("Signed in as").count() == 0
    assert _nav_titles(tab) == []


def test_an_unknown_email_is_refused_and_sees_no_pages(tab, oidc_quorum):
    _sign_in_at_provider(tab, oidc_quorum, "stranger")
    refusal = tab.get_by_text(re.compile(r"No access: stranger@example\.com is not registered"))
    refusal.wait_for()
    assert _nav_titles(tab) == []
    assert tab.get_by_text("Signed in as").count() == 0
    assert tab.get_by_text("Demo mode").count() == 0
    # Typing a page's address does not get around the refusal.
    tab.goto("/spend")
    refusal.wait_for()
    assert tab.locator('[data-testid="stMain"] h1').count() == 0

    _sign_out_at_provider(tab, oidc_quorum)


def test_cancelling_at_the_provider_leaves_you_signed_out(tab, oidc_quorum):
    base, issuer = oidc_quorum
    tab.goto("/")
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(f"^{re.escape(issuer)}/interaction/"))
    tab.get_by_role("button", name="Cancel").click()
    tab.wait_for_url(re.compile(f"^{re.escape(base)}/?$"))
    tab.get_by_text(SIGN_IN_SCREEN).wait_for()
    assert tab.get_by_text("Signed in as").count() == 0
