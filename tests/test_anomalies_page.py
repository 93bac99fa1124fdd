"""The Alerts page: the open alerts in words, a chart against the usual band, acknowledge
and resolve (with a confirmation), and read-only for auditors."""

from __future__ import annotations

import pytest

from core.anomalies import alerts, run
from core.permissions import Role
from tests.anomaly_support import TARGET, add_key, at_now, steady, team_id, usage
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in


@pytest.fixture
def surge(session, directory):
    support = team_id(session, "Support")
    key = add_key(session, support, "app-kb")
    usage(
        session, [*steady(support, key), {"hour": TARGET, "team_id": support, "key_id": key, "cost_micro": 41_000_000}]
    )
    at_now()
    return key


def _open_alerts(session, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    at.switch_page("pages/alerts.py").run()
    assert not at.exception, at.exception
    return at


def test_the_first_view_detects_and_shows_the_alert_in_words(session, surge):
    at = _open_alerts(session, Role.FINANCE)  # detection is due: the view runs it
    table = at.dataframe[0].value
    assert any("Key `app-kb` (Support) spent $41.00" in text for text in table["in words"])
    assert at.get("plotly_chart")  # the chart against the usual band


def test_finance_resolves_with_a_note_after_confirming(session, surge):
    at = _open_alerts(session, Role.FINANCE)
    chosen = at.selectbox(key="alerts_chosen").value
    at.text_input(key=f"alert_note_{chosen}").set_value("a batch job looped").run()
    at.button(key=f"alert_resolve_{chosen}").click().run()
    assert alerts.list_alerts(session, actor=run.SYSTEM, states=("resolved",)) == []  # not before "Yes"
    at.button(key=f"alert_resolve_{chosen}_yes").click().run()
    assert not errors_of(at)
    session.rollback()
    resolved = alerts.list_alerts(session, actor=run.SYSTEM, states=("resolved",))
    assert [(a.id, a.note) for a in resolved] == [(chosen, "a batch job looped")]


def test_resolving_without_a_note_is_refused_in_words(session, surge):
    at = _open_alerts(session, Role.FINANCE)
    chosen = at.selectbox(key="alerts_chosen").value
    at.button(key=f"alert_resolve_{chosen}").click().run()
    at.button(key=f"alert_resolve_{chosen}_yes").click().run()
    assert errors_of(at) == ["Say what it was: resolving an alert needs a note"]


def test_an_auditor_reads_but_has_no_buttons(session, surge):
    at = _open_alerts(session, Role.AUDITOR)
    assert at.dataframe[0].value.shape[0] >= 1
    assert not [b for b in at.button if b.label in ("Acknowledge", "Resolve")]


def test_a_prompt_engineer_cannot_open_the_page(session, directory):
    at = signed_in(session, EMAIL_BY_ROLE[Role.PROMPT_ENGINEER])
    with pytest.raises(ValueError):
        at.switch_page("pages/alerts.py")


def test_the_calls_of_that_hour_open_in_observability(session, surge):
    at = _open_alerts(session, Role.GOVERNANCE_LEAD)
    at.button(key="to_calls").click().run()
    assert not at.exception, at.exception
    assert at.session_state["obs_granularity"] == "hour"
    assert at.session_state["obs_teams"] == [team_id(session, "Support")]
    assert any(title.value == "Observability" for title in at.title)


def test_finance_has_no_observability_jump(session, surge):
    at = _open_alerts(session, Role.FINANCE)
    assert not [b for b in at.button if b.label == "Calls of this hour in Observability"]


def test_an_admin_sets_a_teams_sensitivity_on_the_page(session, directory):
    from sqlalchemy import text

    at = _open_alerts(session, Role.ADMIN)
    at.selectbox(key="sens_detector").set_value("error_rate")
    at.selectbox(key="sens_team").set_value(team_id(session, "Support"))
    at.number_input(key="sens_factor").set_value(2.0)
    at.button(key="sens_save").click().run()
    assert not errors_of(at) and not at.exception
    session.rollback()
    row = session.execute(text("SELECT detector, factor FROM anomaly_sensitivity")).one()
    assert tuple(row) == ("error_rate", 2.0)


def test_finance_sees_no_settings(session, surge):
    at = _open_alerts(session, Role.FINANCE)
    assert not [b for b in at.button if b.label == "Save sensitivity"]
