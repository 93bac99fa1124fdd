"""Streaming exports: every file parses back to exactly the rows it promises, filters hold,
a reader without the permission is refused in core, and the pages' download links stream."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import clock, db, exports
from core.audit import export as audit_export
from core.audit.query import AuditFilter, iter_filtered
from core.audit.record import committing, record
from core.budgets import ledger_export, periods, rollups
from core.cli.main import main
from core.errors import NotFound, PermissionDenied, ValidationError
from core.gateway import call_export
from core.http.routes import http_routes
from core.identity import people as identity
from core.models.budgets import UsageRecord
from core.models.gateway import GatewayCall
from core.permissions import Role
from core.retention import privacy
from tests.audit_helpers import SYSTEM
from tests.test_pages import EMAIL_BY_ROLE, signed_in

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# Text a naive writer gets wrong: separators, quotes, line breaks, non-ASCII, a formula.
AWKWARD = 'a,b "quoted"\nsecond line\r\n; é 漢字 =SUM(A1)'


@pytest.fixture
def events(session, directory):
    """Audit events with awkward text in every free field, an hour apart, two teams."""
    support = identity.team_by_name(session, "Support").id
    legal = identity.team_by_name(session, "Legal").id
    for i in range(12):
        clock.set_clock(lambda i=i: T0 + timedelta(hours=i))
        with committing(session):
            record(
                session,
                actor=directory.admin,
                action="budget.set" if i % 3 else "team.rename",
                target_type="budget",
                target_id=f"{i},{AWKWARD}",
                team_id=support if i % 2 else legal,
                before=None if i % 4 == 0 else {"note": AWKWARD, "n": i},
                after={"note": AWKWARD, "nested": {"list": [1, "x", None]}, "n": i + 1},
            )
    clock.set_clock(None)
    return {"support": support, "legal": legal}


def expected_records(session, filters: AuditFilter) -> list[dict]:
    return [audit_export.record_of(row) for row in iter_filtered(session, actor=SYSTEM, filters=filters)]


def parsed(data: bytes, fmt: str) -> list[dict]:
    text = data.decode("utf-8")
    if fmt == "jsonl":
        return [json.loads(line) for line in text.split("\n") if line]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    for row in rows:
        row["seq"] = int(row["seq"])
        row["team_id"] = int(row["team_id"]) if row["team_id"] else None
        for key in ("before", "after"):
            row[key] = json.loads(row[key]) if row[key] else None
    return rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(
    "filters",
    [
        AuditFilter(),
        AuditFilter(action="budget."),
        AuditFilter(action="-budget.", since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=9)),
        AuditFilter(text="nested", target_type="budget"),
    ],
    ids=["everything", "action prefix", "excluded action and time range", "text and target type"],
)
def test_an_export_parses_back_to_exactly_the_filtered_events(session, events, fmt, filters):
    if filters.team_id is None and filters.action == "budget.":
        filters = AuditFilter(action="budget.", team_id=events["support"])
    want = expected_records(session, filters)
    assert want, "the filter should match some events"
    data = audit_export.export_bytes(session=session, actor=SYSTEM, filters=filters, fmt=fmt)
    got = parsed(data, fmt)
    assert got == want
    assert any(isinstance(r["after"], dict) and r["after"].get("note") == AWKWARD for r in got)


def test_a_tampered_payload_that_is_not_json_is_exported_as_the_text_stored(session, events):
    from tests.audit_helpers import sql

    sql("UPDATE audit_event SET after_json = 'not {json' WHERE seq = (SELECT max(seq) FROM audit_event)")
    for fmt in ("csv", "jsonl"):
        data = audit_export.export_bytes(session=session, actor=SYSTEM, filters=AuditFilter(), fmt=fmt)
        last = data.decode().strip().split("\n")[-1]
        if fmt == "jsonl":
            assert json.loads(last)["after"] == "not {json"
        else:
            assert '"not {json"' in last


def test_a_payload_that_is_not_json_midway_leaves_every_other_line_as_it_was(session, events, monkeypatch):
    """In batches of three, the database's lines stop at the tampered event; the rest still follow, once each."""
    from tests.audit_helpers import sql

    monkeypatch.setattr(exports, "BATCH_ROWS", 3)
    monkeypatch.setattr(audit_export, "BATCH_ROWS", 3)
    want = expected_records(session, AuditFilter())
    middle = want[7]["seq"]
    sql("UPDATE audit_event SET after_json = 'not {json' WHERE seq = :s", {"s": middle})
    want[7]["after"] = "not {json"
    for fmt in ("jsonl", "csv"):
        data = audit_export.export_bytes(session=session, actor=SYSTEM, filters=AuditFilter(), fmt=fmt)
        if fmt == "jsonl":
            assert parsed(data, fmt) == want
        else:
            rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
            assert [int(r["seq"]) for r in rows] == [r["seq"] for r in want]
            assert rows[7]["after"] == "not {json"


@pytest.mark.parametrize("role", [Role.FINANCE, Role.PROMPT_ENGINEER])
def test_a_reader_without_audit_read_is_refused_before_and_when_the_export_runs(session, directory, role):
    outsider = directory.with_role(role)
    with pytest.raises(PermissionDenied):
        audit_export.prepare(session=session, actor=outsider, filters=AuditFilter(), fmt="csv")
    with pytest.raises(PermissionDenied):
        ledger_export.prepare(session=session, actor=directory.with_role(Role.PROMPT_ENGINEER))
    with pytest.raises(PermissionDenied):
        call_export.prepare(session=session, actor=directory.with_role(Role.FINANCE))


def test_the_download_link_streams_the_export_and_refuses_unknown_tokens(session, events):
    client = TestClient(Starlette(routes=http_routes()))
    export = audit_export.prepare(session=session, actor=SYSTEM, filters=AuditFilter(action="team."), fmt="jsonl")
    path = exports.download_link(export, owner=SYSTEM.ref)
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["content-disposition"].startswith('attachment; filename="audit-')
    assert answer.headers["cache-control"] == "no-store"
    assert parsed(answer.content, "jsonl") == expected_records(session, AuditFilter(action="team."))
    assert client.get(path).content == answer.content  # the link works again while it lasts
    missing = client.get("/exports/not-a-token")
    assert missing.status_code == 404 and "expired or is unknown" in missing.text
    with pytest.raises(NotFound):
        exports.claim("not-a-token")


def test_an_expired_link_is_refused(session, events, monkeypatch):
    export = audit_export.prepare(session=session, actor=SYSTEM, filters=AuditFilter(), fmt="csv")
    path = exports.download_link(export, owner=SYSTEM.ref)
    later = exports.time.monotonic() + exports.LINK_SECONDS + 1
    monkeypatch.setattr(exports.time, "monotonic", lambda: later)
    assert TestClient(Starlette(routes=http_routes())).get(path).status_code == 404


def test_the_audit_page_download_links_give_the_filtered_file(session, events):
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/audit_log.py").run()
    at.text_input(key="audit_action").input("team.").run()
    assert not at.exception, at.exception
    client = TestClient(Starlette(routes=http_routes()))
    for fmt, key in (("csv", "audit_export_csv"), ("jsonl", "audit_export_jsonl")):
        url = at.link_button(key=key).proto.url
        assert url.startswith("/exports/")
        assert parsed(client.get(url).content, fmt) == expected_records(session, AuditFilter(action="team."))


def test_the_cli_writes_the_export_to_a_file_and_says_how_many(session, events, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "audit.csv"
    assert main(["audit", "export", "--format", "csv", "--output", str(out), "--action", "budget."]) == 0
    want = expected_records(session, AuditFilter(action="budget."))
    assert parsed(out.read_bytes(), "csv") == want
    assert f"exported {len(want)} events" in capsys.readouterr().err
    assert [p.name for p in out.parent.iterdir()] == ["audit.csv"]  # no partial file left behind


# ---- spend ledger and call log ---------------------------------------------------------------


@pytest.fixture
def traffic(session, directory):
    """Ledger rows and call-log rows in two months, for two teams, with awkward names."""
    support = identity.team_by_name(session, "Support")
    legal = identity.team_by_name(session, "Legal")
    support.name = f"Support {AWKWARD[:12]}"
    session.add(support)
    person = identity.person_by_email(session, EMAIL_BY_ROLE[Role.FINANCE])
    for i in range(40):
        when = datetime(2026, 2, 20, tzinfo=UTC) + timedelta(hours=13 * i)
        team = support if i % 3 else legal
        session.add(
            UsageRecord(
                occurred_at=when,
                team_id=team.id,
                person_id=person.id if i % 2 else None,
                key_id=None if i % 2 else 7,
                model="gpt-4o-mini",
                input_tokens=100 + i,
                output_tokens=10 * i,
                cost_micro=1_234_567 * i + 5,
                latency_ms=i,
                request_id=f"req_{i:04d}",
            )
        )
        session.add(
            GatewayCall(
                request_id=f"req_{i:04d}",
                created_at=when,
                team_id=team.id,
                actor=f"person:{person.id}",
                endpoint="chat",
                model="gpt-4o-mini",
                status="ok" if i % 5 else "blocked",
                http_status=200 if i % 5 else 400,
                rule=None if i % 5 else "secret.aws",
                cache_hit=i % 4 == 0,
                input_tokens=100 + i,
                output_tokens=10 * i,
                cost_micro=1_234_567 * i + 5,
                latency_ms=i + 0.5,
            )
        )
    session.commit()
    with db.get_engine().begin() as connection:  # rows written here, not by a settle: sum them up
        rollups.rebuild(connection)
    return {"support": support, "legal": legal, "person": person}


def rows_of(data: bytes, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().split("\n") if line]
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_spend_export_is_every_ledger_row_of_the_month_with_exact_dollars(session, directory, traffic, fmt):
    finance = directory.with_role(Role.FINANCE)
    march = periods.period_at("month", datetime(2026, 3, 10, tzinfo=UTC))
    export = ledger_export.prepare(session=session, actor=finance, month=march, team_id=traffic["support"].id, fmt=fmt)
    got = rows_of(b"".join(export.chunks()), fmt)
    want = sorted(
        (
            r
            for r in session.exec(select(UsageRecord)).all()
            if r.team_id == traffic["support"].id and march.start <= r.occurred_at < march.end
        ),
        key=lambda r: r.occurred_at,
    )
    assert [r["request_id"] for r in got] == [r.request_id for r in want] and len(want) > 5
    assert export.rows == len(want)
    for row, record_ in zip(got, want, strict=True):
        assert int(row["cost_micro"]) == record_.cost_micro
        assert row["cost_usd"] == f"{record_.cost_micro // 1_000_000}.{record_.cost_micro % 1_000_000:06d}"
        assert row["team"] == traffic["support"].name
        assert row["occurred_at"] == record_.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert (row["person"] or None) == (traffic["person"].display_name if record_.person_id else None)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_call_export_is_every_call_in_the_range(session, directory, traffic, fmt):
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    since, until = datetime(2026, 2, 25, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)
    export = call_export.prepare(session=session, actor=engineer, since=since, until=until, fmt=fmt)
    got = rows_of(b"".join(export.chunks()), fmt)
    in_range = [c for c in session.exec(select(GatewayCall)).all() if since <= c.created_at < until]
    want = sorted(in_range, key=lambda c: c.created_at)
    assert [r["request_id"] for r in got] == [c.request_id for c in want] and len(want) > 5
    for row, call in zip(got, want, strict=True):
        assert (row["rule"] or None) == call.rule
        assert int(row["http_status"]) == call.http_status
        assert float(row["latency_ms"]) == call.latency_ms
        assert int(row["cache_hit"]) == int(call.cache_hit)


def test_the_cli_exports_spend_and_calls_to_files(session, directory, traffic, tmp_path, capsys):
    spend = tmp_path / "spend.csv"
    assert main(["spend", "export", "--month", "2026-03", "--team", "Legal", "--output", str(spend)]) == 0
    rows = rows_of(spend.read_bytes(), "csv")
    assert rows and {r["team"] for r in rows} == {"Legal"}
    assert f"exported {len(rows)} ledger rows" in capsys.readouterr().err
    calls = tmp_path / "calls.jsonl"
    argv = ["calls", "export", "--since", "2026-03-01", "--until", "2026-03-02", "--format", "jsonl"]
    assert main([*argv, "--output", str(calls)]) == 0
    assert [r["created_at"][:10] for r in rows_of(calls.read_bytes(), "jsonl")] == ["2026-03-01"] * 2
    assert main(["spend", "export", "--month", "March", "--output", str(spend)]) == 1
    assert "is not a month such as 2026-03" in capsys.readouterr().err


def test_the_spend_and_observability_pages_link_to_their_exports(session, directory, traffic):
    client = TestClient(Starlette(routes=http_routes()))
    clock.set_clock(lambda: datetime(2026, 3, 5, tzinfo=UTC))  # the traffic is recent, the month March
    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/spend.py").run()
    assert not at.exception, at.exception
    month = at.selectbox(key="breakdown_month").value
    ledger = rows_of(client.get(at.link_button(key="ledger_export").proto.url).content, "csv")
    in_month = [r for r in session.exec(select(UsageRecord)).all() if month.start <= r.occurred_at < month.end]
    assert len(ledger) == len(in_month)
    at.switch_page("pages/observability.py").run()
    assert not at.exception, at.exception
    answer = client.get(at.link_button(key="obs_calls_export").proto.url)
    assert answer.status_code == 200 and answer.text.startswith("created_at,request_id,team,")
    since = datetime(2026, 3, 5, tzinfo=UTC) - timedelta(days=14)
    assert len(rows_of(answer.content, "csv")) == len(
        [c for c in session.exec(select(GatewayCall)).all() if c.created_at >= since]
    )


def test_a_subject_access_document_streams_and_is_audited_with_its_counts(session, directory, traffic):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    document = privacy.access_stream(session=session, actor=lead, email=EMAIL_BY_ROLE[Role.FINANCE])
    assert document.summary["usage_records"] == 20  # counted and audited before a byte is read
    [event] = iter_filtered(session, actor=SYSTEM, filters=AuditFilter(action="privacy.access"))
    assert event.after == {"counts": document.summary}
    body = TestClient(Starlette(routes=http_routes())).get(exports.download_link(document, owner=lead.ref))
    doc = json.loads(body.content)
    assert {k: len(v) for k, v in doc.items() if isinstance(v, list)} == document.summary
    assert sorted(u["request_id"] for u in doc["usage_records"]) == [f"req_{i:04d}" for i in range(1, 40, 2)]


def test_an_unknown_person_in_the_filter_is_refused_before_any_byte(session, directory):
    with pytest.raises(ValidationError, match="No person 'nobody@example.com'"):
        audit_export.prepare(session=session, actor=SYSTEM, filters=AuditFilter(actor="nobody@example.com"), fmt="csv")
    with pytest.raises(ValidationError, match="Unknown export format 'xml'"):
        audit_export.prepare(session=session, actor=SYSTEM, filters=AuditFilter(), fmt="xml")


def test_a_person_holds_only_their_newest_links(session, events):
    export = audit_export.prepare(session=session, actor=SYSTEM, filters=AuditFilter(), fmt="csv")
    paths = [exports.download_link(export, owner="person:1") for _ in range(exports.LINKS_PER_OWNER + 5)]
    other = exports.download_link(export, owner="person:2")
    client = TestClient(Starlette(routes=http_routes()))
    assert [client.get(p).status_code for p in paths[:5]] == [404] * 5  # the oldest went first
    assert client.get(paths[-1]).status_code == 200 and client.get(paths[5]).status_code == 200
    assert client.get(other).status_code == 200  # another person's links are not theirs to evict
