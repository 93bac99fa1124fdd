"""/metrics on the gateway: the counters equal the call log, labels stay few, the token is asked for."""

from __future__ import annotations

import random
import string
import tempfile
from datetime import timedelta

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from core import clock
from core.budgets import config as budget_config
from core.budgets import counters, periods
from core.gateway import policies
from core.models.budgets import BudgetHold
from core.models.gateway import GatewayCall
from core.ops import metrics, names
from core.settings import reset_settings
from tests.gateway_support import ADMIN, HELLO, MODEL, client, new_key, team_id
from tests.ops_support import by, call_log, scrape

OTHER_MODEL = "gpt-4.1-mini"


@pytest.fixture(autouse=True)
def _fresh_counts():
    metrics.reset()
    names.forget()
    yield
    metrics.reset()
    names.forget()


def _root(server) -> str:
    return server.base_url.removesuffix("/v1")


def _openai_key() -> str:
    return "sk-proj-" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(44))


def _traffic(server, session) -> None:
    """Answers on two models, for two teams, and refusals of two kinds."""
    for team in ("Support", "Legal"):
        policies.set_team_policy(
            session=session, actor=ADMIN, team_id=team_id(session, team), pii_action="redact", moderation="off"
        )
    support, finance = client(server, new_key(session)), client(server, new_key(session, "Legal"))
    for _ in range(4):
        support.chat.completions.create(model=MODEL, messages=HELLO)
    for _ in range(2):
        support.chat.completions.create(model=OTHER_MODEL, messages=HELLO, max_tokens=20)
        finance.chat.completions.create(model=MODEL, messages=HELLO)
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            support.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Is {_openai_key()} ok?"}]
            )


def test_the_call_counters_equal_the_call_log(server, gateway, session, directory):
    _traffic(server, session)
    samples = scrape(_root(server))

    logged = call_log(session, GatewayCall.model, GatewayCall.status)
    assert set(dict(logged)) and {s for _t, _m, s in logged} == {"ok", "blocked"}
    counted = by(samples["quorum_gateway_calls_total"], "team", "model", "outcome")
    assert counted == {key: calls for key, (calls, *_rest) in logged.items()}
    per_model = call_log(session, GatewayCall.model)
    tokens = samples["quorum_gateway_tokens_total"]
    assert by({k: v for k, v in tokens.items() if ("kind", "input") in k}, "team", "model") == +_column(per_model, 1)
    assert by({k: v for k, v in tokens.items() if ("kind", "output") in k}, "team", "model") == +_column(per_model, 2)
    assert by(samples["quorum_gateway_cost_microdollars_total"], "team", "model") == +_column(per_model, 3)
    assert by(samples["quorum_gateway_guardrail_blocks_total"], "team") == {("Support",): 3}
    # Every call is in the added-latency histogram, and those that reached the model in the upstream one.
    assert samples["quorum_gateway_added_latency_seconds_count"][()] == 11
    assert sum(samples["quorum_gateway_upstream_latency_seconds_count"].values()) == 8


def _column(grouped, index):
    from collections import Counter

    return Counter({key: values[index] for key, values in grouped.items()})


def test_labels_name_teams_and_never_key_ids_or_people_by_default(server, gateway, session, directory):
    _traffic(server, session)
    labels = {name for series in scrape(_root(server)).values() for key in series for name, _v in key}
    assert labels <= {"team", "model", "prompt", "outcome", "kind", "le"}
    exposition = httpx.get(f"{_root(server)}/metrics").text
    assert "@" not in exposition and "key_id" not in exposition and "person" not in exposition


def test_key_ids_are_a_label_only_when_asked_for(server, gateway, session, directory, monkeypatch):
    monkeypatch.setenv("QUORUM_METRICS_KEY_IDS", "1")
    reset_settings()
    metrics.reset()
    key = new_key(session)
    client(server, key).chat.completions.create(model=MODEL, messages=HELLO)
    calls = scrape(_root(server))["quorum_gateway_calls_total"]
    assert {dict(labels)["key_id"] for labels in calls} == {str(key.key_id)}


def test_a_made_up_model_name_is_counted_as_other(server, gateway, session, directory):
    made_up = "no-such-model-" + "x" * 40
    with pytest.raises(openai.APIStatusError):
        client(server, new_key(session)).chat.completions.create(model=made_up, messages=HELLO)
    calls = scrape(_root(server))["quorum_gateway_calls_total"]
    assert {dict(labels)["model"] for labels in calls} == {"other"}
    assert made_up not in httpx.get(f"{_root(server)}/metrics").text


def test_the_database_gauges_follow_budgets_and_the_audit_chain(server, gateway, session, directory):
    support = team_id(session, "Support")
    budget = budget_config.set_budget(
        session=session,
        actor=ADMIN,
        scope="team",
        target_id=support,
        data=budget_config.BudgetInput(cap_usd="25"),
    )
    client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO)
    month = periods.period_key("month", clock.now())
    # A call in flight holds its room until it settles; one whose process died holds it until it expires.
    for reservation, expires_in in (("in-flight", 600), ("expired", -1)):
        session.add(
            BudgetHold(
                reservation_id=reservation,
                budget_id=budget.id,
                period_key=month,
                amount_micro=7_000,
                amount_tokens=0,
                expires_at=clock.now() + timedelta(seconds=expires_in),
            )
        )
    session.commit()
    samples = scrape(_root(server))
    session.rollback()
    row = counters.read(session, budget.id, month)
    assert row.spent_micro > 0
    assert samples["quorum_budget_headroom_microdollars"] == {(("team", "Support"),): 25_000_000 - row.spent_micro}
    head = session.execute(text("SELECT seq FROM audit_head")).scalar()
    assert samples["quorum_audit_head_seq"][()] == head
    assert samples["quorum_reservations_in_flight"][()] == 1
    assert samples["quorum_reservations_in_flight_microdollars"][()] == 7_000
    assert samples["quorum_database_up"][()] == 1


def test_metrics_ask_for_the_token_when_one_is_set(server, gateway, session, monkeypatch):
    monkeypatch.setenv("QUORUM_METRICS_TOKEN", "scrape-token-for-the-test")
    reset_settings()
    url = f"{_root(server)}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"authorization": "Basic scrape-token-for-the-test"}).status_code == 401
    answer = httpx.get(url, headers={"authorization": "Bearer scrape-token-for-the-test"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "scrape-token-for-the-test" not in answer.text


def test_several_workers_start_from_zero_in_the_directory_they_share(tmp_path, monkeypatch):
    shared = tmp_path / "metrics"
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(shared))
    assert metrics.prepare_multiprocess() == str(shared) and shared.is_dir()
    (shared / "counter_4242.db").write_bytes(b"counts of an earlier run")
    (shared / "notes.txt").write_text("not ours")
    metrics.prepare_multiprocess()
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    made = metrics.prepare_multiprocess()
    assert made.startswith(tempfile.gettempdir()) and metrics.multiprocess_dir() == made


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    given=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60).filter(
        lambda value: TOKEN not in value
    ),
    scheme=st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""]),
)
def test_no_other_authorization_opens_metrics(token_client, given, scheme):
    answer = token_client.get("/metrics", headers={"authorization": f"{scheme} {given}".strip().encode("latin-1")})
    assert answer.status_code == 401 and TOKEN not in answer.text


TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def token_client(monkeypatch):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from core.http.routes import http_routes

    monkeypatch.setenv("QUORUM_METRICS_TOKEN", TOKEN)
    reset_settings()
    return TestClient(Starlette(routes=http_routes()))
