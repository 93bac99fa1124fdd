"""/readyz names each check and answers 503 when one fails; /healthz stays liveness."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import text

from core import db
from core.audit import checkpoints
from core.ops import readiness
from core.settings import reset_settings

CHECKS = {"database", "migrations", "upstream", "audit_signing_key"}


@pytest.fixture(autouse=True)
def _no_upstream_answer_yet():
    readiness.forget_upstream()
    yield
    readiness.forget_upstream()


def _ready(server) -> httpx.Response:
    return httpx.get(f"{server.base_url.removesuffix('/v1')}/readyz", timeout=30)


def test_ready_names_every_check(server, gateway):
    answer = _ready(server)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready" and set(body["checks"]) == CHECKS
    assert all(check["ok"] for check in body["checks"].values())


def test_a_schema_behind_the_code_is_not_ready(server, gateway, session):
    head = readiness.head_revision()
    session.execute(text("UPDATE alembic_version SET version_num = '0020'"))
    session.commit()
    try:
        answer = _ready(server)
        assert answer.status_code == 503
        migrations = answer.json()["checks"]["migrations"]
        assert migrations == {"ok": False, "detail": f"the schema is at 0020, this code needs {head}"}
        assert httpx.get(f"{server.base_url.removesuffix('/v1')}/healthz").status_code == 200  # still alive
    finally:
        session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        session.commit()


def test_a_database_that_does_not_answer_is_not_ready(server, gateway, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{closed}/nothing?connect_timeout=2")
    reset_settings()
    try:
        answer = _ready(server)
    finally:
        db.dispose_engines()
    checks = answer.json()["checks"]
    assert answer.status_code == 503 and not checks["database"]["ok"] and not checks["migrations"]["ok"]
    assert "OperationalError" in checks["database"]["detail"]


def test_outside_demo_mode_the_signing_key_is_required(server, gateway, monkeypatch):
    monkeypatch.setenv("QUORUM_DEMO", "0")
    reset_settings()
    answer = _ready(server)
    assert answer.status_code == 503
    assert answer.json()["checks"]["audit_signing_key"]["ok"] is False
    private, _public = checkpoints.new_key_pair()
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", private)
    reset_settings()
    assert _ready(server).json()["checks"]["audit_signing_key"] == {"ok": True, "detail": "set"}
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", "not-a-key")
    reset_settings()
    assert _ready(server).json()["checks"]["audit_signing_key"]["ok"] is False


def _provider(state: str = "closed"):
    return SimpleNamespace(simulated=False, breaker=SimpleNamespace(state=state))


def test_a_provider_that_answered_recently_is_not_asked_again(db_url):
    asked = []
    probe = lambda: asked.append(1) or True  # noqa: E731
    assert readiness.check(upstream=_provider(), probe=probe).ready
    assert readiness.check(upstream=_provider(), probe=probe).ready
    assert len(asked) == 1  # the second answer was recent enough


def test_a_provider_that_does_not_answer_or_keeps_failing_is_not_ready(db_url, monkeypatch):
    def silent() -> bool:
        raise ConnectionError("no route to host")

    result = readiness.check(upstream=_provider(), probe=silent)
    [upstream] = [c for c in result.checks if c.name == "upstream"]
    assert not result.ready and upstream.detail == "the provider has not answered in the last 300 s"
    readiness.upstream_answered()
    assert not readiness.check(upstream=_provider("open"), probe=lambda: True).ready
    monkeypatch.setenv("QUORUM_READY_UPSTREAM_S", "0.001")
    reset_settings()
    import time

    time.sleep(0.01)
    assert not readiness.check(upstream=_provider(), probe=lambda: False).ready  # its answer is old now
