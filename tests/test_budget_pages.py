"""Finance pages on the full demo seed: every total equals the ledger's sum to the micro-dollar."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from sqlmodel import func, select

from core import clock, formatting
from core.budgets import config, demo_seed, periods, reports
from core.errors import ValidationError
from core.identity.people import team_by_name
from core.models.audit import AuditEvent
from core.models.budgets import Budget, UsageRecord
from core.permissions import Role
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in


@pytest.fixture
def seeded(session, directory):
    demo_seed.seed_budgets(session)
    return directory


def support_budget(session) -> Budget:
    """Support's team budget, the one the seed puts near its limit (named: PostgreSQL returns
    rows in no particular order, so "the first team budget" may be any team's)."""
    support = team_by_name(session, "Support")
    return session.exec(select(Budget).where(Budget.scope == "team", Budget.team_id == support.id)).one()


def month_ledger_total(session, team_id=None) -> int:
    month = periods.period_at("month", clock.now())
    query = select(func.coalesce(func.sum(UsageRecord.cost_micro), 0)).where(
        UsageRecord.occurred_at >= month.start, UsageRecord.occurred_at < month.end
    )
    if team_id is not None:
        query = query.where(UsageRecord.team_id == team_id)
    return int(session.exec(query).one())


def test_spend_page_totals_and_csv_equal_the_ledger(session, seeded):
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/spend.py").run()
    assert not at.exception and not errors_of(at)
    total = month_ledger_total(session)
    assert at.metric[0].value == formatting.money(total)
    overview = at.dataframe[0].value
    assert list(overview.columns[:4]) == ["Team", "Period", "Spent", "Budget"]
    spent = reports.overview_frame(reports.team_overview(session, actor=seeded.with_role(Role.FINANCE)))
    assert int(spent["spent_micro"].sum()) == total
    assert list(overview["Spent"]) == [formatting.money(v) for v in spent["spent_micro"]]
    for by in ["model", "person", "day", "prompt", "team"]:
        at.selectbox(key="breakdown_by").select(by).run()
        table = at.dataframe[1].value
        assert len(table) and all(v.startswith("$") for v in table["Cost"]), by
        assert at.metric[1].value == formatting.money(total)
    # The CSV is the frame shown, written out: read back, it sums to the same micro-dollars.
    month = periods.period_at("month", clock.now())
    shown = reports.breakdown(session, actor=seeded.with_role(Role.FINANCE), period=month, by="team")
    exported = pd.read_csv(io.BytesIO(reports.csv_bytes(shown.frame)))
    assert int(exported["cost_micro"].sum()) == total
    assert sum(int(round(float(v) * 1e6)) for v in exported["cost_usd"].astype(str)) == total


def test_support_is_near_its_limit_and_finance_sees_the_alert_on_home(session, seeded):
    support = support_budget(session)
    assert support.cap_micro
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    texts = [w.value for w in at.warning] + [e.value for e in at.error]
    assert any("Support (team) passed 80% of its budget" in t for t in texts)
    at = signed_in(session, EMAIL_BY_ROLE[Role.PROMPT_ENGINEER])
    assert not any("passed" in w.value for w in at.warning)


def test_finance_sets_a_budget_on_the_page_and_it_is_audited(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/budgets.py").run()
    at.text_input(key="budget_cap").input("250")
    at.button[[b.label for b in at.button].index("Save budget")].click().run()
    assert not at.exception and not errors_of(at)
    assert any("Budget saved" in s.value for s in at.success)
    session.rollback()
    budget = session.exec(select(Budget)).one()
    assert budget.cap_micro == 250_000_000
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "budget.create")).one()
    assert '"cap_micro":250000000' in event.after_json


def test_a_negative_cap_on_the_page_is_refused_clearly(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/budgets.py").run()
    at.text_input(key="budget_cap").input("-5")
    at.button[[b.label for b in at.button].index("Save budget")].click().run()
    assert errors_of(at) == ["The budget cap must be more than $0 (got -5)"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("budget_cap", "1e18", "Dollar amount '1e18' is more than the largest Quorum accepts, $1,000,000,000,000"),
        ("budget_cap", "NaN", "Not a finite dollar amount: 'NaN'"),
        ("budget_cap", "ten", "Not a dollar amount: 'ten'"),
        ("budget_per_request", "-1", None),
    ],
)
def test_an_out_of_range_amount_on_the_page_is_a_message_not_a_traceback(session, directory, field, value, message):
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/budgets.py").run()
    at.text_input(key="budget_cap").input("250")
    at.text_input(key=field).input(value)
    at.button[[b.label for b in at.button].index("Save budget")].click().run()
    assert not at.exception
    errors = errors_of(at)
    assert len(errors) == 1 and (message is None or errors == [message])
    session.rollback()
    assert session.exec(select(Budget)).first() is None


def test_a_token_cap_beyond_the_limit_is_refused_by_name(session, directory):
    data = config.BudgetInput(cap_tokens=10**18)
    with pytest.raises(ValidationError) as refused:
        config.set_budget(session=session, actor=directory.admin, scope="team", target_id=1, data=data)
    assert str(refused.value) == (
        "The token cap must be at most 1,000,000,000,000,000 tokens (got 1,000,000,000,000,000,000)"
    )


def test_auditors_see_budgets_read_only(session, seeded):
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/budgets.py").run()
    assert not at.exception and not errors_of(at)
    assert "Save budget" not in [b.label for b in at.button]
    assert len(at.dataframe[0].value) == 4


@pytest.mark.parametrize("role, sees_models", [(Role.FINANCE, False), (Role.ADMIN, True)])
def test_team_policy_form_offers_each_role_its_own_part(session, seeded, role, sees_models):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    at.switch_page("pages/budgets.py").run()
    assert not at.exception and not errors_of(at)
    keys = {widget.key for widget in at.multiselect} | {widget.key for widget in at.checkbox}
    assert ("policy_models" in keys) is sees_models
    assert "policy_lower" in keys
    assert any("Admins set the allowed models" in c.value for c in at.caption) is not sees_models


def test_saving_one_part_of_a_team_policy_keeps_the_other(session, seeded):
    from core.budgets import config
    from core.identity import people as identity
    from tests.conftest import People

    support = identity.team_by_name(session, "Support").id
    config.set_team_policy(session=session, actor=People(session).admin, team_id=support, allowed_models=["gpt-4.1"])

    # An admin sees both parts and changes only the max_tokens choice.
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/budgets.py").run()
    at.selectbox(key="policy_team").set_value(support).run()
    at.checkbox(key="policy_lower").check()
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.exception and not errors_of(at)

    session.rollback()  # end the test session's read snapshot
    saved = config.team_policy(session, support)
    assert (saved.allowed_models, saved.lower_max_tokens) == (("gpt-4.1",), True)


def test_an_admin_picks_the_moderation_source_and_cache_of_a_team(session, seeded):
    from core.audit import record as audit
    from core.gateway import policies
    from core.identity import people as identity
    from tests.conftest import People

    support = identity.team_by_name(session, "Support").id
    policies.forget()
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/budgets.py").run()
    at.selectbox(key="policy_team").set_value(support).run()
    at.selectbox(key="gw_provider").set_value("local")
    at.selectbox(key="gw_cache").set_value("all")
    next(b for b in at.button if b.label == "Save moderation and cache").click().run()
    assert not at.exception and not errors_of(at)
    session.rollback()
    policies.forget()
    assert policies.team_settings(support, session) == policies.GatewaySettings(
        cache="all", moderation_provider="local"
    )
    [event] = audit.recent_events(session, actor=People(session).admin, action_prefix="team.guardrails")
    assert event.after["moderation_provider"] == "local" and event.after["cache"] == "all"
    assert any("not a classifier" in i.value for i in at.info)
    at.selectbox(key="gw_moderation").set_value("off")
    next(b for b in at.button if b.label == "Save moderation and cache").click().run()
    assert any("Moderation is off for Support" in w.value for w in at.warning)


def test_finance_does_not_see_the_moderation_form(session, seeded):
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/budgets.py").run()
    assert "gw_provider" not in {widget.key for widget in at.selectbox}


def test_home_drops_a_budget_alert_once_its_cause_went_away(session, seeded):
    support = support_budget(session)
    finance = seeded.with_role(Role.FINANCE)
    home = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    assert any("Support (team) passed 80% of its budget" in w.value for w in home.warning)
    # Home's first view ran the anomaly detection (a write): leave the snapshot read before it.
    session.commit()
    # Finance raises the cap tenfold: the spend is now far below 80% of it.
    cap_usd = str(support.cap_micro * 10 // 1_000_000)
    config.set_budget(
        session=session,
        actor=finance,
        scope="team",
        target_id=support.team_id,
        data=config.BudgetInput(cap_usd=cap_usd, period=support.period, thresholds=support.thresholds),
    )
    home = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    assert not any("passed" in t.value for t in [*home.warning, *home.error])
