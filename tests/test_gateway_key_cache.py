"""The gateway's short-lived copy of team keys: no database read per call, and still a
revocation that applies at once in the process that made it and within
``KEY_CACHE_TTL_S`` in every other one (another gateway process, another host)."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import openai
import pytest
from sqlalchemy import event, update

from core import clock, db
from core.identity import key_auth, keys
from core.models.keys import ApiKey
from tests.gateway_support import ADMIN, HELLO, MODEL, client, new_key
from tests.scale_out_support import GatewayServer, Simulator
from tests.test_scale_out import governed_team


@pytest.fixture(autouse=True)
def _fresh_copy():
    key_auth.forget_keys()
    yield
    key_auth.forget_keys()


def _key_reads(engine) -> list[str]:
    """Every statement that reads the api_key table from now on (listening on `engine`)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "api_key" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    return seen


def test_a_busy_key_is_read_from_the_database_once_not_per_call(server, gateway, session):
    key = new_key(session)
    c = client(server, key)
    c.chat.completions.create(model=MODEL, messages=HELLO)  # read once, kept
    reads = _key_reads(db.get_engine())
    for _ in range(5):
        c.chat.completions.create(model=MODEL, messages=HELLO)
    assert reads == []


def test_a_revocation_in_this_process_refuses_the_next_call_although_the_key_was_kept(server, gateway, session):
    key = new_key(session)
    c = client(server, key)
    c.chat.completions.create(model=MODEL, messages=HELLO)
    keys.revoke_key(session=session, actor=ADMIN, key_id=key.key_id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        c.chat.completions.create(model=MODEL, messages=HELLO)


def test_a_new_allow_list_applies_to_the_next_call(server, gateway, session):
    key = new_key(session)
    client(server, key).models.list()
    keys.set_allowed_cidrs(session=session, actor=ADMIN, key_id=key.key_id, allowed_cidrs="10.0.0.0/8")
    with pytest.raises(openai.AuthenticationError, match="127.0.0.1"):
        client(server, key).models.list()


def test_a_rotated_key_expires_after_its_grace_although_it_was_kept(server, gateway, session):
    old = new_key(session)
    client(server, old).models.list()
    keys.rotate_key(session=session, actor=ADMIN, key_id=old.key_id, grace_hours=1)
    client(server, old).models.list()  # in its grace period
    later = clock.now() + timedelta(hours=1, seconds=1)
    clock.set_clock(lambda: later)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        client(server, old).models.list()


def test_a_revocation_made_elsewhere_applies_within_the_ttl(server, gateway, session, monkeypatch):
    # Another process revokes: this one's copy is not cleared, so the row must be read again.
    monkeypatch.setattr(key_auth, "KEY_CACHE_TTL_S", 0.3)
    key = new_key(session)
    c = client(server, key)
    c.chat.completions.create(model=MODEL, messages=HELLO)
    with db.write_session() as other:
        other.execute(update(ApiKey).where(ApiKey.id == key.key_id).values(revoked_at=clock.now()))
        other.commit()
    time.sleep(0.35)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        c.chat.completions.create(model=MODEL, messages=HELLO)


def test_made_up_keys_are_not_kept(server, gateway, session):
    new_key(session)
    before = len(key_auth._known)
    for i in range(20):
        answer = httpx.get(f"{server.base_url}/models", headers={"authorization": f"Bearer qk_live_{i:043d}"})
        assert answer.status_code == 401
    assert len(key_auth._known) == before


@pytest.mark.slow
def test_a_gateway_process_refuses_a_key_revoked_from_the_dashboard_within_the_ttl(session, directory):
    upstream = Simulator(latency_ms=1)
    _budget, secret = governed_team(session, cap_micro=1_000_000_000)
    [key_id] = [k.id for k in keys.list_keys(session, actor=ADMIN) if k.label == "scale-out"]
    server = GatewayServer(workers=1, simulator=upstream)

    def status() -> int:
        return httpx.post(
            f"{server.base_url}/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": MODEL, "messages": HELLO},
            timeout=30,
        ).status_code

    try:
        assert status() == 200  # the gateway process now holds the key in its copy
        session.rollback()  # a fresh snapshot: the gateway process wrote since
        keys.revoke_key(session=session, actor=ADMIN, key_id=key_id)  # this process: another one
        revoked = time.monotonic()
        while status() == 200:
            assert time.monotonic() - revoked < key_auth.KEY_CACHE_TTL_S + 2, "the revoked key was still accepted"
            time.sleep(0.1)
        assert [status() for _ in range(3)] == [401, 401, 401]
    finally:
        server.terminate()
        upstream.stop()
