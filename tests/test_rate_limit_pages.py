"""Rate limits on the pages: admins set them on a team's policy; Observability shows the
current window's use against each limit and the 429s by team and key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from core import clock
from core.gateway import policies
from core.gateway.rate_limits import window_start
from core.identity import keys
from core.models.audit import AuditEvent
from core.models.gateway import GatewayCall, RateLimitWindow
from core.permissions import Role
from tests.gateway_support import ADMIN, team_id
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

NOW = datetime(2026, 11, 27, 12, 0, 20, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_now():
    clock.set_clock(lambda: NOW)
    policies.forget()
    yield
    policies.forget()


def _open_team_policies(session, role):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    at.switch_page("pages/budgets.py").run()
    return at


def test_an_admin_sets_a_teams_rate_limits_on_the_page_and_a_bad_value_is_refused(session, directory):
    support = team_id(session)
    at = _open_team_policies(session, Role.ADMIN)
    at.selectbox(key="policy_team").set_value(support).run()
    at.text_input(key=f"rl_key_requests_{support}").set_value("0")
    next(b for b in at.button if b.label == "Save rate limits").click().run()
    assert errors_of(at) == [
        "The requests limit of each key must be at least 1 per window (leave it empty for no limit), not 0."
    ]

    at.text_input(key=f"rl_key_requests_{support}").set_value("60")
    at.text_input(key=f"rl_team_tokens_{support}").set_value("200,000")
    next(b for b in at.button if b.label == "Save rate limits").click().run()
    assert not at.exception and not errors_of(at)
    session.rollback()
    policies.forget()
    limits = policies.team_settings(support, session).rate_limits
    assert (limits.key.requests, limits.key.tokens, limits.team.tokens, limits.person.empty) == (60, None, 200000, True)
    assert session.exec(AuditEvent.__table__.select().where(AuditEvent.action == "team.rate_limits.set")).first()
    again = _open_team_policies(session, Role.ADMIN)
    again.selectbox(key="policy_team").set_value(support).run()
    assert again.text_input(key=f"rl_team_tokens_{support}").value == "200000"  # the form shows what is stored


@pytest.mark.parametrize("role", [Role.FINANCE, Role.AUDITOR])
def test_who_may_not_change_rate_limits_does_not_see_the_form(session, directory, role):
    at = _open_team_policies(session, role)
    assert not at.exception
    assert not [b for b in at.button if b.label == "Save rate limits"]


def test_observability_shows_use_against_the_limits_and_the_429s_by_team_and_key(session, directory):
    support = team_id(session)
    key = keys.create_key(session=session, actor=ADMIN, team_id=support, label="web shop")
    policies.set_rate_limits(
        session=session,
        actor=ADMIN,
        team_id=support,
        limits={"key": {"requests": 10}, "team": {"requests": 100, "tokens": 50000}},
    )
    start = window_start(NOW.timestamp(), 60)
    session.add(
        RateLimitWindow(
            scope="key", team_id=support, subject_id=key.key_id, window_start=start, requests=10, tokens=900
        )
    )
    session.add(
        RateLimitWindow(scope="team", team_id=support, subject_id=support, window_start=start, requests=25, tokens=4000)
    )
    session.add(
        RateLimitWindow(
            scope="team", team_id=support, subject_id=support, window_start=start - 60, requests=99, tokens=1
        )
    )
    for rule in ("rate_limit.requests", "rate_limit.requests", "rate_limit.tokens"):
        session.add(
            GatewayCall(
                request_id=f"req_{uuid.uuid4().hex[:24]}",
                created_at=NOW,
                team_id=support,
                key_id=key.key_id,
                actor=f"key:{key.key_id}",
                endpoint="chat",
                model="gpt-4o-mini",
                status="rate_limited",
                http_status=429,
                rule=rule,
            )
        )
    session.commit()

    at = signed_in(session, EMAIL_BY_ROLE[Role.AUDITOR])
    at.switch_page("pages/observability.py").run()
    assert not at.exception and not errors_of(at)
    uses = at.dataframe[-2].value  # the section is the last on the page
    assert uses[["team", "applies to", "who", "requests", "tokens"]].values.tolist() == [
        ["Support", "team", "Support", "25 / 100", "4,000 / 50,000"],
        ["Support", "key", "web shop", "10 / 10", "900"],
    ]
    refusals = at.dataframe[-1].value
    assert refusals[["team", "key", "on requests", "on tokens"]].values.tolist() == [["Support", "web shop", 2, 1]]
    assert any("resets in 40 s" in c.value for c in at.caption)
