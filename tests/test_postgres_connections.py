"""Pooled PostgreSQL connections the server ended are replaced before anyone uses them, and a
healthy one is handed out without a round trip (core.postgres_engine)."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core import db
from tests.conftest import ON_POSTGRES

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's own connections")


def _backend(connection) -> int:
    return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(url: str, pids: list[int]) -> None:
    """End these server processes from a connection of its own, as a restart or an
    administrator would, and wait until the server has ended them."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the server did not end its connections"
            time.sleep(0.01)


def test_connections_the_server_ended_are_replaced_at_checkout(db_url):
    engine = db.get_engine()
    held = [engine.connect() for _ in range(4)]
    ended = [_backend(connection) for connection in held]
    for connection in held:
        connection.close()  # back to the pool, each still open on the client's side
    _terminate(db_url, ended)

    for _ in range(8):  # every pooled connection is met, and none fails its statement
        with engine.connect() as connection:
            assert _backend(connection) not in ended


def test_a_gateway_call_after_the_server_ended_every_connection_succeeds(db_url, gateway, directory, session):
    from core.gateway.pipeline import Caller, GatewayRequest
    from core.identity import key_auth, keys
    from core.identity.people import team_by_name

    support = team_by_name(session, "Support").id
    key = keys.create_key(session=session, actor=directory.admin, team_id=support, label="app")
    caller = Caller.for_key(key_auth.authenticate(key.secret))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    request = GatewayRequest(kind="chat", body=body)
    gateway.call(caller=caller, request=request)  # the pool now holds connections to the server
    session.close()
    with db.get_engine().connect() as connection:
        ours = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        )
        ended = [_backend(connection), *ours.scalars()]
    _terminate(db_url, ended)

    answer = gateway.call(caller=caller, request=request)
    assert answer.body["choices"][0]["message"]["content"]


def test_a_healthy_connection_is_handed_out_without_a_ping(db_url, monkeypatch):
    engine = db.get_engine()
    with engine.connect() as connection:
        _backend(connection)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi: pings.append(dbapi) or real_ping(dbapi))
    for _ in range(5):
        with engine.connect() as connection:
            _backend(connection)
    assert pings == []

    with engine.connect() as connection:
        ended = [_backend(connection)]
    _terminate(db_url, ended)
    with engine.connect() as connection:
        assert _backend(connection) not in ended
    assert len(pings) == 1  # the ended one was pinged, failed and replaced
