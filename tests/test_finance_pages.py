"""The Reconciliation & close page through AppTest: finance sees the bypass alert and the
differences, closes a month after a confirmation, asks to reopen it, an admin approves;
statements show the ledger's figures; auditors read only; other roles do not get the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from core import clock
from core.finance import close, reconcile
from core.formatting import money
from core.identity import people as identity
from core.models.budgets import UsageRecord
from core.permissions import Role
from core.settings import settings
from core.simulator import SIMULATOR_API_KEY
from core.simulator.billing import shared_log
from tests.budget_support import spend
from tests.finance_support import SYSTEM
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

PAGE = "pages/reconciliation.py"


@pytest.fixture
def billed(session, directory):
    """Yesterday: Support's ledger, the provider's matching bill, and bypass traffic in another project."""
    yesterday = clock.now().date() - timedelta(days=1)
    at = datetime(yesterday.year, yesterday.month, yesterday.day, 10, tzinfo=UTC)
    support = identity.team_by_name(session, "Support").id
    spend(session, support, 150, at, tokens=1000)
    billing = shared_log(settings().simulator_billing_log)
    billing.clear()
    billing.add_usage(at=at, kind="completions", model="gpt-4o-mini", input_tokens=1000, api_key=SIMULATOR_API_KEY)
    billing.add_usage(
        at=at, kind="completions", model="gpt-4o", input_tokens=90_000, project_id="proj_shadow", key_id="key_leak42"
    )
    return yesterday


def _page(session, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def test_finance_reconciles_and_sees_the_bypass_alert_and_its_explanation(session, billed):
    at = _page(session, Role.FINANCE)
    at.button(key="reconcile_run").click().run()
    assert not at.exception and not errors_of(at)
    [alert] = [w.value for w in at.warning if "bypassed Quorum" in w.value]
    assert f"Usage that bypassed Quorum on {billed}: 90,000 tokens" in alert
    lines = at.dataframe[1].value
    bypass = lines[lines["kind"] == "Usage that bypassed Quorum"].iloc[0]
    assert bypass["provider project"] == "proj_shadow" and bypass["provider key"] == "key_leak42"
    assert "proj_shadow" in bypass["explanation"]
    assert len(at.get("plotly_chart")) == 1


def test_auditors_read_the_page_without_its_buttons(session, billed):
    reconcile.reconcile_days(actor=SYSTEM, first=billed, last=billed)
    at = _page(session, Role.AUDITOR)
    keys = {button.key for button in at.button}
    assert "reconcile_run" not in keys and "close_month_button" not in keys
    assert len(at.dataframe[0].value) == 1


@pytest.mark.parametrize("role", [Role.PROMPT_ENGINEER, Role.GOVERNANCE_LEAD])
def test_other_roles_do_not_get_the_page(session, directory, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    with pytest.raises(ValueError):
        at.switch_page(PAGE).run()


def test_finance_closes_a_month_after_confirming_and_an_admin_approves_reopening(session, directory):
    at = _page(session, Role.FINANCE)
    month = at.selectbox(key="close_month").value
    at.button(key="close_month_button").click().run()
    assert not close.is_closed(session, month)  # asked, not done
    at.button(key="close_month_button_yes").click().run()
    assert not at.exception and not errors_of(at)
    session.rollback()
    assert close.is_closed(session, month)
    at.text_area(key="reopen_reason").input("The provider corrected its bill").run()
    at.button(key="reopen_request").click().run()
    assert not errors_of(at)
    session.rollback()
    [state] = close.closed_months(session, actor=SYSTEM)
    assert state.pending_reason == "The provider corrected its bill"
    admin = _page(session, Role.ADMIN)
    request_id = state.pending_request_id
    admin.button(key=f"approve_{request_id}").click().run()
    admin.button(key=f"approve_{request_id}_yes").click().run()
    assert not admin.exception and not errors_of(admin)
    session.rollback()
    assert not close.is_closed(session, month)


def test_a_statement_on_the_page_shows_the_ledgers_total_and_admins_set_the_cost_center(session, directory):
    support = identity.team_by_name(session, "Support").id
    october = datetime(2026, 10, 5, 9, tzinfo=UTC)
    for cost in (1_234_567, 89):
        spend(session, support, cost, october)
    close.close_month(session=session, actor=directory.with_role(Role.FINANCE), month="2026-10")
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page(PAGE).run()
    at.selectbox(key="statement_team").set_value(support).run()
    total = int(session.exec(select(func.sum(UsageRecord.cost_micro)).where(UsageRecord.team_id == support)).one())
    assert at.metric[0].value == money(total) == "$1.23"  # to the cent; the CSV keeps every micro-dollar
    at.text_input(key="cost_center").input("CC-4100").run()
    at.button(key="cost_center_save").click().run()
    assert not errors_of(at)
    assert at.metric[2].value == "CC-4100"
