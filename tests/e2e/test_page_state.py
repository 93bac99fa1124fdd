"""What a person was looking at survives their own action: the tab stays, and a destructive
action asks, naming its object, before anything changes."""

from __future__ import annotations

import re

from tests.e2e.conftest import assert_no_errors, choose, open_page, settle, sign_in


def selected_tab(page) -> str:
    return page.locator('[data-testid="stMain"] [role="tab"][aria-selected="true"]').first.inner_text()


def test_placing_a_hold_keeps_the_legal_holds_tab_and_shows_the_result(page):
    sign_in(page, "Lena Fischer")
    open_page(page, "Retention & privacy")
    page.get_by_role("tab", name="Legal holds").click()
    settle(page)
    page.get_by_label("Case name").fill("Globex inquiry")
    choose(page, "Team", "Support")
    page.get_by_role("button", name="Place hold").click()
    page.get_by_text("Legal hold placed").wait_for()
    settle(page)
    assert selected_tab(page) == "Legal holds"
    assert page.get_by_text("Legal hold placed").is_visible()  # the result is in view, not in a hidden tab
    assert_no_errors(page, "Retention after placing a hold")


def test_revoking_a_key_asks_first_and_cancel_keeps_the_key(page):
    sign_in(page, "Amara Okafor")
    open_page(page, "API keys")
    page.get_by_role("tab", name="Rotate or revoke").click()
    settle(page)
    page.get_by_role("button", name="Revoke now").click()
    question = page.get_by_text(re.compile(r"^Revoke key \S+… \(.*\) of \w+\?"))
    question.wait_for()
    assert selected_tab(page) == "Rotate or revoke"
    page.get_by_role("button", name="Cancel").click()
    settle(page)
    assert question.count() == 0
    assert selected_tab(page) == "Rotate or revoke"
    assert page.get_by_text("Key revoked").count() == 0
    assert_no_errors(page, "API keys after cancelling a revocation")
