"""Month close: a closed month is frozen on every write path that could change it, reopening
takes a reason and two people, and a statement equals the ledger and the Spend page."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from core import clock
from core.budgets import config, prices, reports
from core.budgets.config import BudgetInput
from core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.exports import write_file
from core.finance import close, reconcile, statements
from core.formatting import money
from core.identity import cost_centers
from core.identity import people as identity
from core.models.audit import AuditEvent
from core.models.budgets import UsageRecord
from core.models.finance import ReconciliationRun
from core.permissions import Actor, Role
from tests.budget_support import spend
from tests.finance_support import SYSTEM, provider_of
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

MONTH = "2026-10"
IN_MONTH = datetime(2026, 10, 14, 12, tzinfo=UTC)


def _finance(directory):
    return directory.with_role(Role.FINANCE)


def test_a_month_closes_only_once_its_calls_can_no_longer_settle(directory, session):
    finance = _finance(directory)
    clock.set_clock(lambda: datetime(2026, 11, 1, 0, 5, tzinfo=UTC))  # 5 minutes after its end: calls may settle
    with pytest.raises(Conflict, match="may still be settling"):
        close.close_month(session=session, actor=finance, month=MONTH)
    clock.set_clock(lambda: datetime(2026, 11, 1, 0, 11, tzinfo=UTC))
    close.close_month(session=session, actor=finance, month=MONTH)
    with pytest.raises(Conflict, match="already closed"):
        close.close_month(session=session, actor=finance, month=MONTH)
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "finance.month.close")).all()
    assert event.actor == finance.ref and event.target_id == MONTH


@pytest.mark.parametrize("role", [Role.ADMIN, Role.AUDITOR, Role.PROMPT_ENGINEER, Role.GOVERNANCE_LEAD])
def test_only_finance_closes_a_month(directory, session, role):
    with pytest.raises(PermissionDenied):
        close.close_month(session=session, actor=directory.with_role(role), month=MONTH)


@pytest.mark.parametrize("month", ["2026-13", "26-10", "2026-10-01", "", "2026-1"])
def test_a_malformed_month_is_refused(directory, session, month):
    with pytest.raises(ValidationError, match="YYYY-MM"):
        close.close_month(session=session, actor=_finance(directory), month=month)


def test_a_price_override_dated_inside_or_before_a_closed_month_is_refused(directory, session):
    close.close_month(session=session, actor=_finance(directory), month=MONTH)
    admin = directory.admin
    for when in ("2026-10-20", "2026-09-01", "2026-10-31T23:00:00+00:00"):
        with pytest.raises(Conflict, match="frozen"):
            prices.add_override(
                session=session, actor=admin, model="gpt-4o-mini", effective_from=when, input="0.20", source="x"
            )
    # From the end of the closed month on, prices may change.
    prices.add_override(
        session=session, actor=admin, model="gpt-4o-mini", effective_from="2026-11-01", input="0.20", source="bill"
    )


def test_a_closed_months_days_are_not_reconciled_again(directory, session, sim):
    reconcile.reconcile_days(actor=SYSTEM, first=IN_MONTH.date(), last=IN_MONTH.date(), provider=provider_of(sim))
    close.close_month(session=session, actor=_finance(directory), month=MONTH)
    [result] = reconcile.reconcile_days(
        actor=SYSTEM, first=IN_MONTH.date(), last=IN_MONTH.date(), provider=provider_of(sim)
    )
    assert result.status == "closed" and MONTH in result.message
    session.rollback()
    assert session.exec(select(func.count()).select_from(ReconciliationRun)).one() == 1


def test_reopening_needs_a_reason_finance_and_a_different_admin(directory, session):
    finance, admin = _finance(directory), directory.admin
    close.close_month(session=session, actor=finance, month=MONTH)
    with pytest.raises(ValidationError, match="Say why"):
        close.request_reopen(session=session, actor=finance, month=MONTH, reason="oops")
    with pytest.raises(PermissionDenied):
        close.request_reopen(session=session, actor=admin, month=MONTH, reason="The bill arrived late and differs")
    request = close.request_reopen(
        session=session, actor=finance, month=MONTH, reason="The provider corrected its October bill"
    )
    with pytest.raises(Conflict, match="already waiting"):
        close.request_reopen(session=session, actor=finance, month=MONTH, reason="Asking a second time, twice")
    with pytest.raises(PermissionDenied):  # finance cannot approve its own request
        close.decide_reopen(session=session, actor=finance, request_id=request.id, approve=True)
    assert close.is_closed(session, MONTH)
    # One person holding both roles is still one person.
    both = Actor(ref="person:999", display_name="Both", roles=frozenset({Role.FINANCE, Role.ADMIN}))
    own = close.decide_reopen(session=session, actor=admin, request_id=request.id, approve=False)
    assert own.status == "rejected" and close.is_closed(session, MONTH)
    mine = close.request_reopen(session=session, actor=both, month=MONTH, reason="A price entry was wrong")
    with pytest.raises(PermissionDenied, match="second person"):
        close.decide_reopen(session=session, actor=both, request_id=mine.id, approve=True)
    approved = close.decide_reopen(session=session, actor=admin, request_id=mine.id, approve=True)
    assert approved.status == "approved" and not close.is_closed(session, MONTH)
    actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()]
    assert actions[-4:] == [
        "finance.month.reopen_request",
        "finance.month.reopen_rejected",
        "finance.month.reopen_request",
        "finance.month.reopen",
    ]
    # Reopened, the month takes a price override again.
    prices.add_override(
        session=session, actor=admin, model="gpt-4o-mini", effective_from="2026-10-20", input="0.2", source="bill"
    )


def test_a_secret_in_the_reason_is_refused(directory, session):
    close.close_month(session=session, actor=_finance(directory), month=MONTH)
    with pytest.raises(ValidationError):
        close.request_reopen(
            session=session, actor=_finance(directory), month=MONTH, reason="use key sk-proj-" + "A1b2C3d4" * 6
        )


def test_cost_centers_are_set_by_admins_and_audited(directory, session):
    team = identity.team_by_name(session, "Support")
    with pytest.raises(PermissionDenied):
        cost_centers.set_cost_center(session=session, actor=_finance(directory), team_id=team.id, code="CC-4100")
    for bad in ("-x", "a" * 41, "CC;DROP", "<b>"):
        with pytest.raises(ValidationError):
            cost_centers.set_cost_center(session=session, actor=directory.admin, team_id=team.id, code=bad)
    cost_centers.set_cost_center(session=session, actor=directory.admin, team_id=team.id, code="CC-4100")
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "team.cost_center")).all()
    assert json.loads(event.after_json) == {"cost_center": "CC-4100"}


def _seed_month(session, directory) -> int:
    """Random ledger rows in October for Support (two people, a key, prompts) and other teams."""
    rng = random.Random(22)
    support = identity.team_by_name(session, "Support").id
    data = identity.team_by_name(session, "Data").id
    tom = identity.person_by_email(session, "tom.becker@example.com").id
    for index in range(60):
        start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(31 * 24 * 60))
        team = support if index % 3 else data
        spend(
            session,
            team,
            rng.randrange(1, 50_000),
            start,
            model=rng.choice(["gpt-4o-mini", "gpt-4.1-mini"]),
            person_id=tom if index % 2 else None,
            tokens=rng.randrange(1, 5_000),
        )
    # Rows just outside the month belong to no statement of it.
    spend(session, support, 999_999, datetime(2026, 11, 1, tzinfo=UTC))
    spend(session, support, 888_888, datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC))
    return support


def _ledger(session, team_id: int) -> int:
    return int(
        session.exec(
            select(func.sum(UsageRecord.cost_micro)).where(
                UsageRecord.team_id == team_id,
                UsageRecord.occurred_at >= datetime(2026, 10, 1, tzinfo=UTC),
                UsageRecord.occurred_at < datetime(2026, 11, 1, tzinfo=UTC),
            )
        ).one()
    )


def test_a_statement_equals_the_ledger_and_the_spend_page(directory, session, tmp_path):
    finance = _finance(directory)
    support = _seed_month(session, directory)
    config.set_budget(session=session, actor=finance, scope="team", target_id=support, data=BudgetInput(cap_usd="1.50"))
    cost_centers.set_cost_center(session=session, actor=directory.admin, team_id=support, code="CC-4100")
    with pytest.raises(NotFound, match="not closed"):
        statements.statement(session, actor=finance, month=MONTH, team_id=support)
    close.close_month(session=session, actor=finance, month=MONTH)
    # A budget changed after the close does not change the month's statement.
    config.set_budget(session=session, actor=finance, scope="team", target_id=support, data=BudgetInput(cap_usd="9"))
    found = statements.statement(session, actor=finance, month=MONTH, team_id=support)
    ledger = _ledger(session, support)
    assert found.total_micro == ledger
    for section in statements.SECTIONS:
        assert sum(line.cost_micro for line in found.section(section)) == ledger, section
    assert {line.name for line in found.section("person")} >= {"Tom Becker"}
    assert found.budget_micro == 1_500_000 and found.cost_center == "CC-4100"
    assert found.days["not reconciled"] == 31 and not found.ledger_changed_since_close
    # The CSV holds the same figures.
    path = tmp_path / "statement.csv"
    write_file(statements.statement_export(session, actor=finance, month=MONTH, team_id=support), path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert sum(int(r["cost_micro"]) for r in rows if r["section"] == "model") == ledger
    assert {r["name"]: r["cost_usd"] for r in rows if r["section"] == "summary"}["cost center"] == "CC-4100"
    # The Spend page, for the same month and team, shows the same total.
    at = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    at.switch_page("pages/spend.py").run()
    october = next(p for p in reports.recent_months(4) if p.key == MONTH)
    at.selectbox(key="breakdown_month").set_value(october).run()
    at.selectbox(key="breakdown_team").set_value(support).run()
    assert not at.exception and not errors_of(at)
    shown_total = next(m.value for m in at.metric if m.label == f"Total for {MONTH}")
    assert shown_total == money(ledger) == money(found.total_micro)


def test_a_ledger_row_changed_behind_quorums_back_shows_on_the_statement(directory, session):
    finance = _finance(directory)
    support = _seed_month(session, directory)
    close.close_month(session=session, actor=finance, month=MONTH)
    row_id = session.exec(
        select(func.min(UsageRecord.id)).where(
            UsageRecord.team_id == support, UsageRecord.occurred_at >= datetime(2026, 10, 1, tzinfo=UTC)
        )
    ).one()
    session.execute(text("UPDATE usage_record SET cost_micro = cost_micro + 1 WHERE id = :id"), {"id": row_id})
    session.commit()
    found = statements.statement(session, actor=finance, month=MONTH, team_id=support)
    assert found.ledger_changed_since_close
    rows = statements.statement_export(session, actor=finance, month=MONTH, team_id=support).chunks()
    assert b"the ledger changed after the close" in b"".join(rows)


def test_rebuilding_the_roll_ups_after_the_close_leaves_a_statement_as_it_was(directory, session):
    from core.budgets import rollups

    finance = _finance(directory)
    support = _seed_month(session, directory)
    close.close_month(session=session, actor=finance, month=MONTH)
    before = statements.statement(session, actor=finance, month=MONTH, team_id=support)
    rollups.rebuild_rollups(session, actor=SYSTEM, since=None)
    after = statements.statement(session, actor=finance, month=MONTH, team_id=support)
    assert after.lines == before.lines and after.total_micro == _ledger(session, support)
    assert not after.ledger_changed_since_close


def test_the_command_line_closes_a_month_writes_a_statement_and_says_when_a_day_differs(
    directory, session, tmp_path, capsys
):
    from core.cli.main import main
    from core.settings import settings
    from core.simulator.billing import shared_log

    support = _seed_month(session, directory)
    assert main(["finance", "statement", "--month", MONTH, "--team", "Support", "--output", "x.csv"]) == 1
    assert "not closed" in capsys.readouterr().err
    assert main(["finance", "close", "--month", MONTH]) == 0
    out = tmp_path / "statement.csv"
    assert main(["finance", "statement", "--month", MONTH, "--team", "Support", "--output", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sum(int(r["cost_micro"]) for r in rows if r["section"] == "model") == _ledger(session, support)
    # A day with traffic Quorum never sent exits 2 (cron mails it); a closed day is left alone.
    shared_log(settings().simulator_billing_log).add_usage(
        at=datetime(2026, 11, 3, 12, tzinfo=UTC), kind="completions", model="gpt-4o", input_tokens=10, project_id="p"
    )
    capsys.readouterr()
    assert main(["finance", "reconcile", "--from", "2026-10-31", "--to", "2026-11-03"]) == 2
    out_lines = capsys.readouterr().out.splitlines()
    assert out_lines[0].startswith("2026-10-31  closed") and out_lines[-1].startswith("2026-11-03  differences")
    assert main(["finance", "reconcile", "--day", "2026-11-02"]) == 0
    assert main(["finance", "reconcile", "--day", "2026-11-02", "--from", "2026-11-01"]) == 1
    assert main(["finance", "reconcile", "--day", "yesterday"]) == 1
