"""Audit log browsing: filters, keyset pages, names, diffs, and exports that match the page exactly."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.audit import export as audit_export
from core.audit import query as audit_query
from core.audit.query import AuditFilter
from core.audit.record import committing, record
from core.cli.main import main
from core.errors import PermissionDenied, ValidationError
from core.identity import people as identity
from core.permissions import Role
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM, TEST_KEY, sql
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


@pytest.fixture
def history(session, directory):
    """The directory's seed events plus a mix of budget, team and prompt events an hour apart."""
    admin, lead = directory.admin, directory.with_role(Role.GOVERNANCE_LEAD)
    support = identity.team_by_name(session, "Support").id
    legal = identity.team_by_name(session, "Legal").id
    plan = [
        (admin, "budget.set", "budget", 1, support, {"limit": 100}, {"limit": 250}),
        (lead, "prompt.version.approve", "prompt_version", 7, support, {"state": "review"}, {"state": "approved"}),
        (admin, "budget.set", "budget", 2, legal, None, {"limit": 50, "note": "quarterly 50% cut"}),
        (admin, "team.rename", "team", legal, legal, {"name": "Law"}, {"name": "Legal"}),
        (lead, "budget.alert.ack", "budget", 1, support, None, {"ack": True}),
    ]
    for i, (who, action, ttype, tid, team, before, after) in enumerate(plan):
        clock.set_clock(lambda i=i: T0 + timedelta(hours=i))
        with committing(session):
            record(
                session,
                actor=who,
                action=action,
                target_type=ttype,
                target_id=tid,
                team_id=team,
                before=before,
                after=after,
            )
    clock.set_clock(None)
    return {"admin": admin, "lead": lead, "support": support, "legal": legal}


def actions(events) -> list[str]:
    return [e.action for e in events]


def search(session, who, **filters):
    return audit_query.search(session, actor=who, filters=AuditFilter(**filters), limit=1000).events


def test_filters_by_action_prefix_negation_actor_team_target_time_and_text(session, history):
    auditor = SYSTEM
    assert actions(search(session, auditor, action="budget.")) == ["budget.alert.ack", "budget.set", "budget.set"]
    assert actions(search(session, auditor, action="budget. -budget.alert.")) == ["budget.set", "budget.set"]
    assert "team.create" not in actions(search(session, auditor, action="-team."))
    assert actions(search(session, auditor, action="team.rename")) == ["team.rename"]
    assert actions(search(session, auditor, actor=history["lead"].ref)) == [
        "budget.alert.ack",
        "prompt.version.approve",
    ]
    assert actions(search(session, auditor, actor="lena.fischer@example.com", action="prompt.")) == [
        "prompt.version.approve"
    ]
    assert actions(search(session, auditor, team_id=history["legal"], action="-team.create")) == [
        "team.rename",
        "budget.set",
    ]
    assert actions(search(session, auditor, target_type="budget", target_id="1")) == ["budget.alert.ack", "budget.set"]
    assert actions(search(session, auditor, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))) == [
        "budget.set",
        "prompt.version.approve",
    ]
    assert actions(search(session, auditor, text="50%")) == ["budget.set"]
    assert actions(search(session, auditor, text="APPROVED")) == ["prompt.version.approve"]


def test_keyset_pages_walk_every_event_once_newest_first(session, history):
    seen, cursor = [], None
    while True:
        page = audit_query.search(session, actor=SYSTEM, filters=AuditFilter(), before_seq=cursor, limit=4)
        seen += [e.seq for e in page.events]
        if page.older is None:
            break
        cursor = page.older
    assert seen == sorted(seen, reverse=True) == list(range(len(seen), 0, -1))
    assert len(seen) == 4 + 9 + 5


@pytest.mark.parametrize(
    "filters, message",
    [
        (dict(action="budget!"), "Action filter"),
        (dict(since=T0, until=T0), "time range is empty"),
        (dict(actor="nobody@example.com"), "No person"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message(session, history, filters, message):
    with pytest.raises(ValidationError, match=message):
        search(session, SYSTEM, **filters)


def test_bad_times_are_named():
    with pytest.raises(ValidationError, match="From: 'yesterday' is not a date"):
        audit_query.parse_time("yesterday", field="From")
    assert audit_query.parse_time("2026-03-01T10:00+02:00") == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_roles_without_audit_read_cannot_browse_or_export(session, directory):
    for role in (Role.FINANCE, Role.PROMPT_ENGINEER):
        with pytest.raises(PermissionDenied):
            search(session, directory.with_role(role))
        with pytest.raises(PermissionDenied):
            audit_export.export_bytes(
                session=session, actor=directory.with_role(role), filters=AuditFilter(), fmt="csv"
            )


def test_names_resolve_from_the_directory_and_erased_people_stay_ids(session, history):
    names = audit_query.actor_names(session, [history["admin"].ref, "person:999", "system:cli"])
    assert names == {history["admin"].ref: "Amara Okafor"}


def test_diff_shows_added_removed_and_changed_fields():
    changes = audit_query.diff({"limit": 100, "old": 1, "tags": {"a": 1}}, {"limit": 250, "tags": {"a": 1, "b": 2}})
    assert [(c.path, c.kind) for c in changes] == [
        ("limit", "changed"),
        ("old", "removed"),
        ("tags.a", "unchanged"),
        ("tags.b", "added"),
    ]
    assert [(c.path, c.after) for c in audit_query.diff(None, {"x": 1})] == [("x", 1)]


FILTERS = [
    dict(cli=["--action", "budget."], page={"audit_action": "budget."}, core=dict(action="budget.")),
    dict(
        cli=["--action=-team.", "--text", "approved"],
        page={"audit_action": "-team.", "audit_text": "approved"},
        core=dict(action="-team.", text="approved"),
    ),
    dict(
        cli=["--actor", "amara.okafor@example.com", "--since", "2026-03-01T10:00"],
        page={"audit_actor": "amara.okafor@example.com", "audit_since": "2026-03-01T10:00"},
        core=dict(actor="amara.okafor@example.com", since=T0 + timedelta(hours=1)),
    ),
    dict(
        cli=["--target-type", "budget", "--target-id", "1"],
        page={"audit_target_type": "budget", "audit_target_id": "1"},
        core=dict(target_type="budget", target_id="1"),
    ),
]


@pytest.mark.parametrize("case", FILTERS, ids=lambda c: " ".join(c["cli"]))
def test_the_page_the_cli_export_and_the_file_export_give_the_same_events(session, history, case, capsys, tmp_path):
    expected = [e.event_id for e in search(session, SYSTEM, **case["core"])]
    assert expected

    out = tmp_path / "export.csv"
    assert main(["audit", "export", "--format", "csv", "--output", str(out), *case["cli"]]) == 0
    with out.open(newline="", encoding="utf-8") as lines:
        from_cli = audit_export.parse(lines, "csv")
    assert [r["event_id"] for r in reversed(from_cli)] == expected

    assert main(["audit", "export", "--format", "jsonl", *case["cli"]]) == 0
    from_stdout = audit_export.parse(io.StringIO(capsys.readouterr().out), "jsonl")
    assert [r["event_id"] for r in reversed(from_stdout)] == expected
    assert all(r["occurred_at"].endswith("Z") for r in from_stdout)

    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_log.py").run()
    for key, value in case["page"].items():
        at.text_input(key=key).input(value)
    at.run()
    assert not at.exception and not errors_of(at)
    shown = at.dataframe[0].value
    with_seq = {e.seq: e.event_id for e in search(session, SYSTEM, **case["core"])}
    assert [with_seq[s] for s in shown["Seq"]] == expected

    page_bytes = audit_export.export_bytes(
        session=session, actor=SYSTEM, filters=AuditFilter(**case["core"]), fmt="jsonl"
    )
    assert [json.loads(line)["event_id"] for line in reversed(page_bytes.decode().splitlines())] == expected


def test_the_page_shows_names_and_a_readable_diff_of_the_selected_event(session, history):
    at = signed_in(session, EMAIL_BY_ROLE[Role.GOVERNANCE_LEAD])
    at.switch_page("pages/audit_log.py").run()
    at.text_input(key="audit_action").input("budget.set").run()
    table = at.dataframe[0].value
    assert list(table["Actor"]) == [f"Amara Okafor ({history['admin'].ref})"] * 2
    at.session_state["audit_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    diff = at.dataframe[1].value
    assert list(zip(diff["Field"], diff["Before"], diff["After"], diff["Change"], strict=True)) == [
        ("limit", "100", "250", "changed")
    ]


def test_the_page_says_when_checkpoints_are_not_signed_and_refuses_a_bad_time(session, history):
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_log.py").run()
    assert any("No audit signing key" in w.value for w in at.warning)
    at.text_input(key="audit_since").input("last tuesday").run()
    assert errors_of(at) == ["From: 'last tuesday' is not a date or time such as 2026-03-01 or 2026-03-01T14:30 (UTC)"]


def test_the_verify_page_checks_the_chain_with_a_progress_bar(session, history, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_verify.py").run()
    at.button(key="verify_run").click().run()
    assert not at.exception and not errors_of(at)
    assert [s.value for s in at.success] == ["18 events verified, last checkpoint at 18"]

    sql("DELETE FROM audit_event WHERE seq = 12")
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_verify.py").run()
    at.button(key="verify_run").click().run()
    assert errors_of(at) == ["1 problem(s) found in 17 events"]
    assert at.code[0].value == "seq 12: missing: events absent from the chain"


def test_the_verify_page_offers_incremental_verification_after_a_full_one(session, history, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    reset_settings()
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_verify.py").run()
    at.button(key="verify_run").click().run()  # full by default: signs a verified checkpoint at 18
    session.rollback()
    with committing(session):
        record(session, actor=SYSTEM, action="thing.change", target_type="thing", target_id="late")
    at.radio(key="verify_mode").set_value(at.radio(key="verify_mode").options[1]).run()
    at.button(key="verify_run").click().run()
    assert not at.exception and not errors_of(at)
    assert [s.value for s in at.success] == [
        "1 new events verified after the verified checkpoint at 18, last checkpoint at 19"
    ]
    assert any("were verified in full" in c.value for c in at.caption)
    signed = at.dataframe[-1].value["Signed"]
    assert all(value.endswith(" UTC") and value[:2] == "20" for value in signed), list(signed)
