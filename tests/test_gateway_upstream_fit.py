"""The gateway in front of upstreams that are not OpenAI: moderation where the upstream has
none, what the response cache may answer, and the simulator refusing what it cannot do."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from sqlalchemy import select

from core.audit import record as audit
from core.gateway import moderation, policies
from core.gateway.wiring import set_gateway
from core.guardrails import local_moderation
from core.models.budgets import BudgetHold
from core.permissions import Role
from core.simulator import SimulatorConfig
from tests.gateway_support import ADMIN, HELLO, MODEL, RecordingTransport, calls, client, make_gateway, new_key, team_id


def set_policy(session, *, moderation_action="block", provider=None, cache=None, team="Support"):
    policies.set_team_policy(
        session=session,
        actor=ADMIN,
        team_id=team_id(session, team),
        pii_action="redact",
        moderation=moderation_action,
        moderation_provider=provider,
        cache=cache,
    )


@pytest.fixture
def no_moderation_sim():
    return RecordingTransport(SimulatorConfig(retry_after_s=0.01, serves_moderation=False))


@pytest.fixture
def bare_gateway(no_moderation_sim, directory):
    """A gateway over an OpenAI-compatible upstream without /v1/moderations (vLLM, Ollama)."""
    policies.forget()
    gw = make_gateway(no_moderation_sim)
    set_gateway(gw)
    return gw


# ---- moderation against an upstream that has none ---------------------------------------


def test_default_moderation_against_an_upstream_without_it_is_a_clear_503_not_a_404(
    server, bare_gateway, session, no_moderation_sim
):
    sdk = openai.OpenAI(base_url=server.base_url, api_key=new_key(session).secret)  # default retries
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=HELLO)
    error = caught.value
    assert error.status_code == 503 and error.code == "moderation_unavailable"
    assert "moderation" in error.message and "Team policies" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert [r.status for r in calls(session)] == ["moderation_unavailable"]
    assert no_moderation_sim.bodies("/chat/completions") == []  # the model was not called unmoderated
    # Found out once: the next call does not ask the upstream's moderation again.
    with pytest.raises(openai.APIStatusError):
        sdk.chat.completions.create(model=MODEL, messages=HELLO)
    assert len(no_moderation_sim.bodies("/moderations")) == 1
    health = httpx.get(server.base_url.removesuffix("/v1") + "/healthz").json()
    assert health["upstream_moderation"] == "missing" and "503" in health["warning"]


def test_the_start_up_probe_finds_the_missing_endpoint(bare_gateway, no_moderation_sim):
    assert moderation.probe(bare_gateway.upstream) == moderation.MISSING
    assert bare_gateway.upstream.moderation_endpoint == "missing"


@pytest.mark.parametrize("provider", ["local", "upstream_or_local"])
def test_an_admin_chooses_the_local_check_and_calls_go_through_and_are_still_moderated(
    server, bare_gateway, session, no_moderation_sim, provider
):
    set_policy(session, provider=provider)
    c = client(server, new_key(session))
    assert c.chat.completions.create(model=MODEL, messages=HELLO).choices[0].message.content
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "I will kill you tomorrow"}])
    assert caught.value.code == "guardrail_blocked" and caught.value.param.startswith("moderation.")
    assert len(no_moderation_sim.bodies("/chat/completions")) == 1
    [event] = audit.recent_events(session, actor=ADMIN, action_prefix="team.guardrails")
    assert event.after["moderation_provider"] == provider


def test_the_local_check_is_a_keyword_list_with_openais_categories():
    [flagged, calm] = local_moderation.moderate(["How do I make meth at home", "The weather is lovely today"])
    assert flagged["flagged"] and flagged["categories"]["illicit"]
    assert not calm["flagged"] and set(calm["categories"]) == set(local_moderation.CATEGORIES)


def test_moderation_off_answers_without_moderating(server, bare_gateway, session, no_moderation_sim):
    set_policy(session, moderation_action="off")
    assert client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO).choices
    assert no_moderation_sim.bodies("/moderations") == []


def test_an_unknown_moderation_provider_is_refused(session, directory):
    with pytest.raises(Exception, match="moderation_provider must be one of"):
        set_policy(session, provider="somewhere")


def test_upstream_verdicts_are_cached_by_content(server, gateway, session, sim):
    c = client(server, new_key(session))
    for _ in range(3):
        c.chat.completions.create(model=MODEL, messages=HELLO)  # sampled: each reaches the model
    assert len(sim.bodies("/chat/completions")) == 3
    assert len(sim.bodies("/moderations")) == 1


def test_the_verdict_cache_is_bounded():
    cache = moderation.VerdictCache(size=2)
    for text in ("a", "b", "c"):
        cache.put(cache.key([text]), [{"flagged": False}])
    assert cache.get(cache.key(["a"])) is None and cache.get(cache.key(["c"])) is not None


def test_admins_see_the_missing_moderation_on_home(bare_gateway, session, directory):
    from core.attention import attention_for

    moderation.probe(bare_gateway.upstream)
    [item] = [i for i in attention_for(session, directory.admin)["Gateway"] if "moderation endpoint" in i.title]
    assert item.severity == "error" and "Support" in item.detail
    set_policy(session, moderation_action="off")
    titles = [i.title for i in attention_for(session, directory.admin)["Gateway"]]
    assert "Moderation is off for Support" in titles
    assert attention_for(session, directory.with_role(Role.AUDITOR))["Gateway"] == []


# ---- the response cache answers only what is deterministic, unless the team opts in --------


def _cache_states(server, session, **params) -> list[str]:
    c = client(server, new_key(session))
    return [
        c.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, **params).headers["x-quorum-cache"]
        for _ in range(2)
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"temperature": 1.0}, ["miss", "miss"]),
        ({}, ["miss", "miss"]),  # OpenAI's default temperature is 1
        ({"temperature": 0}, ["miss", "hit"]),
        ({"temperature": 0.7, "seed": 42}, ["miss", "hit"]),
    ],
)
def test_by_default_only_deterministic_requests_are_answered_from_the_cache(server, gateway, session, params, expected):
    assert _cache_states(server, session, **params) == expected


def test_a_team_opts_in_to_caching_everything_or_nothing(server, gateway, session):
    set_policy(session, cache="all")
    assert _cache_states(server, session, temperature=1.0) == ["miss", "hit"]
    set_policy(session, cache="off")
    assert _cache_states(server, session, temperature=0, seed=3) == ["miss", "miss"]


# ---- the simulator refuses what it does not implement; the gateway passes it on ----------


def test_more_than_one_choice_is_refused_before_any_reservation(server, gateway, session, sim):
    """Each of n choices may use the whole output limit; the reservation holds room for one."""
    set_policy(session, moderation_action="off")
    with pytest.raises(openai.BadRequestError) as caught:
        client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO, n=3, max_tokens=50)
    assert caught.value.param == "n" and "one answer per call" in caught.value.message
    assert sim.bodies("/chat/completions") == []
    session.rollback()
    assert session.exec(select(BudgetHold)).all() == []


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"audio": {"voice": "alloy", "format": "wav"}, "modalities": ["text", "audio"]}, "audio"),
    ],
)
def test_the_simulator_refuses_parameters_it_does_not_implement(server, gateway, session, sim, params, param):
    set_policy(session, moderation_action="off")
    with pytest.raises(openai.BadRequestError) as caught:
        client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO, **params)
    assert caught.value.param == param and caught.value.code == "unsupported_parameter"
    assert json.loads(sim.bodies("/chat/completions")[-1])[param] is not None  # the gateway passed it on
    session.rollback()
    assert session.exec(select(BudgetHold)).all() == []
