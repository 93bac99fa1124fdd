"""Rate limits: requests and tokens per window, per key, team and person, through the real
HTTP routes and the official openai SDK, and exact across two server processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import openai
import pytest
from sqlalchemy import select

from core import clock
from core.budgets import config as budget_config
from core.budgets.tokens import chat_input_tokens_upper_bound
from core.errors import PermissionDenied, ValidationError
from core.gateway import policies, rate_limits
from core.gateway.errors import RateLimited
from core.gateway.pipeline import Caller, GatewayRequest
from core.models.audit import AuditEvent
from core.models.budgets import BudgetHold, BudgetPeriod
from core.models.gateway import RateLimitWindow
from core.permissions import Role
from core.settings import PROJECT_ROOT, reset_settings
from tests.gateway_support import ADMIN, HELLO, MODEL, calls, client, new_key, team_id

# 15 s into a one-minute window: every answer's reset is 45 s away.
AT = datetime(2026, 11, 27, 12, 0, 15, tzinfo=UTC)
BOUND = chat_input_tokens_upper_bound(messages=HELLO)


def moderation_off(session, team="Support"):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session, team), pii_action="redact", moderation="off"
    )


def set_limits(session, **scopes):
    """The Support team's limits, set by an admin."""
    return policies.set_rate_limits(session=session, actor=ADMIN, team_id=team_id(session), limits=scopes)


def ask(sdk, **options):
    return sdk.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, **options)


def test_answers_carry_openais_headers_and_the_limit_answers_429_with_retry_after(server, gateway, session):
    moderation_off(session)
    clock.set_clock(lambda: AT)
    key = new_key(session)
    set_limits(session, key={"requests": 2, "tokens": 1000})
    sdk = client(server, key)

    first = ask(sdk, max_tokens=100).headers
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    assert first["x-ratelimit-reset-requests"] == "45s"
    assert first["x-ratelimit-limit-tokens"] == "1000"
    assert first["x-ratelimit-remaining-tokens"] == str(1000 - BOUND - 100)
    assert first["x-ratelimit-reset-tokens"] == "45s"
    second = ask(sdk, max_tokens=100).headers
    assert second["x-ratelimit-remaining-requests"] == "0"
    assert second["x-ratelimit-remaining-tokens"] == str(1000 - 2 * (BOUND + 100))

    with pytest.raises(openai.RateLimitError) as refused:
        ask(sdk, max_tokens=100)
    error = refused.value
    assert (error.status_code, error.code, error.type, error.param) == (429, "rate_limit_exceeded", "requests", None)
    assert error.body["message"] == (
        f"Rate limit reached for {MODEL} for this key on requests per min (RPM): "
        "Limit 2, Used 2, Requested 1. Please try again in 45s."
    )
    assert error.response.headers["retry-after"] == "45"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in error.response.headers
    assert [(c.status, c.http_status) for c in calls(session)] == [("ok", 200), ("ok", 200), ("rate_limited", 429)]


def test_a_refused_call_counts_in_no_scope_and_the_next_window_starts_from_zero(server, gateway, session):
    moderation_off(session)
    now = [AT]
    clock.set_clock(lambda: now[0])
    key = new_key(session)
    set_limits(session, key={"requests": 5}, team={"requests": 1})
    sdk = client(server, key)
    assert ask(sdk).headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError, match="for the team on requests"):
        ask(sdk)
    session.rollback()
    windows = {(w.scope, w.requests) for w in session.exec(select(RateLimitWindow)).scalars()}
    assert windows == {("team", 1), ("key", 1)}  # the refused call was rolled back in the key's window too
    now[0] = AT.replace(minute=1)
    assert ask(sdk).headers["x-ratelimit-remaining-requests"] == "0"  # the team's: 1 of 1 again


def test_with_a_budget_a_refused_call_holds_nothing_and_a_budget_refusal_counts_no_request(server, gateway, session):
    moderation_off(session)
    clock.set_clock(lambda: AT)
    support = team_id(session)
    budget_config.set_budget(
        session=session, actor=ADMIN, scope="team", target_id=support, data=budget_config.BudgetInput(cap_usd="1000")
    )
    key = new_key(session)
    set_limits(session, key={"requests": 1})
    sdk = client(server, key)
    ask(sdk, max_tokens=10)
    with pytest.raises(openai.RateLimitError):
        ask(sdk, max_tokens=10)
    session.rollback()
    assert session.exec(select(BudgetHold)).all() == []
    [period] = session.exec(select(BudgetPeriod)).scalars().all()
    assert period.reserved_micro == 0 and period.spent_micro > 0

    # A call the budget refuses is not counted against the rate limit.
    set_limits(session, key={"requests": 2})
    budget_config.set_budget(
        session=session,
        actor=ADMIN,
        scope="team",
        target_id=support,
        data=budget_config.BudgetInput(cap_usd="0.000001"),
    )
    with pytest.raises(openai.RateLimitError) as over_budget:
        ask(sdk, max_tokens=10)
    assert over_budget.value.code == "budget_exceeded"
    session.rollback()
    assert session.exec(select(RateLimitWindow.requests).where(RateLimitWindow.scope == "key")).scalars().all() == [1]


def test_tokens_are_counted_at_admission_with_max_tokens_and_too_large_is_not_retried(server, gateway, session):
    moderation_off(session)
    clock.set_clock(lambda: AT)
    key = new_key(session)
    set_limits(session, key={"tokens": BOUND + 150})
    sdk = client(server, key)
    assert ask(sdk, max_tokens=100).headers["x-ratelimit-remaining-tokens"] == "50"
    with pytest.raises(openai.RateLimitError) as refused:
        ask(sdk, max_tokens=100)
    assert refused.value.type == "tokens"
    assert f"Limit {BOUND + 150}, Used {BOUND + 100}, Requested {BOUND + 100}" in refused.value.body["message"]
    assert refused.value.response.headers["retry-after"] == "45"

    retrying = openai.OpenAI(base_url=server.base_url, api_key=key.secret, max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as too_large:
        ask(retrying, max_tokens=1000)
    assert time.monotonic() - started < 2  # no retries: waiting cannot help
    assert too_large.value.body["message"].startswith(
        f"Request too large for {MODEL} for this key on tokens per min (TPM)"
    )
    assert too_large.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in too_large.value.response.headers


def test_a_streamed_answer_carries_the_headers_and_a_stream_is_refused_before_it_starts(server, gateway, session):
    moderation_off(session)
    clock.set_clock(lambda: AT)
    key = new_key(session)
    set_limits(session, key={"requests": 1, "tokens": 5000})
    body = {"model": MODEL, "messages": HELLO, "stream": True, "max_tokens": 50}
    auth = {"authorization": f"Bearer {key.secret}"}
    with httpx.Client(timeout=10) as http:
        streamed = http.post(f"{server.base_url}/chat/completions", json=body, headers=auth)
        refused = http.post(f"{server.base_url}/chat/completions", json=body, headers=auth)
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert streamed.headers["x-ratelimit-remaining-requests"] == "0"
    assert streamed.headers["x-ratelimit-remaining-tokens"] == str(5000 - BOUND - 50)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "45"


def test_team_limits_span_its_keys_and_person_limits_apply_in_the_playground(server, gateway, session, directory):
    moderation_off(session)
    clock.set_clock(lambda: AT)
    first, second = new_key(session), new_key(session)
    set_limits(session, team={"requests": 3}, person={"requests": 1})
    ask(client(server, first))
    ask(client(server, second))
    ask(client(server, first))
    with pytest.raises(openai.RateLimitError, match="for the team"):
        ask(client(server, second))
    with pytest.raises(openai.RateLimitError):
        ask(client(server, first))

    engineer = directory.by_email("tom.becker@example.com")
    support = team_id(session)
    set_limits(session, person={"requests": 1})  # the team's limit lifted: only the person's remains
    request = GatewayRequest(kind="chat", body={"model": MODEL, "messages": HELLO})
    gateway.call(caller=Caller(actor=engineer, team_id=support), request=request)
    with pytest.raises(RateLimited, match="for you on requests"):
        gateway.call(caller=Caller(actor=engineer, team_id=support), request=request)
    assert ask(client(server, first)).http_response.status_code == 200  # keys do not count as the person


def test_the_sdks_own_retry_waits_for_retry_after_and_then_succeeds(server, gateway, session, monkeypatch):
    moderation_off(session)
    window = 4
    monkeypatch.setenv("QUORUM_RATE_LIMIT_WINDOW_S", str(window))
    reset_settings()
    key = new_key(session)
    set_limits(session, key={"requests": 1})
    # One retry: the SDK's own backoff (0.5 s at most before its first retry) would retry
    # inside the same window and fail; only waiting as long as retry-after says reaches the next.
    sdk = openai.OpenAI(base_url=server.base_url, api_key=key.secret, max_retries=1)
    while time.time() % window > 0.3:  # start at the beginning of a window
        time.sleep(0.02)
    window_end = (time.time() // window + 1) * window
    sdk.chat.completions.create(model=MODEL, messages=HELLO)
    started = time.monotonic()
    answer = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    assert answer.http_response.status_code == 200
    assert time.time() >= window_end - 0.05  # answered in the next window
    assert time.monotonic() - started > 1.0
    assert answer.headers["x-ratelimit-remaining-requests"] == "0"
    assert [c.status for c in calls(session)] == ["ok", "rate_limited", "ok"]
    [refused] = [c for c in calls(session) if c.status == "rate_limited"]
    assert refused.rule == "rate_limit.requests"


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"key": {"requests": 0}}, "The requests limit of each key must be at least 1 per window"),
        ({"team": {"tokens": -5}}, "The tokens limit of the whole team must be at least 1 per window"),
        ({"person": {"requests": "ten"}}, "The requests limit of each person must be a whole number, not 'ten'"),
        ({"key": {"tokens": 1.5}}, "The tokens limit of each key must be a whole number, not 1.5"),
        ({"key": {"requests": True}}, "must be a whole number, not True"),
        ({"key": {"requests": 10**13}}, "must be at most 1,000,000,000,000"),
        ({"org": {"requests": 1}}, "Unknown rate-limit scope 'org'; the scopes are key, team and person"),
        ({"key": {"rpm": 1}}, "Unknown rate-limit measure 'rpm'; the measures are requests and tokens"),
        ({"key": 60}, "Rate limits of each key must name requests and/or tokens"),
    ],
)
def test_bad_limit_values_are_refused_with_a_clear_message(session, directory, limits, message):
    with pytest.raises(ValidationError) as refused:
        policies.set_rate_limits(session=session, actor=directory.admin, team_id=team_id(session), limits=limits)
    assert message in str(refused.value)
    assert "rate_limits" not in policies.stored_policy_dict(session, team_id(session))


@pytest.mark.parametrize("role", [Role.FINANCE, Role.GOVERNANCE_LEAD, Role.PROMPT_ENGINEER, Role.AUDITOR])
def test_only_an_admin_changes_rate_limits(session, directory, role):
    with pytest.raises(PermissionDenied):
        policies.set_rate_limits(
            session=session, actor=directory.with_role(role), team_id=team_id(session), limits={"team": {"requests": 1}}
        )
    assert "rate_limits" not in policies.stored_policy_dict(session, team_id(session))


def test_a_change_is_audited_and_editing_the_guardrails_keeps_it(session, directory):
    admin, support = directory.admin, team_id(session)
    policies.set_rate_limits(
        session=session, actor=admin, team_id=support, limits={"key": {"requests": "1,000", "tokens": None}}
    )
    policies.set_team_policy(session=session, actor=admin, team_id=support, pii_action="block", moderation="off")
    settings = policies.team_settings(support, session)
    assert (settings.rate_limits.key.requests, settings.rate_limits.key.tokens) == (1000, None)
    session.rollback()
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "team.rate_limits.set")).scalars().all()
    assert [(json.loads(e.before_json), json.loads(e.after_json), e.actor) for e in events] == [
        ({"rate_limits": {}}, {"rate_limits": {"key": {"requests": 1000}}}, admin.ref)
    ]


def test_duration_is_written_as_openai_writes_it():
    assert [rate_limits.duration(s) for s in (0, 0.02, 1, 8.64, 59.9996, 360, 3600.5)] == [
        "0s",
        "20ms",
        "1s",
        "8.64s",
        "1m0s",
        "6m0s",
        "1h0m0.5s",
    ]


# ---- exact across processes -----------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.http_server_process", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )


@pytest.mark.parametrize("budget", [False, True], ids=["no budget", "team budget"])
def test_the_limit_is_exact_across_two_server_processes(db_url, session, directory, tmp_path, budget):
    moderation_off(session)
    if budget:  # the count rides in the budget admission's transaction
        budget_config.set_budget(
            session=session,
            actor=ADMIN,
            scope="team",
            target_id=team_id(session),
            data=budget_config.BudgetInput(cap_usd="1000"),
        )
    key = new_key(session)
    limit = 20
    set_limits(session, key={"requests": limit})
    # A window of an hour: a burst of a few seconds does not straddle two windows.
    env = {**os.environ, "DATABASE_URL": db_url, "QUORUM_RATE_LIMIT_WINDOW_S": "3600"}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    while 3600 - time.time() % 3600 < 60:
        time.sleep(1)
    ports = [_free_port(), _free_port()]
    with open(tmp_path / "servers.log", "wb") as log:
        servers = [_serve(port, env, log) for port in ports]
        try:
            for port in ports:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, (tmp_path / "servers.log").read_text()
                    time.sleep(0.1)

            def one(i: int) -> int:
                response = httpx.post(
                    f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions",
                    json={"model": MODEL, "messages": HELLO, "max_tokens": 20},
                    headers={"authorization": f"Bearer {key.secret}"},
                    timeout=30,
                )
                return response.status_code

            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(one, range(3 * limit)))
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(10)
    assert statuses.count(200) == limit, (tmp_path / "servers.log").read_text()
    assert statuses.count(429) == 2 * limit
    session.rollback()
    assert session.exec(select(RateLimitWindow.requests).where(RateLimitWindow.scope == "key")).scalars().all() == [
        limit
    ]


def test_the_command_line_changes_some_limits_and_keeps_the_others(session, directory, capsys):
    from core.cli.main import main

    assert main(["limits", "set", "--team", "Support", "--key-requests", "60", "--team-tokens", "200000"]) == 0
    assert main(["limits", "set", "--team", "Support", "--key-requests", "none", "--person-requests", "5"]) == 0
    capsys.readouterr()
    assert main(["limits", "show", "--team", "Support"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "rate limits of Support (per minute):",
        "  the whole team  tokens 200,000",
        "  each key        no limit",
        "  each person     requests 5",
    ]
    assert main(["limits", "set", "--team", "Support", "--key-tokens", "-3"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: The tokens limit of each key must be at least 1 per window (leave it empty for no limit), not -3."
    )
