"""A key used from a network it never was: the prefix the gateway records (never the full
address), and the detector on crafted histories: fires once with its sentence, not below
its minimum, not for a young key, not while the network history is itself young."""

from __future__ import annotations

from datetime import timedelta

import openai
import pytest
from sqlalchemy import insert, text

from core import db
from core.anomalies import alerts, run
from core.anomalies.tuning import set_sensitivity
from core.budgets import pending_rollups
from core.db import table_of
from core.gateway import policies
from core.gateway.key_networks import network_of
from core.models.anomalies import KeyNetwork
from core.settings import reset_settings
from tests.anomaly_support import HOUR, NOW, TARGET, add_key, at_now, concurrently, team_id, usage
from tests.gateway_support import HELLO, MODEL, client, new_key

HOME = "198.51.100.0/24"
STRANGER = "203.0.113.0/24"


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1:2:3::9", "2001:db8:1::/48"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),  # a dual-stack socket's IPv4 caller
        (" 10.1.2.3 ", "10.1.2.0/24"),
        (None, None),
        ("", None),
        ("not-an-address", None),
        ("203.0.113.77:443", None),  # the HTTP door hands over bare addresses only
        ("999.1.1.1", None),
    ],
)
def test_only_the_network_prefix_is_kept(address, network):
    assert network_of(address) == network


# ---- the detector on crafted data ----------------------------------------------------------


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


@pytest.fixture
def app_kb(session, support):
    return add_key(session, support, "app-kb")


def _networks(rows: list[dict]) -> None:
    with db.write_session() as s:
        s.execute(insert(table_of(KeyNetwork)), rows)
        s.commit()


def _seen(key: int, team: int, network: str, first, calls: int, last=None) -> dict:
    return dict(key_id=key, team_id=team, network=network, first_seen=first, last_seen=last or first, calls=calls)


def _history(support: int, key: int, *, days: int = 41) -> None:
    """`days` days of calls from the home network, up to the hour detected."""
    usage(None, _daily(support, key, days))
    _networks([_seen(key, support, HOME, TARGET - timedelta(days=days), 10_000, TARGET - HOUR)])


def _daily(support: int, key: int, days: int) -> list[dict]:
    return [
        {"hour": TARGET - timedelta(days=d, hours=-1), "team_id": support, "key_id": key, "calls": 50}
        for d in range(1, days + 1)
    ]


def _open(session):
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return [v for v in views if v.detector == "new_network"]


def test_an_established_key_from_a_new_network_fires_once(session, support, app_kb):
    _history(support, app_kb)
    _networks([_seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 7)])
    at_now()
    run.detect(actor=run.SYSTEM)
    [alert] = _open(session)
    assert alert.series == f"key:{app_kb}:network:{STRANGER}"
    assert alert.sentence == (
        "Key `app-kb` (Support) was used from 203.0.113.0/24 in the hour to 03:00 UTC on Tue 24 Nov "
        "(7 calls so far), a network it had not used in its 41 days of calls."
    )
    # Shown to the admins (key use), and detected again later: still one alert.
    assert alerts.DETECTORS["new_network"].concerns == "admin"
    run.detect(actor=run.SYSTEM, now=NOW + 3 * HOUR)
    assert len(_open(session)) == 1


def test_calls_from_a_known_network_do_not_fire(session, support, app_kb):
    _history(support, app_kb)
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_below_the_minimum_of_calls_it_does_not_fire(session, support, app_kb):
    _history(support, app_kb)
    _networks([_seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 2)])
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_sensitivity_raises_the_minimum(session, support, app_kb):
    set_sensitivity(session, actor=run.SYSTEM, detector="new_network", team_id=support, factor=4)
    _history(support, app_kb)
    _networks([_seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 11)])
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []  # 11 calls, under 4 x 3


def test_a_young_key_does_not_fire(session, support, app_kb):
    _history(support, app_kb, days=6)  # calls on 6 days only
    _networks([_seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 50)])
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_right_after_the_networks_began_to_be_recorded_nothing_fires(session, support, app_kb):
    # 41 days of calls, but the networks were recorded only since yesterday (an upgrade).
    usage(session, _daily(support, app_kb, 41))
    _networks(
        [
            _seen(app_kb, support, HOME, TARGET - timedelta(days=1), 500, TARGET - HOUR),
            _seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 50),
        ]
    )
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


def test_a_muted_key_does_not_fire(session, support, app_kb):
    from core.anomalies.tuning import mute

    _history(support, app_kb)
    _networks([_seen(app_kb, support, STRANGER, TARGET + timedelta(minutes=20), 7)])
    at_now()
    mute(session, actor=run.SYSTEM, series=f"key:{app_kb}", until=NOW + 5 * HOUR, reason="office move")
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []


# ---- what the gateway records, through the real HTTP endpoint and the official SDK ----------


def _trust(monkeypatch, proxies: str | None) -> None:
    if proxies is None:
        monkeypatch.delenv("QUORUM_TRUSTED_PROXIES", raising=False)
    else:
        monkeypatch.setenv("QUORUM_TRUSTED_PROXIES", proxies)
    reset_settings()


def _rows(session) -> list[tuple]:
    session.rollback()
    pending_rollups.catch_up(session.connection())  # as the detector reads them: every call folded
    return [
        tuple(r)
        for r in session.execute(
            text("SELECT key_id, team_id, network, calls, first_seen <= last_seen FROM key_network ORDER BY network")
        )
    ]


def _ask(server, key, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return client(server, key, default_headers=headers).chat.completions.create(model=MODEL, messages=HELLO)


def test_concurrent_calls_count_per_network_and_store_only_the_prefix(server, gateway, session, monkeypatch):
    policies.forget()
    _trust(monkeypatch, "127.0.0.1/32")
    key = new_key(session)
    other = new_key(session)
    forwarded = ["203.0.113.7", "203.0.113.200", "2001:db8:5:6::1", "10.9.9.9, 198.51.100.23"]
    concurrently(16, lambda i: _ask(server, other if i % 4 == 3 else key, forwarded[i % 4]))
    rows = _rows(session)
    assert sorted((r[0], r[2], r[3]) for r in rows) == sorted(
        [
            (other.key_id, "198.51.100.0/24", 4),  # the right-most address before the trusted proxy
            (key.key_id, "203.0.113.0/24", 8),  # two addresses, one network
            (key.key_id, "2001:db8:5::/48", 4),
        ]
    )
    assert all(r[4] for r in rows)
    # Nowhere is the full address kept: not in this table, the call log, the calls waiting
    # for their fold (whose prefixes are kept there meanwhile) or the audit log.
    with db.get_engine().connect() as connection:
        for table in ("key_network", "gateway_call", "rollup_pending", "audit_event"):
            dump = " ".join(str(v) for row in connection.execute(text(f"SELECT * FROM {table}")) for v in row)
            for address in ("203.0.113.7", "203.0.113.200", "2001:db8:5:6::1", "198.51.100.23"):
                assert address not in dump, (table, address)


def test_a_network_waits_with_its_call_for_the_fold_as_a_prefix(server, gateway, session, monkeypatch):
    policies.forget()
    _trust(monkeypatch, "127.0.0.1/32")
    key = new_key(session)
    _ask(server, key, "203.0.113.9")
    session.rollback()
    waiting = session.execute(text("SELECT network FROM rollup_pending")).scalars().all()
    assert waiting == ["203.0.113.0/24"]
    assert session.execute(text("SELECT count(*) FROM key_network")).scalar() == 0
    assert [(r[0], r[2], r[3]) for r in _rows(session)] == [(key.key_id, "203.0.113.0/24", 1)]
    assert session.execute(text("SELECT count(*) FROM rollup_pending")).scalar() == 0


def test_without_trusted_proxies_the_socket_address_counts(server, gateway, session, monkeypatch):
    policies.forget()
    _trust(monkeypatch, None)
    key = new_key(session)
    _ask(server, key, "203.0.113.7")  # written by the client itself: proves nothing
    assert [(r[0], r[2], r[3]) for r in _rows(session)] == [(key.key_id, "127.0.0.0/24", 1)]


def test_garbage_forwarded_by_a_trusted_proxy_records_no_network(server, gateway, session, monkeypatch):
    policies.forget()
    _trust(monkeypatch, "127.0.0.1/32")
    key = new_key(session)
    assert _ask(server, key, "not-an-address").choices[0].message.content
    assert _rows(session) == []  # the call is answered and logged, its network unknown


def test_in_process_calls_record_no_network(session, directory, gateway):
    from core.gateway.pipeline import Caller, GatewayRequest

    policies.forget()
    tom = directory.by_email("tom.becker@example.com")
    gateway.call(
        caller=Caller(actor=tom, team_id=team_id(session, "Support")),
        request=GatewayRequest(kind="chat", body={"model": MODEL, "messages": HELLO}),
    )
    assert _rows(session) == []


def test_a_refused_key_leaves_no_network(server, gateway, session, monkeypatch):
    _trust(monkeypatch, None)
    with pytest.raises(openai.AuthenticationError):
        client(server, "qk_not_a_key").chat.completions.create(model=MODEL, messages=HELLO)
    assert _rows(session) == []


# ---- retention: the networks follow the call log's rule -------------------------------------


def test_retention_removes_the_key_from_old_networks_or_deletes_them_as_the_call_log(
    session, directory, support, app_kb
):
    from core.retention import enforce, rules
    from tests.escalation_support import RAFAEL
    from tests.retention_support import Clock, written

    marketing = team_id(session, "Marketing")
    crm = add_key(session, marketing, "crm")
    _networks(
        [
            _seen(app_kb, support, HOME, TARGET - timedelta(days=400), 90, TARGET - timedelta(days=300)),
            _seen(app_kb, support, STRANGER, TARGET - timedelta(days=5), 10, TARGET - HOUR),
            _seen(crm, marketing, HOME, TARGET - timedelta(days=90), 40, TARGET - timedelta(days=60)),
        ]
    )
    lead = directory.by_email(RAFAEL)
    written(rules.set_rule, actor=lead, class_key="usage_rows", period="180d", action="anonymize")
    written(rules.set_rule, actor=lead, class_key="usage_rows", period="30d", action="delete", team_id=marketing)
    Clock(TARGET)
    enforce.enforce(actor=lead)
    # Dated by their last use: the network used an hour ago stays whole; the one unused for
    # 300 days loses its key and prefix; Marketing deletes after 30 days, as its call log.
    assert sorted(_rows(session), key=str) == sorted(
        [(None, support, "", 90, True), (app_kb, support, STRANGER, 10, True)], key=str
    )
