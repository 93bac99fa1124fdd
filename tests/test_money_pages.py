"""Spend and Budgets as a finance manager reads them: money to the cent, readable column
titles, names instead of ids, a chart per breakdown, the burn-down on the team nearest its
limit, and a budget form that asks only for the chosen scope's target, by name."""

from __future__ import annotations

import csv
import io
import re

from sqlmodel import select

from core.budgets import ledger_export, reports, views
from core.gateway import call_export
from core.models.budgets import Budget
from core.models.catalog import Prompt
from core.models.keys import ApiKey
from core.permissions import Role
from tests.conftest import People
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

FINANCE = EMAIL_BY_ROLE[Role.FINANCE]
MONEY = re.compile(r"^-?\$\d{1,3}(,\d{3})*\.\d{2}$|^\$0\.00\d+$|^—$")
RAW_NAMES = ("_micro", "_pct", "_usd", "crosses_budget_on", "prompt #", "team key #", "person #")


def test_spend_shows_money_to_the_cent_and_readable_titles(demo_data):
    at = signed_in(demo_data, FINANCE)
    at.switch_page("pages/spend.py").run()
    assert not at.exception and not errors_of(at)
    overview = at.dataframe[0].value
    assert "Spent" in overview.columns and "Crosses budget on" in overview.columns
    for column in ("Spent", "Budget", "Forecast at period end"):
        assert all(MONEY.match(v) for v in overview[column]), list(overview[column])
    assert any(v != "—" and v.endswith("%") for v in overview["Used"])
    assert MONEY.match(at.metric[0].value)
    for by in ["model", "person", "day", "prompt", "team"]:
        at.selectbox(key="breakdown_by").select(by).run()
        table = at.dataframe[1].value
        assert all(MONEY.match(v) for v in table["Cost"]), (by, list(table["Cost"]))
        shown = " ".join(table.columns) + " " + " ".join(table.iloc[:, 0].astype(str))
        assert not any(raw in shown for raw in RAW_NAMES), (by, shown)
        assert at.get("plotly_chart"), f"no chart for the breakdown by {by}"


def test_the_person_breakdown_names_team_keys(demo_data):
    at = signed_in(demo_data, FINANCE)
    at.switch_page("pages/spend.py").run()
    at.selectbox(key="breakdown_by").select("person").run()
    names = list(at.dataframe[1].value["Person"])
    assert "Help desk integration" in names or "Data reporting" in names, names


def test_the_burn_down_opens_on_the_team_nearest_its_limit(demo_data):
    rows = reports.team_overview(demo_data, actor=People(demo_data).with_role(Role.FINANCE))
    nearest = max((r for r in rows if r.percent is not None), key=lambda r: r.percent or 0)
    assert nearest.team != rows[0].team  # else the default would prove nothing
    at = signed_in(demo_data, FINANCE)
    at.switch_page("pages/spend.py").run()
    assert at.selectbox(key="burndown_team").value == nearest.team_id
    assert views.nearest_its_limit(rows) == nearest


def test_the_budget_form_shows_only_the_chosen_scopes_picker(demo_data):
    at = signed_in(demo_data, FINANCE)
    at.switch_page("pages/budgets.py").run()
    labels = {s.label for s in at.selectbox}
    assert "Team" in labels and "Person" not in labels and "Prompt" not in labels
    assert not any("id" in n.label.lower() for n in at.number_input)
    at.selectbox(key="budget_scope").select("person").run()
    labels = {s.label for s in at.selectbox}
    assert "Person" in labels and "Prompt" not in labels
    at.selectbox(key="budget_scope").select("prompt").run()
    picker = at.selectbox(key="budget_prompt")
    assert "Person" not in {s.label for s in at.selectbox}
    prompt = demo_data.exec(select(Prompt).order_by(Prompt.name)).first()
    assert prompt is not None and any(o.startswith(prompt.name) for o in picker.options)


def test_a_prompt_budget_is_set_by_name_and_listed_by_name(demo_data):
    prompt = demo_data.exec(select(Prompt).order_by(Prompt.name)).first()
    assert prompt is not None
    at = signed_in(demo_data, FINANCE)
    at.switch_page("pages/budgets.py").run()
    at.selectbox(key="budget_scope").select("prompt").run()
    at.selectbox(key="budget_prompt").set_value(prompt.id)
    at.text_input(key="budget_cap").input("1234.5")
    at.button[[b.label for b in at.button].index("Save budget")].click().run()
    assert not at.exception and not errors_of(at)
    demo_data.rollback()
    budget = demo_data.exec(select(Budget).where(Budget.prompt_id == prompt.id)).one()
    assert budget.cap_micro == 1_234_500_000
    table = at.dataframe[0].value
    row = table[table["For"] == prompt.name].iloc[0]
    assert row["Cap"] == "$1,234.50" and row["Scope"] == "prompt"
    assert not any("prompt #" in str(v) for v in table["For"])


def test_the_spend_and_call_exports_name_each_team_key(demo_data):
    people = People(demo_data)
    month = reports.recent_months(1)[0]
    spend = ledger_export.prepare(session=demo_data, actor=people.with_role(Role.FINANCE), month=month)
    calls = call_export.prepare(session=demo_data, actor=people.with_role(Role.ADMIN), days=30)
    names = {k.id: k.label for k in demo_data.exec(select(ApiKey))}
    for export in (spend, calls):
        rows = list(csv.DictReader(io.StringIO(b"".join(export.chunks()).decode(), newline="")))
        keyed = [r for r in rows if r["key_id"]]
        assert keyed, "the demo's key calls are in the export"
        assert all(r["key"] == names[int(r["key_id"])] for r in keyed)
        assert "Help desk integration" in {r["key"] for r in keyed}
