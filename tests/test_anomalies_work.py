"""Anomaly alerts as work items (states, permissions, audit), mutes, the command line, and
webhooks: retried against a receiver that fails, never holding up detection."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

from core import clock
from core.anomalies import alerts, notify, run
from core.anomalies.tuning import mute
from core.cli.main import main
from core.errors import Conflict, PermissionDenied, ValidationError
from core.permissions import Role
from tests.anomaly_support import NOW, TARGET, add_key, at_now, steady, team_id, usage


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


@pytest.fixture
def surge(session, support):
    """A key whose spend jumps from $0.50 to $41 in the hour to 03:00; detected."""
    key = add_key(session, support, "app-kb")
    usage(
        session, [*steady(support, key), {"hour": TARGET, "team_id": support, "key_id": key, "cost_micro": 41_000_000}]
    )
    at_now()
    return key


def _alert(session, series):
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return next(v for v in views if v.series == series and v.detector == "spend_surge")


def _actions(session, prefix="anomaly."):
    session.rollback()
    return [
        row[0]
        for row in session.execute(text("SELECT action FROM audit_event ORDER BY seq"))
        if row[0].startswith(prefix)
    ]


def test_open_acknowledge_resolve_each_audited(session, directory, surge):
    run.detect(actor=run.SYSTEM)
    alert = _alert(session, f"key:{surge}")
    finance = directory.with_role(Role.FINANCE)
    alerts.acknowledge(session, actor=finance, alert_id=alert.id, note="looking")
    with pytest.raises(Conflict):
        alerts.acknowledge(session, actor=finance, alert_id=alert.id)
    with pytest.raises(ValidationError):
        alerts.resolve(session, actor=finance, alert_id=alert.id, note="  ")
    alerts.resolve(session, actor=finance, alert_id=alert.id, note="a batch job looped; key rotated")
    assert _alert(session, f"key:{surge}").state == "resolved"
    actions = _actions(session)
    assert actions.count("anomaly.alert.open") >= 2  # the key and its team
    assert actions[-2:] == ["anomaly.alert.acknowledge", "anomaly.alert.resolve"]
    with pytest.raises(Conflict):
        alerts.resolve(session, actor=finance, alert_id=alert.id, note="again")


@pytest.mark.parametrize("role", [Role.PROMPT_ENGINEER, Role.AUDITOR])
def test_roles_without_the_right_are_refused_in_core(session, directory, surge, role):
    run.detect(actor=run.SYSTEM)
    alert = _alert(session, f"key:{surge}")
    actor = directory.with_role(role)
    with pytest.raises(PermissionDenied):
        alerts.acknowledge(session, actor=actor, alert_id=alert.id)
    with pytest.raises(PermissionDenied):
        alerts.resolve(session, actor=actor, alert_id=alert.id, note="x")
    with pytest.raises(PermissionDenied):
        run.detect(actor=actor)
    assert _alert(session, f"key:{surge}").state == "open"


def test_home_shows_each_role_its_concerns(session, directory, surge):
    run.detect(actor=run.SYSTEM)
    session.rollback()
    finance = alerts.open_for(session, directory.with_role(Role.FINANCE))
    assert finance and all(item.page == "pages/alerts.py" for item in finance)
    assert any("spent $41.00" in item.detail for item in finance)
    assert alerts.open_for(session, directory.with_role(Role.GOVERNANCE_LEAD)) == []  # spend is finance's
    assert alerts.open_for(session, directory.with_role(Role.PROMPT_ENGINEER)) == []


def test_a_muted_series_raises_nothing_until_its_time(session, directory, surge):
    with pytest.raises(PermissionDenied):
        mute(
            session,
            actor=directory.with_role(Role.PROMPT_ENGINEER),
            series=f"key:{surge}",
            until=NOW + timedelta(days=1),
        )
    with pytest.raises(ValidationError):
        mute(session, actor=directory.admin, series=f"key:{surge}", until=NOW - timedelta(days=1))
    mute(session, actor=directory.admin, series=f"key:{surge}", until=NOW + timedelta(days=1), reason="load test")
    run.detect(actor=run.SYSTEM)
    session.rollback()
    series = {v.series for v in alerts.list_alerts(session, actor=run.SYSTEM)}
    assert f"key:{surge}" not in series and series  # the team's series still fires
    assert "anomaly.series.mute" in _actions(session)


def test_the_command_line_detects_lists_and_resolves(session, surge, capsys):
    assert main(["alerts", "detect"]) == 0
    assert "new alert(s)" in capsys.readouterr().out
    assert main(["alerts", "list"]) == 0
    out = capsys.readouterr().out
    assert "Key `app-kb` (Support) spent $41.00" in out
    first = int(out.split("#", 1)[1].split(" ", 1)[0])
    assert main(["alerts", "resolve", str(first), "--note", "known batch"]) == 0
    assert main(["alerts", "detect"]) == 0
    assert "no hour closed" in capsys.readouterr().out


# ---- webhooks ----------------------------------------------------------------------------


class Receiver:
    """A local webhook receiver: fails the first `failures` posts with 503, then accepts;
    with `hold`, answers only once released."""

    def __init__(self, failures: int = 0, hold: bool = False) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.failures = failures
        self.release = threading.Event()
        if not hold:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.release.wait(10)
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(notify, "RETRY_DELAYS", [0.01, 0.01, 0.01])


def test_a_webhook_is_retried_until_delivered(session, directory, support, surge, fast_retries):
    receiver = Receiver(failures=2)
    try:
        notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url=receiver.url)
        run.detect(actor=run.SYSTEM)
        assert notify.wait_for_webhooks(10)
    finally:
        receiver.stop()
    assert receiver.attempts >= 3
    texts = [body["text"] for body in receiver.bodies]
    assert any("Key `app-kb` (Support) spent $41.00" in t for t in texts)
    assert all(body["type"] == "anomaly.alert" and body["page"] == "pages/alerts.py" for body in receiver.bodies)


def test_a_slow_receiver_never_holds_up_detection(session, directory, support, surge, fast_retries):
    receiver = Receiver(hold=True)
    try:
        notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=receiver.url)
        result = run.detect(actor=run.SYSTEM)
        # Detection has committed its alerts while the receiver still holds the first post.
        assert result.opened >= 1 and receiver.bodies == []
        assert _alert(session, f"key:{surge}").state == "open"
        receiver.release.set()
        assert notify.wait_for_webhooks(10)
        assert receiver.bodies
    finally:
        receiver.stop()


def test_webhook_settings_are_admin_only_and_audited_masked(session, directory, support):
    url = "https://hooks.example.com/services/T0/B0/xoxb-secret-token"
    with pytest.raises(PermissionDenied):
        notify.set_webhook(session, actor=directory.with_role(Role.FINANCE), scope="role", ref="finance", url=url)
    with pytest.raises(ValidationError):
        notify.set_webhook(session, actor=directory.admin, scope="role", ref="finance", url="ftp://x")
    notify.set_webhook(session, actor=directory.admin, scope="team", ref=str(support), url=url)
    session.rollback()
    shown = notify.list_webhooks(session, actor=directory.with_role(Role.AUDITOR))
    assert [w.url_masked for w in shown] == ["https://hooks.example.com/…"]
    audit = session.execute(text("SELECT after_json FROM audit_event WHERE action = 'anomaly.webhook.set'")).scalar()
    assert "secret-token" not in audit and "hooks.example.com" in audit
    clock.set_clock(None)
