"""Each role signs in through the real app and sees exactly its pages, each free of errors."""

from __future__ import annotations

import pytest

from core.demo import PEOPLE
from core.permissions import Actor
from pages.ui.registry import pages_for
from tests.e2e.conftest import assert_no_errors, open_page, screenshot, settle, sign_in

# The first demo person of each role, e.g. ("Amara Okafor", {Role.ADMIN}).
ONE_PER_ROLE = {tuple(roles)[0]: (name, frozenset(roles)) for name, _email, roles, _teams in reversed(PEOPLE)}
# Pages already opened in the browser by an earlier role: AppTest renders every page for every
# role (tests/test_pages.py), so here each page needs the real server only once.
_opened: set[str] = set()


@pytest.mark.parametrize("role", sorted(ONE_PER_ROLE))
def test_a_role_sees_only_its_pages_and_each_renders(page, role):
    name, roles = ONE_PER_ROLE[role]
    expected = [spec.title for spec in pages_for(Actor(ref="e2e", display_name=name, roles=roles))]
    sign_in(page, name)
    settle(page)
    # A link reads "<icon name>\n\n<title>"; the title is its last line.
    shown = [
        link.inner_text().strip().split("\n")[-1] for link in page.locator('[data-testid="stSidebarNavLink"]').all()
    ]
    # Streamlit draws no navigation at all for a single page.
    assert shown == (expected if len(expected) > 1 else [])
    assert_no_errors(page, f"Home as {role}")
    for title in expected[1:]:
        if title in _opened:
            continue
        open_page(page, title)
        assert_no_errors(page, f"{title} as {role}")
        _opened.add(title)


def test_directory_screenshot(page):
    # Each role's Home is photographed by its journey (test_home_journeys.py).
    sign_in(page, "Amara Okafor")
    settle(page)
    assert_no_errors(page, "Home")
    open_page(page, "Teams & people")
    # Tables are drawn on a canvas; the tabs of the admin forms are plain DOM.
    page.locator('[data-testid="stDataFrame"]').nth(1).wait_for()
    assert page.get_by_role("tab", name="New person").is_visible()
    screenshot(page, "teams")


def test_sign_out_returns_to_the_sign_in_screen(page):
    sign_in(page, "Daniel Kim")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Sign in to Quorum (demo)").wait_for()
