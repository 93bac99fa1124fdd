"""Home on the demo data, as each role sees it: its own sections, money as money, names not
ids, and a person with several roles sees each of their sections."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from core.identity import people as identity
from core.permissions import Actor
from tests.conftest import APP

MONEY = re.compile(r"^-?\$\d{1,3}(,\d{3})*\.\d{2}\d*$")
SECTION_TITLES = {"GOVERNANCE", "FINANCE", "PROMPT ENGINEERING", "AUDIT", "ADMINISTRATION"}


def home_as(session, email: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["demo_person_id"] = identity.person_by_email(session, email).id
    at.run()
    assert not at.exception, at.exception
    return at


def sections(at: AppTest) -> set[str]:
    return {c.value for c in at.caption if c.value in SECTION_TITLES}


def cells(at: AppTest, column: str) -> list[dict[str, object]]:
    """The rows of the table that has a column called `column`."""
    for table in at.dataframe:
        if column in table.value.columns:
            return table.value.to_dict("records")
    raise AssertionError(f"no table with a column {column!r}")


def text_of(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_finance_sees_spend_against_budget_with_a_chart_and_the_movers(demo_data):
    at = home_as(demo_data, "priya.raman@example.com")
    assert sections(at) == {"FINANCE"}
    assert at.get("plotly_chart"), "no spend chart on Home"
    teams = cells(at, "Monthly budget")
    assert {row["Team"] for row in teams} == {"Support", "Marketing", "Legal", "Data"}
    for row in teams:
        assert MONEY.match(str(row["Spent"])), row
        assert row["Monthly budget"] == "—" or MONEY.match(str(row["Monthly budget"])), row
    metrics = {m.label: m.value for m in at.metric}
    assert MONEY.match(metrics["Spent by all teams"]), metrics
    assert "None" not in text_of(at) and "#" not in " ".join(str(r) for r in teams)


def test_a_governance_lead_sees_the_queue_held_requests_and_alerts(demo_data):
    at = home_as(demo_data, "lena.fischer@example.com")
    assert sections(at) == {"GOVERNANCE"}
    shown = text_of(at)
    assert "Your review queue" in shown and "Alerts" in shown
    assert "Held requests waiting" in {m.label for m in at.metric}
    if "No version waits for your review." not in shown:
        for row in cells(at, "Approvals"):
            assert re.match(r"^\S+ v\d+$", str(row["Prompt"])) and row["Team"] in {
                "Support",
                "Marketing",
                "Legal",
                "Data",
            }


def test_an_engineer_sees_own_versions_and_the_teams_experiments(demo_data):
    at = home_as(demo_data, "tom.becker@example.com")
    assert sections(at) == {"PROMPT ENGINEERING"}
    shown = text_of(at)
    assert "Your versions in review or sent back" in shown
    assert "Latest experiments of your teams" in shown


def test_an_auditor_sees_the_last_verification_and_the_newest_checkpoint(demo_data):
    at = home_as(demo_data, "daniel.kim@example.com")
    assert sections(at) == {"AUDIT"}
    labels = {m.label for m in at.metric}
    assert {"Last clean verification", "Newest checkpoint"} <= labels
    assert "events" in text_of(at)
    recent = cells(at, "Action")  # an auditor also sees the latest events, by who did them
    assert recent and not [r["Who"] for r in recent if re.match(r"^(system|person):", str(r["Who"]))]


def test_an_admin_sees_keys_due_and_configuration_warnings(demo_data, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    at = home_as(demo_data, "amara.okafor@example.com")
    assert sections(at) == {"ADMINISTRATION"}
    shown = text_of(at)
    assert "Keys due for rotation" in shown and "Configuration warnings" in shown
    warnings = [w.value for w in at.warning]
    assert any("built-in simulator" in w for w in warnings), warnings


def test_a_person_with_two_roles_sees_both_sections(demo_data):
    lena = identity.person_by_email(demo_data, "lena.fischer@example.com")
    identity.grant_role(session=demo_data, actor=Actor.system("test"), person_id=lena.id, role="finance")
    at = home_as(demo_data, "lena.fischer@example.com")
    assert sections(at) == {"GOVERNANCE", "FINANCE"}
    assert not at.error


def test_the_demos_spend_incidents_reach_finances_home_but_not_the_admins_section(demo_data):
    """Anomaly alerts go to the role concerned: spend surges to finance (with the sentence that
    explains them), not to an admin's key section."""
    finance = home_as(demo_data, "priya.raman@example.com")
    shown = [w.value for w in finance.warning]
    assert any("Marketing" in text and "$" in text and "usual" in text for text in shown), shown
    admin = home_as(demo_data, "amara.okafor@example.com")
    assert not any("usual" in w.value and "spent" in w.value for w in admin.warning)
