"""Data-subject requests and data minimization: access export, erasure that leaves no trace of
the person in any table or export while the audit chain still verifies, and per-team payload storage."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from core import db, demo
from core.audit.export import export
from core.audit.query import AuditFilter
from core.cli.main import main as cli
from core.errors import Conflict, NotFound, PermissionDenied
from core.gateway import policies
from core.gateway.pipeline import Caller, GatewayRequest
from core.models.gateway import GatewayCall, StoredPayload
from core.permissions import Actor, Role
from core.retention import holds, privacy, rules
from tests.audit_helpers import TEST_KEY
from tests.demo_snapshot import seed_demo
from tests.gateway_support import RecordingTransport, make_gateway
from tests.retention_support import T0, add_payloads, written

SYSTEM = Actor.system("test")
EMAIL, NAME = "tom.becker@example.com", "Tom Becker"


@pytest.fixture
def signing(monkeypatch, tmp_path):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    from core.settings import reset_settings

    reset_settings()


def mentions_anywhere(needles: list[str]) -> list[str]:
    """Every (table.column) of the live database whose text contains a needle, case-insensitively."""
    engine = db.get_engine()
    found = []
    with engine.connect() as conn:
        inspector = inspect(conn)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                type_name = str(column["type"]).upper()
                if not any(t in type_name for t in ("CHAR", "TEXT", "CLOB", "STRING")):
                    continue
                for needle in needles:
                    hit = conn.execute(
                        text(f'SELECT 1 FROM "{table}" WHERE lower("{column["name"]}") LIKE :n LIMIT 1'),
                        {"n": f"%{needle.lower()}%"},
                    ).first()
                    if hit:
                        found.append(f"{table}.{column['name']} ~ {needle}")
    return found


def _seeded_with_tom_everywhere(session) -> Actor:
    from core.identity.people import actor_for_email

    seed_demo()
    session.rollback()
    tom = actor_for_email(session, EMAIL)
    _decide_reviews_of(session, tom)
    session.rollback()
    add_payloads(2, at=T0, team_id=next(iter(tom.team_ids)), prefix="tom", actor=tom.ref, text="summarize my notes")
    add_payloads(
        1, at=T0, team_id=None, prefix="mention", text=f"Please e-mail {NAME} at {EMAIL.upper()} about the refund"
    )
    add_payloads(1, at=T0, team_id=None, prefix="other", text="nothing personal here")
    return tom


def _decide_reviews_of(session, person: Actor) -> None:
    """Erasure waits for the reviews the person is part of (four-eyes): a lead rejects them."""
    from core.catalog import workflow
    from core.models.catalog import PromptVersion

    lead = Actor.system("review-test")
    for version in session.exec(
        select(PromptVersion).where(PromptVersion.state == "in_review", PromptVersion.author_ref == person.ref)
    ).all():
        workflow.reject(session=session, actor=lead, version_id=version.id, comment="Closed before erasure")


def test_erasure_leaves_no_trace_in_any_table_or_export_and_the_chain_verifies(session, signing, capsys):
    tom = _seeded_with_tom_everywhere(session)
    assert mentions_anywhere([EMAIL, NAME])  # the check can fail: the person is there before
    lead = Actor.system("privacy-test")
    result = written(privacy.erase, actor=lead, email=EMAIL)
    # Tom's own calls in the demo seed count too, besides the three payloads made above.
    assert result.counts["stored_payloads_deleted"] >= 3
    assert mentions_anywhere([EMAIL, NAME]) == []
    session.rollback()
    assert [session.get(StoredPayload, i) for i in ("tom0", "tom1", "mention0")] == [None, None, None]
    assert session.get(StoredPayload, "other0") is not None
    # The call log keeps the pseudonymous id; usage and cost are not lost.
    assert session.exec(select(GatewayCall).where(GatewayCall.actor == tom.ref)).all()
    exported = io.StringIO()
    export(session=session, actor=SYSTEM, filters=AuditFilter(), fmt="jsonl", out=exported)
    assert EMAIL not in exported.getvalue().lower() and NAME.lower() not in exported.getvalue().lower()
    assert '"privacy.erase"' in exported.getvalue()
    everyone = [written(privacy.access_export, actor=lead, email=p[1]) for p in demo.PEOPLE if p[1] != EMAIL]
    assert NAME.lower() not in json.dumps(everyone).lower()
    with pytest.raises(NotFound):
        written(privacy.access_export, actor=lead, email=EMAIL)
    assert cli(["audit", "verify"]) == 0
    assert "events verified" in capsys.readouterr().out


def test_access_export_holds_the_person_their_calls_and_payloads_mentioning_them(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    tom = directory.by_email(EMAIL)
    session.rollback()
    add_payloads(2, at=T0, team_id=None, prefix="tom", actor=tom.ref)
    add_payloads(1, at=T0, team_id=None, prefix="mention", text=f"ask {EMAIL}")
    add_payloads(1, at=T0, team_id=None, prefix="other")
    doc = written(privacy.access_export, actor=lead, email=EMAIL.upper())
    assert doc["person"]["email"] == EMAIL and doc["subject"] == tom.ref
    assert sorted(p["request_id"] for p in doc["stored_payloads"]) == ["mention0", "tom0", "tom1"]
    assert any(e["action"] == "person.create" for e in doc["audit_events"])
    json.dumps(doc)  # one JSON file
    [request] = privacy.recent_requests(session, actor=lead)
    assert request.kind == "access" and EMAIL not in request.summary_json


def test_an_end_users_requests_are_exported_and_erased(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    session.rollback()
    add_payloads(2, at=T0, team_id=None, prefix="eu")
    add_payloads(1, at=T0, team_id=None, prefix="someone")
    with db.get_engine().begin() as conn:
        conn.execute(
            text("UPDATE stored_payload SET request_json = :j WHERE request_id LIKE 'eu%'"),
            {"j": json.dumps({"request": {"user": "customer-8812", "messages": []}})},
        )
    doc = written(privacy.access_export, actor=lead, end_user="customer-8812")
    assert len(doc["stored_payloads"]) == 2 and len(doc["gateway_calls"]) == 2
    written(privacy.erase, actor=lead, end_user="customer-8812")
    session.rollback()
    assert [p.request_id for p in session.exec(select(StoredPayload))] == ["someone0"]
    assert "customer-8812" not in json.dumps([e.after for e in _events(session, "privacy.")])


def _events(session, prefix):
    from core.audit.record import recent_events

    return recent_events(session, actor=SYSTEM, action_prefix=prefix)


def test_erasure_is_refused_while_a_legal_hold_names_the_person(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    tom = directory.by_email(EMAIL)
    session.rollback()
    written(holds.add_hold, actor=lead, case_name="HR-17", owner_person_id=lead.person_id, person_id=tom.person_id)
    with pytest.raises(Conflict, match="HR-17"):
        written(privacy.erase, actor=lead, email=EMAIL)
    with pytest.raises(PermissionDenied):
        written(privacy.erase, actor=directory.with_role(Role.AUDITOR), email=EMAIL)


@pytest.mark.parametrize("mode", ["full", "redacted", "none"])
def test_the_gateway_stores_payloads_as_the_team_says(session, directory, mode):
    policies.forget()
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    team = next(iter(engineer.team_ids))
    session.rollback()
    written(rules.set_payload_storage_mode, actor=lead, team_id=team, mode=mode)
    # The team's guardrails let phone numbers through, so only the storage mode can remove them.
    written(policies.set_team_policy, actor=directory.admin, team_id=team, pii_action="allow", moderation="off")
    policies.forget()
    gateway = make_gateway(RecordingTransport())
    reply = gateway.call(
        caller=Caller(actor=engineer, team_id=team),
        request=GatewayRequest(
            kind="chat",
            body={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Call me on +1 415 555 0134 please"}],
            },
        ),
    )
    session.rollback()
    stored = session.get(StoredPayload, reply.request_id)
    call = session.exec(select(GatewayCall).where(GatewayCall.request_id == reply.request_id)).one()
    assert call.cost_micro > 0 and call.input_tokens > 0  # usage and cost are always kept
    if mode == "none":
        assert stored is None
    else:
        assert stored is not None and stored.response_json
        assert ("555 0134" in stored.request_json) == (mode == "full")


def test_payload_storage_mode_is_validated_and_defaults_to_the_file(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    session.rollback()
    assert rules.payload_storage_mode(session, 1) == "full"
    with pytest.raises(Exception, match="full, redacted, none"):
        written(rules.set_payload_storage_mode, actor=lead, team_id=1, mode="some")


def test_a_held_request_keeps_its_redacted_request_even_when_nothing_is_stored():
    from core.retention.payloads import minimized_payload

    request = json.dumps({"request": {"messages": [{"role": "user", "content": "mail ann@example.org"}]}})
    assert minimized_payload("none", request, '{"x": 1}') is None
    kept_request, kept_response = minimized_payload("none", request, '{"x": 1}', needed_for_hold=True)
    assert "ann@example.org" not in kept_request and "[EMAIL" in kept_request and kept_response is None
    assert minimized_payload("full", request, None) == (request, None)
