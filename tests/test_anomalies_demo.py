"""The demo's injected incidents are found by the detectors and explained in words."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select

from core import clock
from core.anomalies import alerts, run
from core.db import table_of
from core.finance import reconcile
from core.models.budgets import UsageRecord
from core.models.catalog import Prompt
from core.models.identity import Team
from tests.demo_snapshot import seed_demo


def test_the_demo_opens_true_alerts_on_first_start(session):
    seed_demo()
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM)
    spend = [v for v in views if v.detector == "spend_surge" and v.series.startswith("team:")]
    assert {v.team for v in spend} == {"Marketing", "Legal"}
    legal = next(v for v in spend if v.team == "Legal")
    assert legal.hours == 2  # one incident over two hours is one alert
    assert all("Team " in v.sentence and "its usual for a" in v.sentence for v in spend)
    # Nothing else in the demo's ordinary traffic pages anyone.
    assert {v.team for v in views} <= {"Marketing", "Legal"}


def test_the_demos_incidents_are_on_the_providers_bill_whatever_the_hour(session):
    """Seeded just after midnight, the incidents fall on yesterday, which the demo reconciles:
    the provider's simulated bill holds them at the price book's prices, so the day matches."""
    real_now = datetime.now(UTC)
    just_after_midnight = datetime.combine(real_now.date(), time(0, 30), tzinfo=UTC)
    offset = just_after_midnight - real_now
    clock.set_clock(lambda: datetime.now(UTC) + offset)
    seed_demo()
    session.rollback()
    yesterday = just_after_midnight.date() - timedelta(days=1)
    incidents = session.execute(
        select(func.count()).where(
            table_of(UsageRecord).c.model == "gpt-4.1",
            table_of(UsageRecord).c.occurred_at >= datetime.combine(yesterday, time(20), tzinfo=UTC),
        )
    ).scalar()
    assert incidents > 300  # Marketing's runaway hour is on yesterday's bill
    [day] = reconcile.reconcile_days(actor=run.SYSTEM, first=yesterday, last=yesterday)
    assert day.status == "matched", day.message  # to the reconciliation's rounding tolerance
    assert day.quorum_micro > 30_000_000  # the incident's $38 is in it


def test_a_prompts_alert_names_the_team_that_owns_the_prompt(session):
    """The demo's history calls each prompt from its own team, so an alert about a prompt is
    shown under that team (and reaches that team's webhook)."""
    seed_demo()
    session.rollback()
    owners = dict(session.execute(select(Prompt.name, Team.name).join(Team, Team.id == Prompt.team_id)).all())
    prompt_alerts = [v for v in alerts.list_alerts(session, actor=run.SYSTEM) if v.series.startswith("prompt:")]
    assert prompt_alerts
    for view in prompt_alerts:
        named = next(name for name in owners if f"`{name}`" in view.sentence)
        assert view.team == owners[named], view.sentence
