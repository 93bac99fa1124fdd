"""Costs, periods, alerts and the budget services' permissions, audit events and input checks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlmodel import func, select

from core import clock
from core.budgets import alerts, config, periods, prices, reports, reservations, settlement
from core.budgets.config import BudgetInput
from core.budgets.pricing import Usage
from core.errors import NotFound, PermissionDenied, ValidationError
from core.models.audit import AuditEvent
from core.models.budgets import BudgetAlert, UsageRecord
from core.permissions import Role
from tests.budget_support import SYSTEM, counter, make_budget, spend, team_id, use_timezone


def at(moment):
    clock.set_clock(lambda: moment)


def call(session, team, *, model="gpt-4.1", usage=Usage(input_tokens=1_000_000), max_tokens=1000, **extra):
    held = reservations.reserve(
        session=session,
        team_id=team,
        model=model,
        max_tokens=max_tokens,
        input_tokens_upper_bound=usage.input_tokens,
        **extra,
    )
    row = settlement.settle(session=session, reservation=held, usage=usage)
    session.commit()
    return row


# ---- costs -------------------------------------------------------------------------------


def test_cached_input_is_priced_at_the_cached_rate(session, directory):
    at(datetime(2026, 11, 10, tzinfo=UTC))
    row = call(session, team_id(session), usage=Usage(input_tokens=1_000_000, cached_input_tokens=400_000))
    assert row.cost_micro == 600_000 * 2 + 400_000 // 2  # gpt-4.1: $2.00 in, $0.50 cached


def test_reasoning_tokens_are_priced_at_the_output_rate_once(session, directory):
    at(datetime(2026, 11, 10, tzinfo=UTC))
    usage = Usage(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=800_000)
    row = call(session, team_id(session), model="o4-mini", usage=usage, max_tokens=1_000_000)
    assert row.cost_micro == 4_400_000 and row.reasoning_tokens == 800_000


def test_a_price_change_mid_month_prices_each_call_at_its_time(session, directory):
    support = team_id(session)
    prices.add_override(
        session=session,
        actor=directory.admin,
        model="gpt-4.1",
        effective_from="2026-11-15",
        input="1.00",
        cached_input="0.25",
        output="4.00",
        source="negotiated rate",
    )
    at(datetime(2026, 11, 14, 23, 59, tzinfo=UTC))
    before = call(session, support)
    at(datetime(2026, 11, 15, 0, 1, tzinfo=UTC))
    after = call(session, support)
    assert (before.cost_micro, after.cost_micro) == (2_000_000, 1_000_000)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "price.override.add")).one()
    assert event.before_json is None and json.loads(event.after_json)["input_micro_per_1m"] == 1_000_000


def test_price_overrides_need_an_admin_and_valid_numbers(session, directory):
    with pytest.raises(PermissionDenied, match="price.manage"):
        prices.add_override(
            session=session,
            actor=directory.with_role(Role.FINANCE),
            model="gpt-4.1",
            effective_from="2026-12-01",
            input="1",
            source="x",
        )
    with pytest.raises(ValidationError, match="cannot be negative"):
        prices.add_override(
            session=session, actor=directory.admin, model="gpt-4.1", effective_from="2026-12-01", input="-1", source="x"
        )
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == _directory_events(session)


def test_only_an_override_not_yet_in_effect_can_be_removed(session, directory):
    at(datetime(2026, 11, 20, tzinfo=UTC))
    past = prices.add_override(
        session=session,
        actor=directory.admin,
        model="gpt-4.1",
        effective_from="2026-11-01",
        input="1",
        output="4",
        source="x",
    )
    future = prices.add_override(
        session=session,
        actor=directory.admin,
        model="gpt-4.1",
        effective_from="2026-12-01",
        input="1",
        output="3",
        source="y",
    )
    with pytest.raises(ValidationError, match="took effect on 2026-11-01"):
        prices.delete_override(session=session, actor=directory.admin, override_id=past.id)
    prices.delete_override(session=session, actor=directory.admin, override_id=future.id)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "price.override.delete")).one()
    assert json.loads(event.before_json)["output_micro_per_1m"] == 3_000_000 and event.after_json is None


def test_a_model_priced_only_by_an_override_can_be_called(session, directory):
    at(datetime(2026, 11, 20, tzinfo=UTC))
    support = team_id(session)
    with pytest.raises(NotFound, match="No price for model 'acme-large'"):
        call(session, support, model="acme-large")
    prices.add_override(
        session=session,
        actor=directory.admin,
        model="acme-large",
        effective_from="2026-11-01",
        input="3",
        output="9",
        source="vendor quote",
    )
    assert call(session, support, model="acme-large").cost_micro == 3_000_000


# ---- periods -----------------------------------------------------------------------------


def test_the_month_turns_in_the_configured_time_zone(session, directory, monkeypatch):
    use_timezone(monkeypatch, "Europe/Berlin")
    support = team_id(session)
    budget = make_budget(session, support, cap="2.01")  # one call's worst case ($2.008) fits
    at(datetime(2026, 11, 30, 22, 30, tzinfo=UTC))  # 23:30 in Berlin: still November
    call(session, support)
    at(datetime(2026, 11, 30, 23, 30, tzinfo=UTC))  # 00:30 on 1 December in Berlin
    call(session, support)  # would not fit what is left of November ($0.01)
    assert periods.period_key("month", clock.now()) == "2026-12"
    assert counter(session, budget.id, datetime(2026, 11, 15, tzinfo=UTC)).spent_micro == 2_000_000
    assert counter(session, budget.id, clock.now()).spent_micro == 2_000_000
    december = periods.period_at("month", clock.now())
    assert december.start == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_a_budget_with_no_usage_yet_shows_nothing_spent(session, directory):
    at(datetime(2026, 11, 3, tzinfo=UTC))
    make_budget(session, team_id(session, "Legal"), cap="40")
    (row,) = reports.team_overview(session, actor=SYSTEM)[1:2]
    assert row.team == "Legal" and row.spent_micro == 0 and row.crosses_on is None


def test_a_leap_day_belongs_to_february_its_week_and_its_own_day(session, directory):
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert periods.period_key("month", leap) == "2028-02"
    assert periods.period_key("day", leap) == "2028-02-29"
    assert periods.period_key("week", leap) == "2028-W09"
    month = periods.period_at("month", leap)
    assert (month.first_day.day, month.last_day.day) == (1, 29)
    support = team_id(session)
    budget = make_budget(session, support, cap="5", period="day")
    at(leap)
    call(session, support)
    at(datetime(2028, 3, 1, 0, 0, 1, tzinfo=UTC))
    call(session, support)
    assert counter(session, budget.id, leap, "day").spent_micro == 2_000_000


def test_spend_before_a_budget_existed_counts_toward_it(session, directory):
    at(datetime(2026, 11, 20, tzinfo=UTC))
    support = team_id(session)
    spend(session, support, 900_000, datetime(2026, 11, 2, tzinfo=UTC))
    spend(session, support, 5_000_000, datetime(2026, 10, 31, tzinfo=UTC))  # last month: does not count
    make_budget(session, support, cap="1")
    with pytest.raises(reservations.BudgetExceeded, match=r"\$0.100000 left"):
        call(session, support, usage=Usage(input_tokens=100_000))  # $0.20 worst case


def test_forecast_reaches_the_cap_on_the_day_the_run_rate_says(session, directory):
    support = team_id(session)
    at(datetime(2026, 11, 11, tzinfo=UTC))  # 10 days into November
    spend(session, support, 10_000_000, datetime(2026, 11, 5, tzinfo=UTC))  # $1/day
    make_budget(session, support, cap="15")
    row = reports.team_overview(session, actor=SYSTEM)[-1]
    assert row.team == "Support"
    assert row.forecast_micro == 30_000_000 and row.crosses_on.isoformat() == "2026-11-16"
    curve = reports.burndown(session, actor=SYSTEM, team_id=support)
    assert len(curve) == 30 and curve["cumulative_micro"].iloc[-1] == 30_000_000


# ---- alerts ------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    failures_left = 0

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Receiver.failures_left > 0:
            _Receiver.failures_left -= 1
            self.send_response(503)
        else:
            _Receiver.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setattr(alerts, "RETRY_DELAYS", [0.05, 0.1])
    _Receiver.received, _Receiver.failures_left = [], 1
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_alerts_fire_once_per_threshold_per_period_and_reach_the_webhook(session, directory, receiver):
    support = team_id(session)
    budget = make_budget(session, support, cap="10", thresholds=(50, 80, 100), webhook_url=receiver, hard=False)
    at(datetime(2026, 11, 5, tzinfo=UTC))
    for _ in range(6):  # $2 each: 20%, 40%, 60%, 80%, 100%, 120% (a soft budget admits them all)
        call(session, support)
    at(datetime(2026, 12, 5, tzinfo=UTC))
    for _ in range(3):
        call(session, support)
    assert alerts.wait_for_webhooks(10)
    session.rollback()
    stored = session.exec(
        select(BudgetAlert.period_key, BudgetAlert.threshold_pct, BudgetAlert.webhook_status).order_by(BudgetAlert.id)
    ).all()
    assert [(p, t) for p, t, _s in stored] == [("2026-11", 50), ("2026-11", 80), ("2026-11", 100), ("2026-12", 50)]
    assert {s for _p, _t, s in stored} == {"delivered"}
    got = sorted((r["period"], r["threshold_pct"]) for r in _Receiver.received)
    assert got == [("2026-11", 50), ("2026-11", 80), ("2026-11", 100), ("2026-12", 50)]
    assert _Receiver.received[0]["budget_id"] == budget.id and "Support" not in json.dumps(_Receiver.received)


def test_a_webhook_that_never_answers_does_not_block_the_call(session, directory, monkeypatch):
    monkeypatch.setattr(alerts, "RETRY_DELAYS", [1.0, 1.0])  # delivery takes 2 s at least
    support = team_id(session)
    make_budget(session, support, cap="1", webhook_url="http://127.0.0.1:9/nothing-listens")
    at(datetime(2026, 11, 5, tzinfo=UTC))
    started = datetime.now(UTC)
    call(session, support, usage=Usage(input_tokens=300_000))  # 60%
    assert datetime.now(UTC) - started < timedelta(seconds=1.5)
    assert alerts.wait_for_webhooks(10)
    session.rollback()
    assert session.exec(select(BudgetAlert.webhook_status, BudgetAlert.webhook_attempts)).one() == ("failed", 3)


# ---- services: permissions, audit, bad input -----------------------------------------------


def _directory_events(session) -> int:
    return session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action.in_(["team.create", "person.create"]))
    ).one()


@pytest.mark.parametrize("role", [Role.PROMPT_ENGINEER, Role.AUDITOR, Role.GOVERNANCE_LEAD])
def test_only_finance_and_admins_change_budgets_and_policies(session, directory, role):
    actor = directory.with_role(role)
    support = team_id(session)
    with pytest.raises(PermissionDenied, match="budget.manage"):
        config.set_budget(session=session, actor=actor, scope="team", target_id=support, data=BudgetInput(cap_usd="10"))
    with pytest.raises(PermissionDenied, match="budget.manage"):
        config.set_team_policy(session=session, actor=actor, team_id=support, lower_max_tokens=True)
    session.rollback()
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == _directory_events(session)


@pytest.mark.parametrize("role", [Role.FINANCE, Role.PROMPT_ENGINEER, Role.GOVERNANCE_LEAD])
def test_only_admins_change_a_teams_allowed_models(session, directory, role):
    support = team_id(session)
    with pytest.raises(PermissionDenied, match="model.manage"):
        config.set_team_policy(
            session=session, actor=directory.with_role(role), team_id=support, allowed_models=["gpt-4.1"]
        )
    session.rollback()
    assert config.team_policy(session, support).allowed_models == ()
    policy = config.set_team_policy(session=session, actor=directory.admin, team_id=support, allowed_models=["gpt-4.1"])
    assert policy.allowed_models == ("gpt-4.1",)
    # Finance's part of the policy leaves the admins' allow-list as it is.
    policy = config.set_team_policy(
        session=session, actor=directory.with_role(Role.FINANCE), team_id=support, lower_max_tokens=True
    )
    assert (policy.allowed_models, policy.lower_max_tokens) == (("gpt-4.1",), True)


def test_a_policy_change_must_change_something(session, directory):
    with pytest.raises(ValidationError, match="Nothing to change"):
        config.set_team_policy(session=session, actor=directory.admin, team_id=team_id(session))


def test_every_budget_change_is_audited_with_before_and_after(session, directory):
    finance = directory.with_role(Role.FINANCE)
    support = team_id(session)
    budget = config.set_budget(
        session=session, actor=finance, scope="team", target_id=support, data=BudgetInput(cap_usd="100")
    )
    config.set_budget(
        session=session,
        actor=finance,
        scope="team",
        target_id=support,
        data=BudgetInput(cap_usd="150", period="week", hard=False),
    )
    config.set_team_policy(session=session, actor=finance, team_id=support, lower_max_tokens=True)
    config.delete_budget(session=session, actor=finance, budget_id=budget.id)
    events = session.exec(select(AuditEvent).where(AuditEvent.actor == finance.ref).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == [
        "budget.create",
        "budget.update",
        "team.budget_policy.update",
        "budget.delete",
    ]
    update = events[1]
    assert json.loads(update.before_json)["cap_micro"] == 100_000_000
    assert json.loads(update.after_json)["cap_micro"] == 150_000_000 and json.loads(update.after_json)["hard"] is False
    assert json.loads(events[2].after_json) == {"allowed_models": [], "lower_max_tokens": True}
    assert events[3].after_json is None and events[3].team_id == support


@pytest.mark.parametrize(
    "data,message",
    [
        (BudgetInput(cap_usd="-10"), "The budget cap must be more than \\$0"),
        (BudgetInput(cap_usd="10", thresholds=(50, 120)), "Alert threshold 120% is out of range"),
        (BudgetInput(cap_usd="10", thresholds="fifty"), "Alert threshold 'fifty' is not a whole percent"),
        (BudgetInput(), "needs a cap in dollars, in tokens, or both"),
        (BudgetInput(cap_tokens=-5), "token cap must be a whole number above 0"),
        (BudgetInput(cap_usd="10", period="fortnight"), "Unknown budget period 'fortnight'"),
        (BudgetInput(cap_usd="10", webhook_url="ftp://x"), "must be an http\\(s\\) URL"),
        (BudgetInput(cap_usd="10", max_request_usd="0"), "per-request cap must be more than"),
    ],
)
def test_bad_budget_input_is_refused_clearly_and_nothing_is_written(session, directory, data, message):
    with pytest.raises(ValidationError, match=message):
        config.set_budget(session=session, actor=directory.admin, scope="team", target_id=team_id(session), data=data)
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == _directory_events(session)


def test_an_unknown_model_in_the_allow_list_is_refused(session, directory):
    with pytest.raises(ValidationError, match="Unknown model\\(s\\) in the allow-list: gpt-9"):
        config.set_team_policy(
            session=session,
            actor=directory.admin,
            team_id=team_id(session),
            allowed_models=["gpt-4.1", "gpt-9"],
            lower_max_tokens=False,
        )


def test_unknown_targets_are_named(session, directory):
    with pytest.raises(NotFound, match="No team with id 999"):
        make_budget(session, 999)
    with pytest.raises(ValidationError, match="Unknown budget scope 'galaxy'"):
        make_budget(session, 1, scope="galaxy")
    assert session.exec(select(func.count()).select_from(UsageRecord)).one() == 0
