"""Team keys at the HTTP endpoint: refused when bad, revoked, expired or from elsewhere;
rotation with a grace period; last use and age shown; no key material in audit events."""

from __future__ import annotations

import json
from datetime import timedelta

import openai
import pytest

from core import clock
from core.audit import record as audit
from core.identity import key_auth, keys
from tests.gateway_support import ADMIN, HELLO, MODEL, calls, client, new_key


def test_a_bad_key_gets_401_in_openai_format(server, gateway, session):
    with pytest.raises(openai.AuthenticationError) as caught:
        client(server, "qk_live_" + "x" * 43).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.code == "invalid_api_key"
    assert calls(session) == []


def test_revoked_key_is_refused_at_once(server, gateway, session):
    key = new_key(session)
    c = client(server, key)
    c.chat.completions.create(model=MODEL, messages=HELLO)
    keys.revoke_key(session=session, actor=ADMIN, key_id=key.key_id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        c.chat.completions.create(model=MODEL, messages=HELLO)


def test_expired_key_is_refused(server, gateway, session):
    key = new_key(session, expires_days=1)
    c = client(server, key)
    c.models.list()
    later = clock.now() + timedelta(days=1, seconds=1)
    clock.set_clock(lambda: later)
    with pytest.raises(openai.AuthenticationError, match="expired"):
        c.models.list()


def test_ip_allow_list_is_enforced(server, gateway, session):
    elsewhere = new_key(session, allowed_cidrs="10.0.0.0/8")
    local = new_key(session, allowed_cidrs="127.0.0.1/32, 192.168.0.0/16")
    with pytest.raises(openai.AuthenticationError, match="127.0.0.1"):
        client(server, elsewhere).models.list()
    assert client(server, local).models.list().data
    with pytest.raises(Exception, match="not an IP address"):
        new_key(session, allowed_cidrs="10.0.0.300/8")


def test_rotation_keeps_the_old_key_working_until_the_grace_ends(server, gateway, session):
    old = new_key(session)
    new = keys.rotate_key(session=session, actor=ADMIN, key_id=old.key_id, grace_hours=2)
    assert new.secret != old.secret
    client(server, old).models.list()
    client(server, new).models.list()
    later = clock.now() + timedelta(hours=2, seconds=1)
    clock.set_clock(lambda: later)
    with pytest.raises(openai.AuthenticationError):
        client(server, old).models.list()
    client(server, new).models.list()


def test_a_keys_last_use_is_shown_and_written_at_most_once_a_minute(server, gateway, session):
    key = new_key(session)

    def last_used():
        session.rollback()  # a fresh snapshot: the server wrote in another connection
        return {k.id: k.last_used_at for k in keys.list_keys(session, actor=ADMIN)}[key.key_id]

    assert last_used() is None
    start = clock.now()
    clock.set_clock(lambda: start)
    client(server, key).models.list()
    first = last_used()
    assert first is not None and abs((first.replace(tzinfo=None) - start.replace(tzinfo=None)).total_seconds()) < 1
    soon = start + timedelta(seconds=30)
    clock.set_clock(lambda: soon)
    client(server, key).models.list()
    assert last_used() == first  # a busy key does not write on every call
    later = start + timedelta(seconds=61)
    clock.set_clock(lambda: later)
    client(server, key).models.list()
    assert last_used() > first


def test_key_events_hold_no_key_material(gateway, session):
    key = new_key(session)
    keys.rotate_key(session=session, actor=ADMIN, key_id=key.key_id)
    dumped = json.dumps([e.after for e in audit.recent_events(session, actor=ADMIN, action_prefix="key.")], default=str)
    assert key.prefix not in dumped and key.secret not in dumped and key_auth.hash_key(key.secret) not in dumped


def test_old_keys_carry_an_age_warning(gateway, session):
    key = new_key(session)
    later = clock.now() + timedelta(days=91)
    clock.set_clock(lambda: later)
    [view] = [k for k in keys.list_keys(session, actor=ADMIN) if k.id == key.key_id]
    assert "91 days old" in view.age_warning
