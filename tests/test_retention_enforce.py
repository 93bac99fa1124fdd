"""Retention enforcement with an injected clock: exact expiry, holds, longest rule, team rules,
resumable batches, one run at a time, and audit pruning behind a signed checkpoint."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from core import db
from core.audit.verify import verify_chain
from core.errors import Conflict, PermissionDenied, ValidationError
from core.identity import people as identity
from core.permissions import Actor, Role
from core.retention import enforce, holds, lease, rules
from core.retention import preview as retention_preview
from core.retention.classes import Period, parse_config
from tests.audit_helpers import TEST_KEY, add_events
from tests.retention_support import T0, Clock, add_payloads, add_usage, count, written

SYSTEM = Actor.system("test")


@pytest.fixture
def signing(monkeypatch, tmp_path):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    from core.settings import reset_settings

    reset_settings()


def _team(session, name="Support") -> int:
    team_id = identity.team_by_name(session, name).id
    session.rollback()  # no read snapshot left open while other connections write
    return team_id


def test_a_payload_is_kept_until_exactly_its_time_and_removed_after(session, directory):
    clock = Clock(T0)
    add_payloads(3, at=T0, team_id=_team(session))
    # Stored payloads hold request (2y) and response (5y): the longer period applies.
    expiry = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)
    clock.set(expiry)
    assert enforce.enforce(actor=SYSTEM).counts["stored_payload"]["deleted"] == 0
    assert count("stored_payload") == 3
    clock.set(expiry + timedelta(microseconds=1))
    result = enforce.enforce(actor=SYSTEM)
    assert result.counts["stored_payload"]["deleted"] == 3
    assert count("stored_payload") == 0


def test_the_longer_of_two_rules_wins(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    clock = Clock(T0)
    add_payloads(2, at=T0, team_id=_team(session))
    written(rules.set_rule, actor=lead, class_key="request_payloads", period="1y", action="delete")
    written(rules.set_rule, actor=lead, class_key="response_payloads", period="3y", action="delete")
    clock.set(T0 + timedelta(days=2 * 365))  # past the request rule, inside the response rule
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 2
    clock.set(T0 + timedelta(days=3 * 366))
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 0


def test_a_team_rule_beats_the_default(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    support, legal = _team(session, "Support"), _team(session, "Legal")
    clock = Clock(T0)
    add_payloads(2, at=T0, team_id=support, prefix="s")
    add_payloads(2, at=T0, team_id=legal, prefix="l")
    for class_key in ("request_payloads", "response_payloads"):
        written(rules.set_rule, actor=lead, class_key=class_key, period="90d", action="delete", team_id=support)
    clock.set(T0 + timedelta(days=91))
    preview = retention_preview.preview(session=session, actor=lead)
    by_team = {(r.kind, r.team_id): r.count for r in preview}
    assert by_team[("stored_payload", support)] == 2 and by_team[("stored_payload", None)] == 0
    result = enforce.enforce(actor=lead)
    assert result.counts["stored_payload"]["deleted"] == 2
    assert count("stored_payload", f"team_id = {legal}") == 2
    assert count("stored_payload", f"team_id = {support}") == 0


def test_usage_rows_are_anonymized_never_deleted_and_counted_once(session, directory):
    person = directory.by_email("tom.becker@example.com").person_id
    clock = Clock(T0)
    add_usage(7, at=T0, team_id=_team(session), person_id=person)
    clock.set(T0 + timedelta(days=8 * 365))
    first = enforce.enforce(actor=SYSTEM, batch_size=3)
    assert first.counts["usage_record"]["anonymized"] == 7
    assert count("usage_record", "person_id IS NULL AND cost_micro = 42") == 7
    assert enforce.enforce(actor=SYSTEM).counts["usage_record"]["anonymized"] == 0


def test_a_held_record_survives_and_goes_on_the_run_after_release(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    support = _team(session)
    clock = Clock(T0)
    add_payloads(2, at=T0, team_id=support, prefix="s")
    add_payloads(2, at=T0, team_id=_team(session, "Data"), prefix="d")
    hold = written(holds.add_hold, actor=lead, case_name="Acme v. Us", owner_person_id=lead.person_id, team_id=support)
    clock.set(T0 + timedelta(days=6 * 365))
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 2 and count("stored_payload", f"team_id = {support}") == 2
    written(holds.release_hold, actor=lead, hold_id=hold.id)
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 0


def test_a_time_range_hold_keeps_only_its_range(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    clock = Clock(T0)
    add_payloads(1, at=T0, team_id=None, prefix="in")
    add_payloads(1, at=T0 + timedelta(days=30), team_id=None, prefix="out")
    written(
        holds.add_hold,
        actor=lead,
        case_name="Audit 2026",
        owner_person_id=lead.person_id,
        starts_at=T0 - timedelta(days=1),
        ends_at=T0 + timedelta(days=1),
    )
    clock.set(T0 + timedelta(days=7 * 365))
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 1 and count("stored_payload", "request_id = 'in0'") == 1


def test_a_person_hold_keeps_their_calls_payloads(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    tom = directory.by_email("tom.becker@example.com")
    clock = Clock(T0)
    add_payloads(2, at=T0, team_id=_team(session), prefix="tom", actor=tom.ref)
    add_payloads(2, at=T0, team_id=_team(session), prefix="key")
    written(holds.add_hold, actor=lead, case_name="HR-17", owner_person_id=lead.person_id, person_id=tom.person_id)
    clock.set(T0 + timedelta(days=6 * 365))
    enforce.enforce(actor=lead)
    assert count("stored_payload") == 2 and count("stored_payload", "request_id LIKE 'tom%'") == 2


def test_an_interrupted_run_resumes_without_loss_or_double_counting(session, directory):
    clock = Clock(T0)
    add_payloads(25, at=T0, team_id=_team(session))
    clock.set(T0 + timedelta(days=6 * 365))

    class Crash(Exception):
        pass

    def crash_after_two(_run, batches):
        if batches == 2:
            raise Crash

    with pytest.raises(Crash):
        enforce.enforce(actor=SYSTEM, batch_size=4, after_batch=crash_after_two)
    assert count("stored_payload") == 17
    assert count("retention_run", "status = 'running'") == 1
    result = enforce.enforce(actor=SYSTEM, batch_size=4)
    assert result.resumed
    assert result.counts["stored_payload"]["deleted"] == 25
    assert count("stored_payload") == 0
    assert count("retention_run", "status = 'done'") == 1


def test_a_crashed_runner_keeps_the_lock_until_its_lease_expires(session, directory):
    clock = Clock(T0)
    lease.acquire(db.get_engine(), "crashed-server")
    with pytest.raises(Conflict, match="in progress"):
        enforce.enforce(actor=SYSTEM)
    clock.set(T0 + lease.LEASE + timedelta(seconds=1))
    enforce.enforce(actor=SYSTEM)


def test_two_concurrent_runs_do_not_both_delete(session, directory):
    clock = Clock(T0)
    add_payloads(40, at=T0, team_id=_team(session))
    clock.set(T0 + timedelta(days=6 * 365))
    started, results, refused = threading.Event(), [], []

    def slow(_run, _batches):
        started.set()
        threading.Event().wait(0.05)

    def run(delay):
        if delay:
            started.wait(10)
        try:
            results.append(enforce.enforce(actor=SYSTEM, batch_size=5, after_batch=slow))
        except Conflict:
            refused.append(True)

    threads = [threading.Thread(target=run, args=(d,)) for d in (False, True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 1 and len(refused) == 1
    assert results[0].counts["stored_payload"]["deleted"] == 40
    assert count("retention_run") == 1


@pytest.fixture
def early_clock():
    """Set before the directory is seeded, so its events are dated T0 too."""
    return Clock(T0)


def test_audit_pruning_keeps_verification_working(early_clock, signing, session, directory):
    clock = early_clock
    add_events(session, 30)
    clock.set(T0 + timedelta(days=3 * 365))
    add_events(session, 5)
    clock.set(T0 + timedelta(days=7 * 366))
    result = enforce.enforce(actor=SYSTEM, batch_size=7)
    seeded = count("audit_event", "1=1")
    assert result.pruned_before is not None
    assert result.counts["audit_event"]["deleted"] == result.pruned_before - 1
    assert count("audit_event", f"seq < {result.pruned_before}") == 0
    verified = verify_chain(session=session, actor=SYSTEM)
    assert verified.ok, verified.lines()
    assert f"pruned before {result.pruned_before}" in verified.summary()
    assert seeded >= 6  # the 5 recent events and the run's own event stay


def test_audit_events_are_not_pruned_without_a_signing_key(session, directory):
    clock = Clock(T0)
    add_events(session, 5)
    clock.set(T0 + timedelta(days=8 * 365))
    result = enforce.enforce(actor=SYSTEM)
    assert "QUORUM_AUDIT_SIGNING_KEY" in " ".join(result.notes)
    assert count("audit_event", "action = 'thing.change'") == 5


def test_a_run_is_audited_with_its_counts(session, directory):
    clock = Clock(T0)
    add_payloads(2, at=T0, team_id=None)
    clock.set(T0 + timedelta(days=6 * 365))
    run = enforce.enforce(actor=SYSTEM)
    from core.audit.record import recent_events

    event = recent_events(session, actor=SYSTEM, action_prefix="retention.run")[0]
    assert event.target_id == str(run.run_id)
    assert event.after["counts"]["stored_payload"] == {"deleted": 2}


def test_audit_retention_below_the_minimum_is_refused(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    with pytest.raises(ValidationError, match="at least 7y"):
        written(rules.set_rule, actor=lead, class_key="audit_events", period="5y", action="delete")
    with pytest.raises(ValidationError, match="only be anonymized"):
        written(rules.set_rule, actor=lead, class_key="prompt_versions", period="1y", action="delete")
    written(rules.set_rule, actor=lead, class_key="audit_events", period="10y", action="delete")
    session.rollback()
    assert rules.current_rules(session).defaults["audit_events"].period == Period.parse("10y")


def test_only_governance_leads_change_retention(session, directory):
    auditor = directory.with_role(Role.AUDITOR)
    with pytest.raises(PermissionDenied):
        enforce.enforce(actor=auditor)
    with pytest.raises(PermissionDenied):
        written(rules.set_rule, actor=auditor, class_key="usage_rows", period="8y", action="anonymize")
    assert retention_preview.preview(session=session, actor=auditor)  # read-only view is allowed


@pytest.mark.parametrize(
    "data, message",
    [
        ({"classes": {"x": {"period": "2 weeks", "action": "delete", "basis": ["GDPR"]}}}, "not a period"),
        ({"classes": {"audit_events": {"period": "1y", "action": "delete", "basis": ["GDPR"]}}}, "shorter than"),
        ({"classes": {"audit_events": {"period": "8y", "action": "shred", "basis": ["GDPR"]}}}, "not one of"),
        ({"classes": {"audit_events": {"period": "8y", "action": "delete", "basis": ["HIPAA"]}}}, "basis"),
        ({"classes": {"x": {"period": "2y", "action": "delete", "basis": ["GDPR"]}}}, "needs a retention class"),
        ({"classes": {}, "default_payload_storage": "some"}, "default_payload_storage"),
    ],
)
def test_bad_retention_files_are_refused_with_the_place_named(data, message):
    with pytest.raises(ValidationError, match=message):
        parse_config(data)


def test_periods_are_calendar_periods():
    assert str(Period.parse("1y6m")) == "1y6m"
    assert Period.parse("2y").cutoff(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Period.parse("0d")


def test_a_lead_is_told_about_an_interrupted_run_and_a_stale_schedule(session, directory):
    from core.attention import attention_for

    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    clock = Clock(T0)
    assert attention_for(session, lead)["Retention"] == []  # nothing to say before the first run
    session.rollback()
    add_payloads(6, at=T0, team_id=None)
    clock.set(T0 + timedelta(days=6 * 365))

    def crash(_run, _batches):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enforce.enforce(actor=lead, batch_size=2, after_batch=crash)
    assert "interrupted" in attention_for(session, lead)["Retention"][0].title
    session.rollback()
    enforce.enforce(actor=lead)
    assert attention_for(session, lead)["Retention"] == []
    clock.set(clock.at + timedelta(days=8))
    assert "last ran" in attention_for(session, lead)["Retention"][0].title
    assert attention_for(session, directory.with_role(Role.AUDITOR))["Retention"] == []


def test_a_team_hold_stops_audit_pruning_at_the_first_held_event(early_clock, signing, session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    session.rollback()
    data_team = _team(session, "Data")
    add_events(session, 10)
    add_events(session, 1, team_id=data_team)
    add_events(session, 10)
    written(holds.add_hold, actor=lead, case_name="Data incident", owner_person_id=lead.person_id, team_id=data_team)
    first_held = count("audit_event", f"team_id = {data_team}")  # the team's creation event comes first
    early_clock.set(T0 + timedelta(days=7 * 366))
    result = enforce.enforce(actor=lead)
    session.rollback()
    from sqlalchemy import text

    held_seq = session.execute(text(f"SELECT MIN(seq) FROM audit_event WHERE team_id = {data_team}")).scalar()
    assert first_held >= 1 and result.pruned_before == held_seq
    assert verify_chain(session=session, actor=SYSTEM).ok


def test_experiment_outputs_follow_their_class(session, directory):
    from core.catalog.demo_seed import seed_catalog
    from core.experiments.demo_seed import seed_experiments

    clock = Clock(T0)
    seed_catalog(session)
    seed_experiments(session)
    session.rollback()
    assert count("experiment") == 1
    expiry = T0 + timedelta(days=5 * 365 + 1)  # playground and experiment outputs: 5 years
    clock.set(expiry - timedelta(days=2))
    assert enforce.enforce(actor=SYSTEM).counts["experiment"]["deleted"] == 0
    clock.set(expiry + timedelta(days=1))
    assert enforce.enforce(actor=SYSTEM).counts["experiment"]["deleted"] == 1
    assert count("experiment") == 0
