"""Finance closes the month in the real app: reconciles, sees the demo's bypass alert, closes
last month after confirming, and downloads a team's chargeback statement."""

from __future__ import annotations

import csv
import io

from tests.e2e.conftest import open_page, settle, sign_in


def test_finance_reconciles_sees_the_bypass_closes_the_month_and_downloads_a_statement(page, server):
    sign_in(page, "Priya Raman")
    open_page(page, "Reconciliation & close")
    page.get_by_role("button", name="Reconcile").click()
    settle(page)
    page.get_by_text("Reconciled:").wait_for()
    # The demo's day of traffic from a marketing sandbox project, found again.
    alert = page.locator('[data-testid="stAlertContentWarning"]', has_text="Usage that bypassed Quorum")
    alert.first.wait_for()
    assert "2,090,000 tokens" in alert.first.inner_text()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()

    page.get_by_role("tab", name="Month close").click()
    month = page.get_by_role("combobox", name="Month").input_value()
    page.get_by_role("button", name="Close month").click()
    settle(page)
    page.get_by_role("button", name="Yes, close month").click()
    settle(page)
    page.get_by_text(f"{month} is closed.").wait_for()

    page.get_by_role("tab", name="Statements").click()
    settle(page)
    page.get_by_text("Chargeback statement:").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    link = page.get_by_role("link", name="Download the statement (CSV)")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    rows = list(csv.DictReader(io.StringIO(response.text())))
    summary = {row["name"]: row["cost_usd"] for row in rows if row["section"] == "summary"}
    assert summary["month"] == month
    total = sum(int(row["cost_micro"]) for row in rows if row["section"] == "model")
    assert int(next(row["cost_micro"] for row in rows if row["name"] == "total")) == total > 0
