"""The Retention & privacy page: leads place holds and set rules through it; auditors only read."""

from __future__ import annotations

from sqlmodel import select

from core.models.retention import LegalHold, RetentionRule
from core.permissions import Role
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in


def _page(session, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    session.rollback()
    at.switch_page("pages/retention.py").run()
    assert not at.exception, at.exception
    return at


def test_a_lead_places_a_hold_and_sets_a_team_rule(session, directory):
    at = _page(session, Role.GOVERNANCE_LEAD)
    at.text_input(key="hold_case").input("Acme v. Example")
    at.selectbox(key="hold_team").select_index(1)
    at.button(key="FormSubmitter:retention_hold_add-Place hold").click().run()
    assert not errors_of(at), errors_of(at)
    session.rollback()
    [hold] = session.exec(select(LegalHold)).all()
    assert hold.case_name == "Acme v. Example" and hold.team_id is not None
    at.selectbox(key="retention_rule_class").set_value("audit_events")
    at.text_input(key="retention_rule_period").input("3y")
    at.button(key="FormSubmitter:retention_rule-Save rule").click().run()
    assert any("at least 7y" in e for e in errors_of(at))
    session.rollback()
    assert session.exec(select(RetentionRule)).all() == []


def test_an_auditor_sees_the_page_without_controls(session, directory):
    at = _page(session, Role.AUDITOR)
    assert not errors_of(at)
    assert not [b for b in at.button if b.key == "enforce_run"]
    assert not [t for t in at.text_input if t.key == "dsr_email"]
    assert len(at.dataframe) >= 5  # classes, payloads, holds, preview, runs, requests
