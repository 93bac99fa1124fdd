"""How each post to a team's or a role's webhook ended, as the background sender records it
after the last attempt: delivered, delivered after retries, refused, unreachable; the URL
masked and no text of the notice kept; the newest posts per setting kept; read by admins
only, on the Alerts page and with `quorum alerts deliveries`."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core import clock, db
from core.anomalies import deliveries, notify, run, waiting
from core.cli.main import main
from core.errors import PermissionDenied
from core.models.gateway import HeldRequest
from core.permissions import Role
from tests.anomaly_support import TARGET, add_key, at_now, steady, usage
from tests.anomaly_support import team_id as team_named
from tests.test_anomalies_work import Receiver
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
HELD_TEXT = "Card 4111 1111 1111 1111 for ACME-internal-7781"


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(notify, "RETRY_DELAYS", [0.01, 0.01, 0.01])
    clock.set_clock(lambda: NOW)
    yield
    clock.set_clock(None)


@pytest.fixture
def support(session, directory):
    return team_named(session, "Support")


def _receiver(request, **kwargs) -> Receiver:
    hook = Receiver(**kwargs)
    request.addfinalizer(hook.stop)
    return hook


def _announce_held(session, team: int, public_id: str = "held_a1") -> None:
    """A held request waiting 40 minutes, announced by the waiting check, posts sent."""
    session.add(
        HeldRequest(
            public_id=public_id,
            request_id=f"req_{public_id}",
            team_id=team,
            kind="output",
            rule="pii-strict",
            status="pending",
            created_at=NOW - timedelta(minutes=40),
            response_json=json.dumps({"content": HELD_TEXT}),
        )
    )
    session.commit()
    with db.write_session() as writer:
        announced, jobs = waiting.announce_waiting(writer, actor=run.SYSTEM, now=NOW)
        writer.commit()
    assert announced == 1
    notify.enqueue(jobs)
    assert notify.wait_for_webhooks(10)


def _posts(session, directory) -> dict[str, deliveries.TargetDeliveries]:
    session.rollback()
    return {t.name: t for t in deliveries.list_deliveries(session, actor=directory.admin)}


def _stored_rows(session) -> list[str]:
    session.rollback()
    return [json.dumps([str(v) for v in row]) for row in session.execute(text("SELECT * FROM webhook_delivery"))]


def test_an_anomaly_alert_delivered_is_recorded_for_the_team_and_the_role(session, directory, support, fast, request):
    key = add_key(session, support, "app-kb")
    surge = {"hour": TARGET, "team_id": support, "key_id": key, "cost_micro": 41_000_000}
    usage(session, [*steady(support, key), surge])
    at_now()
    receiver = _receiver(request)
    # One URL for both settings: posted once, recorded for each.
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=receiver.url)
    run.detect(actor=run.SYSTEM)
    assert notify.wait_for_webhooks(10)
    posts = _posts(session, directory)
    assert set(posts) == {"team Support", "role finance"}
    for target in posts.values():
        assert not target.failing and target.configured
        assert {(d.status, d.attempts, d.detail, d.kind) for d in target.deliveries} == {
            ("delivered", 1, "", "anomaly alert")
        }
        assert any(f"spend_surge, key:{key}" in d.about for d in target.deliveries)
    assert receiver.attempts == len(posts["team Support"].deliveries)  # one post, two records


def test_a_post_that_fails_twice_then_succeeds_is_delivered_after_three_attempts(
    session, directory, support, fast, request
):
    receiver = _receiver(request, failures=2)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="governance_lead", url=receiver.url)
    _announce_held(session, support)
    newest = _posts(session, directory)["role governance_lead"].deliveries[0]
    assert (newest.status, newest.attempts, newest.kind, newest.about) == (
        "delivered",
        3,
        "held request waiting",
        "held request held_a1",
    )
    assert receiver.attempts == 3


def test_a_receiver_that_always_refuses_is_failed_with_its_status_and_flagged(
    session, directory, support, fast, request
):
    receiver = _receiver(request, failures=1000)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    _announce_held(session, support)
    target = _posts(session, directory)["team Support"]
    newest = target.deliveries[0]
    assert (newest.status, newest.detail, newest.attempts) == ("failed", "HTTP 503", 4)  # first try and 3 retries
    assert target.failing
    # The next post gets through: the webhook is no longer flagged.
    receiver.failures = 0
    _announce_held(session, support, public_id="held_b2")
    target = _posts(session, directory)["team Support"]
    assert not target.failing and [d.status for d in target.deliveries] == ["delivered", "failed"]


def test_an_unreachable_receiver_is_failed_with_the_error_class(session, directory, support, fast):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now: every attempt is refused.
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=f"http://127.0.0.1:{port}/x")
    _announce_held(session, support)
    newest = _posts(session, directory)["team Support"].deliveries[0]
    assert (newest.status, newest.detail, newest.attempts) == ("failed", "ConnectError", 4)


def test_nothing_secret_nor_the_notice_text_is_stored(session, directory, support, fast, request):
    receiver = _receiver(request, failures=1000)
    url = receiver.url + "?token=q-secret-991"
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=url)
    _announce_held(session, support)
    rows = _stored_rows(session)
    assert len(rows) == 1
    port = receiver.server.server_address[1]
    assert f'"http://127.0.0.1:{port}/\\u2026"' in rows[0]  # the masked URL, as shown everywhere
    for secret in ("secret-token", "q-secret-991", "/services/", "waited", "pii-strict", HELD_TEXT):
        assert secret not in rows[0], secret


def test_only_admins_read_deliveries(session, directory):
    for role in (Role.FINANCE, Role.GOVERNANCE_LEAD, Role.AUDITOR, Role.PROMPT_ENGINEER):
        with pytest.raises(PermissionDenied):
            deliveries.list_deliveries(session, actor=directory.with_role(role))
    assert deliveries.list_deliveries(session, actor=directory.admin) == []


def test_each_setting_keeps_its_newest_posts_only(session, directory, support, fast, request, monkeypatch):
    monkeypatch.setattr(deliveries, "KEEP_PER_TARGET", 2)
    receiver = _receiver(request)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    other = _receiver(request)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="governance_lead", url=other.url)
    for n in range(4):
        _announce_held(session, support, public_id=f"held_{n}")
    posts = _posts(session, directory)
    abouts = [d.about for d in posts["team Support"].deliveries]
    assert abouts == ["held request held_3", "held request held_2"]
    assert [d.about for d in posts["role governance_lead"].deliveries] == abouts
    assert len(_stored_rows(session)) == 4  # two per setting


def test_a_removed_setting_keeps_its_history_marked_removed(session, directory, support, fast, request):
    receiver = _receiver(request)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    _announce_held(session, support)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url="")
    target = _posts(session, directory)["team Support"]
    assert not target.configured and target.deliveries[0].status == "delivered"


def test_the_alerts_page_shows_admins_the_deliveries_and_flags_a_failing_webhook(
    session, directory, support, fast, request
):
    failing = _receiver(request, failures=1000)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=failing.url)
    _announce_held(session, support)
    clock.set_clock(None)  # the page's own detection runs on today's hours
    at = signed_in(session, EMAIL_BY_ROLE[Role.ADMIN])
    at.switch_page("pages/alerts.py").run()
    assert not at.exception and not errors_of(at)
    warnings = [w.value for w in at.warning]
    assert any("The webhook of team Support is failing" in w and "HTTP 503" in w for w in warnings), warnings
    tables = [df.value for df in at.dataframe if "attempts" in df.value.columns]
    assert len(tables) == 1
    table = tables[0]
    assert list(table["status"]) == ["failed (HTTP 503)"]
    assert list(table["what"]) == ["held request waiting: held request held_a1"]
    assert "secret-token" not in " ".join(table["to"])

    finance = signed_in(session, EMAIL_BY_ROLE[Role.FINANCE])
    finance.switch_page("pages/alerts.py").run()
    assert not finance.exception
    assert not [w for w in finance.warning if "webhook" in w.value]
    assert not [df for df in finance.dataframe if "attempts" in df.value.columns]


def test_the_command_line_prints_each_webhooks_latest_posts(session, directory, support, fast, request, capsys):
    receiver = _receiver(request, failures=1000)
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
    notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=receiver.url)
    _announce_held(session, support)
    assert main(["alerts", "deliveries"]) == 0
    printed = capsys.readouterr().out
    assert "webhook of team Support [FAILING]" in printed
    assert "held request waiting: held request held_a1  failed (HTTP 503), 4 attempt(s)" in printed
    assert "webhook of role finance\n  nothing posted yet" in printed
    assert "secret-token" not in printed
    assert main(["alerts", "deliveries", "--limit", "0"]) != 0
    assert "--limit is between 1 and 100" in capsys.readouterr().err
