"""The main journeys of finance, auditors and prompt engineers, in the real app."""

from __future__ import annotations

import csv
import io
import re

from tests.e2e.conftest import assert_no_errors, open_page, screenshot, settle, sign_in


def test_finance_sees_the_burn_down_and_downloads_what_is_shown(page, server):
    sign_in(page, "Priya Raman")
    open_page(page, "Spend")
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    assert_no_errors(page, "Spend")
    screenshot(page, "spend")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").first.click()
    rows = list(csv.DictReader(io.StringIO(open(download_info.value.path(), encoding="utf-8").read())))
    assert {row["team"] for row in rows} >= {"Support", "Marketing", "Legal", "Data"}
    open_page(page, "Budgets & prices")
    assert_no_errors(page, "Budgets & prices")
    screenshot(page, "budgets")


def test_an_auditor_verifies_the_whole_chain(page):
    sign_in(page, "Daniel Kim")
    open_page(page, "Verify audit chain")
    page.get_by_role("button", name="Verify the chain").click()
    page.get_by_text("events verified").first.wait_for()
    assert_no_errors(page, "Verify audit chain")
    screenshot(page, "audit_verify")
    open_page(page, "Audit log")
    assert_no_errors(page, "Audit log")
    screenshot(page, "audit_log")
    open_page(page, "Observability")
    page.get_by_text("Breakdown over the whole period").wait_for()
    assert_no_errors(page, "Observability")
    screenshot(page, "observability")


def test_a_prompt_engineer_runs_an_ab_comparison_and_sees_the_matrix(page):
    sign_in(page, "Tom Becker")
    open_page(page, "Experiments")
    page.get_by_role("button", name="Estimate cost").click()
    settle(page)
    page.get_by_role("button", name="Confirm and run").click()
    notice = page.get_by_text("open it under Results")
    notice.wait_for(timeout=120_000)
    experiment = re.search(r"Experiment #(\d+) finished", notice.inner_text()).group(1)
    page.get_by_role("tab", name="Results").click()
    settle(page)
    assert page.get_by_role("combobox", name="Open experiment").input_value() == f"#{experiment}"
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    assert page.locator('[data-testid="stDataFrame"]').count() >= 2
    assert_no_errors(page, "Experiments")
    screenshot(page, "experiments")
    open_page(page, "Playground")
    assert_no_errors(page, "Playground")
    screenshot(page, "playground")
