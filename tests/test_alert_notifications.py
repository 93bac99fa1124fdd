"""The team and role webhooks beyond anomaly alerts: budget thresholds, versions waiting for
review and held requests waiting for a decision, each announced once, with what and where
only, sent after the commit from the background sender."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core import clock
from core.anomalies import notify, run, waiting
from core.budgets import alerts as budget_alerts
from core.budgets import reservations, settlement
from core.budgets.pricing import Usage
from core.errors import PermissionDenied
from core.models.catalog import Prompt, PromptVersion
from core.models.gateway import HeldRequest
from core.permissions import Role
from core.settings import reset_settings
from tests.budget_support import make_budget, team_id
from tests.test_anomalies_work import Receiver

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
SECRET_PROMPT = "Summarise the merger memo for ACME-internal-7781"


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(notify, "RETRY_DELAYS", [0.01, 0.01, 0.01])
    clock.set_clock(lambda: NOW)


@pytest.fixture
def receiver():
    hook = Receiver(failures=1)
    yield hook
    hook.stop()


def _call(session, team, input_tokens):
    held = reservations.reserve(
        session=session, team_id=team, model="gpt-4.1", max_tokens=1000, input_tokens_upper_bound=input_tokens
    )
    settlement.settle(session=session, reservation=held, usage=Usage(input_tokens=input_tokens))
    session.commit()


def _review(session, team, *, name="faq", waited=timedelta(hours=30), state="in_review"):
    prompt = Prompt(name=name, team_id=team, purpose="answers", risk_tier="low", data_classification="internal")
    session.add(prompt)
    session.flush()
    version = PromptVersion(
        prompt_id=prompt.id,
        number=3,
        content_json=json.dumps({"messages": [{"role": "system", "content": SECRET_PROMPT}]}),
        content_hash="0" * 64,
        author_ref="person:1",
        state=state,
        state_changed_at=NOW - waited,
    )
    session.add(version)
    session.commit()
    return version.id


def _held(session, team, *, waited=timedelta(minutes=40), status="pending", public_id="held_a1"):
    session.add(
        HeldRequest(
            public_id=public_id,
            request_id=f"req_{public_id}",
            team_id=team,
            kind="output",
            rule="pii-strict",
            status=status,
            created_at=NOW - waited,
            response_json=json.dumps({"content": SECRET_PROMPT}),
        )
    )
    session.commit()


def _notices(session):
    session.rollback()
    return sorted(tuple(row) for row in session.execute(text("SELECT kind, ref FROM waiting_notice")))


# ---- budget alerts -------------------------------------------------------------------------


def test_a_budget_alert_reaches_the_team_and_finance_webhooks(session, directory, fast, receiver):
    support = team_id(session)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=receiver.url)
    make_budget(session, support, cap="10", thresholds=(50, 100), hard=False)
    _call(session, support, 1_500_000)  # $3: 30 %, nothing crossed
    _call(session, support, 1_500_000)  # $6: 60 %, the 50 % alert
    assert budget_alerts.wait_for_webhooks(10) and notify.wait_for_webhooks(10)
    budget_posts = [body for body in receiver.bodies if body["type"] == "budget.alert"]
    # One post for both webhooks: they are the same URL here, so it is sent once.
    assert len(budget_posts) == 1
    post = budget_posts[0]
    assert post["threshold_pct"] == 50 and post["team"] == "Support" and post["page"] == "pages/budgets.py"
    said = f"Budget `team:{support}` of team Support reached 50% in period 2026-11: $6.00 spent of $10.00."
    assert post["text"] == said
    assert receiver.attempts == 2  # the first attempt was refused, the retry delivered


def test_a_budget_alert_waits_for_no_receiver(session, directory, fast, monkeypatch):
    monkeypatch.setattr(notify, "RETRY_DELAYS", [1.0, 1.0])
    hook = Receiver(hold=True)
    try:
        support = team_id(session)
        notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=hook.url)
        make_budget(session, support, cap="1", thresholds=(50,), hard=False)
        started = time.monotonic()
        _call(session, support, 300_000)  # 60 %
        assert time.monotonic() - started < 1.0
        assert hook.bodies == []  # the receiver still holds the post; the call is done
        hook.release.set()
        assert budget_alerts.wait_for_webhooks(10) and notify.wait_for_webhooks(10)
        assert [body["type"] for body in hook.bodies] == ["budget.alert"]
    finally:
        hook.stop()


def test_a_budget_alert_rolled_back_is_never_announced(session, directory, fast, receiver):
    support = team_id(session)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=receiver.url)
    make_budget(session, support, cap="1", thresholds=(50,), hard=False)
    held = reservations.reserve(
        session=session, team_id=support, model="gpt-4.1", max_tokens=1000, input_tokens_upper_bound=300_000
    )
    settlement.settle(session=session, reservation=held, usage=Usage(input_tokens=300_000))
    session.rollback()
    assert budget_alerts.wait_for_webhooks(5) and notify.wait_for_webhooks(5)
    assert receiver.bodies == []


# ---- waiting work ---------------------------------------------------------------------------


def test_a_review_waiting_too_long_is_announced_once(session, directory, fast, receiver):
    support = team_id(session)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="governance_lead", url=receiver.url)
    late = _review(session, support, name="faq")
    _review(session, support, name="fresh", waited=timedelta(hours=20))
    _review(session, support, name="done", state="approved")
    first = run.detect(actor=run.SYSTEM, now=NOW)
    assert first.waiting == 1
    second = run.detect(actor=run.SYSTEM, now=NOW + timedelta(hours=1))
    assert second.waiting == 0
    assert notify.wait_for_webhooks(10)
    posts = [body for body in receiver.bodies if body["type"] == "review.waiting"]
    assert [(p["prompt"], p["version"], p["team"], p["waiting_hours"]) for p in posts] == [("faq", 3, "Support", 30.0)]
    assert posts[0]["text"] == "Prompt `faq` version 3 (team Support) has waited 30 h for review."
    assert posts[0]["page"] == "pages/review_queue.py"
    assert SECRET_PROMPT not in json.dumps(receiver.bodies)
    assert _notices(session) == [("review", late)]
    audited = session.execute(text("SELECT after_json FROM audit_event WHERE action = 'anomaly.waiting.notify'")).all()
    assert len(audited) == 1 and str(late) in audited[0][0]


def test_the_review_wait_is_a_setting(session, directory, fast, receiver, monkeypatch):
    monkeypatch.setenv("QUORUM_REVIEW_WAIT_ALERT_H", "48")
    reset_settings()
    try:
        _review(session, team_id(session), waited=timedelta(hours=30))
        assert run.detect(actor=run.SYSTEM, now=NOW).waiting == 0
        assert _notices(session) == []
    finally:
        monkeypatch.delenv("QUORUM_REVIEW_WAIT_ALERT_H")
        reset_settings()


def test_a_held_request_waiting_too_long_is_announced_once_without_its_text(session, directory, fast, receiver):
    support = team_id(session)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    _held(session, support, public_id="held_old")
    _held(session, support, public_id="held_new", waited=timedelta(minutes=10))
    _held(session, support, public_id="held_done", status="released")
    assert run.detect(actor=run.SYSTEM, now=NOW).waiting == 1
    # Later the second one is old enough too; the first is not announced again.
    clock.set_clock(lambda: NOW + timedelta(minutes=10))
    assert run.detect(actor=run.SYSTEM, now=NOW + timedelta(minutes=10)).waiting == 1
    assert notify.wait_for_webhooks(10)
    posts = [body for body in receiver.bodies if body["type"] == "held.waiting"]
    assert [p["held_id"] for p in posts] == ["held_old", "held_new"]
    said = "A request of team Support held by `pii-strict` (output) has waited 40 min for a decision."
    assert posts[0]["text"] == said
    assert posts[0]["page"] == "pages/held_requests.py"
    assert SECRET_PROMPT not in json.dumps(receiver.bodies)


def test_nothing_waiting_is_announced_to_a_team_without_a_webhook(session, directory, fast, receiver):
    support, other = team_id(session), team_id(session, "Marketing")
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(other), url=receiver.url)
    _held(session, support)
    assert run.detect(actor=run.SYSTEM, now=NOW).waiting == 1  # recorded as announced
    assert notify.wait_for_webhooks(5)
    assert receiver.bodies == []


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PROMPT_ENGINEER])
def test_only_the_alert_managers_announce(session, directory, fast, role):
    _held(session, team_id(session))
    with pytest.raises(PermissionDenied):
        waiting.announce_waiting(session, actor=directory.with_role(role), now=NOW)
    assert _notices(session) == []
