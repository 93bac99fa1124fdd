"""One journey per role, asserting what that person sees: their Home sections, money as
money and names rather than ids on Home, a tab that stays chosen after an action in it, and
a confirmation whose Cancel changes nothing. Each Home is saved as a README screenshot."""

from __future__ import annotations

import re

from tests.e2e.conftest import assert_no_errors, open_page, screenshot, settle, sign_in
from tests.e2e.test_page_state import selected_tab

MONEY = re.compile(r"^-?\$\d{1,3}(,\d{3})*\.\d{2,}$")
RAW_IDS = re.compile(r"\b(team|prompt|person|key) #\d+|\bperson:\d+|\bNone\b")


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def section_titles(page) -> set[str]:
    known = {"GOVERNANCE", "FINANCE", "PROMPT ENGINEERING", "AUDIT", "ADMINISTRATION"}
    captions = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').all_inner_texts()
    return {c.strip() for c in captions} & known


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def assert_home_reads_well(page, role: str) -> None:
    assert_no_errors(page, f"Home as {role}")
    shown = main_text(page)
    assert not RAW_IDS.search(shown), f"Home as {role} shows a raw id or None: {RAW_IDS.search(shown)}"


def test_finance_sees_spend_against_budget_and_cancelling_a_removal_keeps_the_budget(page):
    sign_in(page, "Priya Raman")
    settle(page)
    assert section_titles(page) == {"FINANCE"}
    assert MONEY.match(metric(page, "Spent by all teams")), metric(page, "Spent by all teams")
    assert MONEY.match(metric(page, "Monthly team budgets"))
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    ticks = set(chart.locator(".xtick text").all_text_contents())
    assert ticks >= {"Support", "Marketing", "Legal", "Data"}, ticks  # teams by name
    assert "Top movers" in main_text(page)
    assert_home_reads_well(page, "finance")
    screenshot(page, "home_finance")

    open_page(page, "Budgets & prices")
    page.get_by_role("button", name="Remove budget").click()
    question = page.get_by_text(re.compile(r"^Remove the budget \w+: .+\?"))
    question.wait_for()
    removed = question.inner_text()
    page.get_by_role("button", name="Cancel").click()
    question.wait_for(state="detached")
    settle(page)
    assert selected_tab(page) == "Budgets"
    assert page.get_by_text("Budget removed").count() == 0
    box = page.get_by_role("combobox", name="Budget to remove")
    assert box.input_value() in removed  # the budget it asked about is still there to remove
    assert_no_errors(page, "Budgets after cancelling a removal")


def test_a_governance_lead_sees_the_queue_and_cancelling_a_release_keeps_the_hold(page):
    sign_in(page, "Lena Fischer")
    settle(page)
    assert section_titles(page) == {"GOVERNANCE"}
    shown = main_text(page)
    assert "Your review queue" in shown and "Alerts" in shown
    assert re.match(r"^\d[\d,]*$", metric(page, "Held requests waiting"))
    assert_home_reads_well(page, "governance lead")
    screenshot(page, "home_governance")

    open_page(page, "Retention & privacy")
    page.get_by_role("tab", name="Legal holds").click()
    settle(page)
    page.get_by_role("button", name="Release").click()
    question = page.get_by_text(re.compile(r"^Release legal hold \d+, .+\?"))
    question.wait_for()
    assert selected_tab(page) == "Legal holds"
    page.get_by_role("button", name="Cancel").click()
    question.wait_for(state="detached")
    settle(page)
    assert selected_tab(page) == "Legal holds"
    assert page.get_by_text("Legal hold released").count() == 0
    assert page.get_by_role("button", name="Release").is_visible()  # the hold is still active
    assert_no_errors(page, "Retention after cancelling a release")


def test_an_engineer_sees_own_versions_and_experiments_and_the_results_tab_stays(page):
    sign_in(page, "Tom Becker")
    settle(page)
    assert section_titles(page) == {"PROMPT ENGINEERING"}
    shown = main_text(page)
    assert "Your versions in review or sent back" in shown
    assert "Latest experiments of your teams" in shown
    assert_home_reads_well(page, "prompt engineer")
    screenshot(page, "home_engineer")

    open_page(page, "Experiments")
    page.get_by_role("tab", name="Results").click()
    settle(page)
    toggle = page.get_by_text("Failures only")
    toggle.wait_for()
    toggle.click()
    settle(page)
    assert selected_tab(page) == "Results"  # the filter applied where it was asked for
    assert_no_errors(page, "Experiments after filtering the results")


def test_an_auditor_sees_the_last_verification_and_checkpoint(page):
    sign_in(page, "Daniel Kim")
    settle(page)
    assert section_titles(page) == {"AUDIT"}
    assert metric(page, "Last clean verification")
    assert metric(page, "Newest checkpoint")
    assert re.search(r"The chain holds [\d,]+ events", main_text(page))
    assert_home_reads_well(page, "auditor")
    screenshot(page, "home_auditor")

    open_page(page, "Verify audit chain")
    page.get_by_role("button", name="Verify the chain").click()
    page.get_by_text("events verified").first.wait_for()
    page.locator('[data-testid="stSidebarNavLink"]', has_text="Home").first.click()
    settle(page)
    assert section_titles(page) == {"AUDIT"}
    assert_no_errors(page, "Home after a verification")


def test_an_admin_sees_keys_due_and_configuration_warnings_and_an_error_keeps_its_tab(page):
    sign_in(page, "Amara Okafor")
    settle(page)
    assert section_titles(page) == {"ADMINISTRATION"}
    shown = main_text(page)
    assert "Keys due for rotation" in shown and "Configuration warnings" in shown
    assert "Model calls are answered by the built-in simulator" in shown  # the e2e server has no OpenAI key
    assert_home_reads_well(page, "admin")
    screenshot(page, "home_admin")

    open_page(page, "Teams & people")
    page.get_by_role("tab", name="New team").click()
    settle(page)
    page.get_by_label("Team name").fill("<script>alert(1)</script>")
    page.get_by_role("button", name="Create team").click()
    error = page.locator('[data-testid="stAlertContentError"]').first
    error.wait_for()
    settle(page)
    assert selected_tab(page) == "New team"  # the refusal is shown where the name was typed
    assert "<script>" not in " ".join(page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts())
