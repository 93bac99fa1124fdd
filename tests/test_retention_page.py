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


def _downloads(at) -> list[str]:
    return [element.proto.label for element in at.get("download_button")]


def test_a_failed_access_export_never_offers_the_previous_persons_file(session, directory):
    at = _page(session, Role.GOVERNANCE_LEAD)
    at.text_input(key="dsr_email").input("tom.becker@example.com")
    at.button(key="dsr_export").click().run()
    assert not errors_of(at)
    assert _downloads(at) == ["Download JSON for tom.becker@example.com"]
    # Typing another subject hides Tom's file at once; a failed export for it offers nothing.
    at.text_input(key="dsr_email").input("nobody@example.com").run()
    assert _downloads(at) == []
    at.button(key="dsr_export").click().run()
    assert errors_of(at) == ["No person with that e-mail address"]
    assert _downloads(at) == []
    at.text_input(key="dsr_email").input("tom.becker@example.com").run()
    assert _downloads(at) == []


def test_erasure_asks_naming_the_subject_and_cancel_erases_nothing(session, directory):
    at = _page(session, Role.GOVERNANCE_LEAD)
    assert at.button(key="dsr_erase").disabled  # nobody named yet
    at.text_input(key="dsr_user").input("customer-3").run()
    at.button(key="dsr_erase").click().run()
    [question] = [w.value for w in at.warning if w.value.startswith("Erase what")]
    assert question.startswith("Erase what Quorum holds about customer-3?")
    at.button(key="dsr_erase_cancel").click().run()
    assert not [w for w in at.warning if w.value.startswith("Erase what")]
    assert not [s.value for s in at.success]


def test_a_hold_on_a_prompt_for_a_date_range_and_the_form_empties_after_placing_it(
    session, directory, simple_version, monkeypatch
):
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from core.catalog import store
    from core.catalog.spec import PromptSpec
    from core.settings import reset_settings

    monkeypatch.setenv("QUORUM_TIMEZONE", "Europe/Berlin")
    reset_settings()
    prompt = PromptSpec("faq-answer", "Support", "Answer product questions", "medium", "internal")
    store.create_prompt(
        session=session, actor=directory.by_email("tom.becker@example.com"), prompt=prompt, version=simple_version
    )
    at = _page(session, Role.GOVERNANCE_LEAD)
    at.text_input(key="hold_case").input("Globex inquiry")
    at.selectbox(key="hold_prompt").set_value(store.prompt_by_name(session, "faq-answer").id)
    at.date_input(key="hold_since").set_value(date(2026, 3, 1))
    at.date_input(key="hold_until").set_value(date(2026, 3, 31))
    at.button(key="FormSubmitter:retention_hold_add-Place hold").click().run()
    assert not errors_of(at), errors_of(at)
    session.rollback()
    [hold] = session.exec(select(LegalHold)).all()
    berlin = ZoneInfo("Europe/Berlin")
    as_utc = [(t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC"))) for t in (hold.starts_at, hold.ends_at)]
    assert as_utc == [datetime(2026, 3, 1, tzinfo=berlin), datetime(2026, 4, 1, tzinfo=berlin)]
    # The last day is covered whole; the form is empty for the next hold.
    assert at.text_input(key="hold_case").value == ""
    assert at.selectbox(key="hold_prompt").value is None
    assert at.date_input(key="hold_until").value is None
