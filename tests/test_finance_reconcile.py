"""Reconciliation of the ledger with the provider's Usage and Costs APIs, against the simulator
through the real openai SDK: a normal day matches; every kind of difference is found and
explained; bypass traffic is found with its size; pages are followed; an unreachable
provider leaves nothing marked reconciled."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from core import clock
from core.errors import Conflict, PermissionDenied
from core.finance import reconcile
from core.finance.provider_usage import ProviderClient, ProviderUnreachable
from core.models.audit import AuditEvent
from core.models.finance import ReconciliationLine, ReconciliationRun
from core.permissions import Role
from core.settings import reset_settings
from core.simulator import SimulatorConfig, simulated_client
from core.simulator.billing import QUORUM_PROJECT_ID, api_key_id
from tests.finance_support import DAY, LONG_TEXT, SYSTEM, at, call, embed, provider_of


@pytest.fixture
def tight(monkeypatch):
    """A tolerance of 20 micro-dollars: the test calls are small, and each call's cost is rounded up once."""
    monkeypatch.setenv("QUORUM_RECONCILE_TOLERANCE_MICRO", "20")
    reset_settings()


def _run(sim, day=DAY, last=None, **options):
    return reconcile.reconcile_days(actor=SYSTEM, first=day, last=last or day, provider=provider_of(sim, **options))


def _lines(session, result):
    session.rollback()
    return session.exec(select(ReconciliationLine).where(ReconciliationLine.run_id == result.run_id)).all()


def test_a_normal_day_matches_to_the_tolerance_and_is_audited(gateway, sim, directory, session, tight):
    for hour in (9, 11, 15):
        call(gateway, directory, when=at(DAY, hour))
    embed(gateway, directory, when=at(DAY, 16))
    [result] = _run(sim)
    assert result.status == "matched", result.message
    assert result.bypass_tokens == 0 and abs(result.quorum_micro - result.provider_micro) <= 20
    lines = _lines(session, result)
    assert {line.model for line in lines} == {"gpt-4o-mini", "text-embedding-3-small"}
    assert all(line.kind == "match" for line in lines)
    chat = next(line for line in lines if line.model == "gpt-4o-mini")
    assert chat.quorum_input_tokens == chat.provider_input_tokens > 0
    assert chat.quorum_output_tokens == chat.provider_output_tokens > 0
    [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "finance.reconcile")).all()
    assert event.target_id == str(result.run_id)


def test_usage_under_another_project_is_bypass_with_its_project_key_and_size(gateway, sim, directory, session, tight):
    call(gateway, directory, when=at(DAY, 9))
    sim.config.billing.add_usage(
        at=at(DAY, 13),
        kind="completions",
        model="gpt-4o-mini",
        input_tokens=120_000,
        output_tokens=30_000,
        project_id="proj_shadow",
        key_id="key_leaked123",
    )
    [result] = _run(sim)
    assert result.status == "differences"
    assert result.bypass_tokens == 150_000
    # 120k input at $0.15 and 30k output at $0.60 per 1M: $0.018 + $0.018.
    assert result.bypass_micro == 36_000
    assert "150,000 tokens bypassed Quorum" in result.message
    lines = _lines(session, result)
    [bypass] = [line for line in lines if line.kind == "bypass"]
    assert (bypass.project_id, bypass.api_key_id) == ("proj_shadow", "key_leaked123")
    assert bypass.quorum_input_tokens == 0 and bypass.provider_input_tokens == 120_000
    assert "proj_shadow" in bypass.explanation and "key_leaked123" in bypass.explanation
    # Quorum's own traffic still matches.
    assert [line.kind for line in lines if line.project_id == QUORUM_PROJECT_ID] == ["match"]


def test_more_usage_under_quorums_own_key_than_quorum_sent_is_bypass(gateway, sim, directory, session, tight):
    call(gateway, directory, when=at(DAY, 9))
    sim.config.billing.add_usage(
        at=at(DAY, 12), kind="completions", model="gpt-4o-mini", input_tokens=5_000, api_key="sk-sim"
    )
    [result] = _run(sim)
    [line] = _lines(session, result)
    assert line.kind == "bypass" and line.provider_input_tokens - line.quorum_input_tokens == 5_000
    assert result.bypass_tokens == 5_000


def test_a_price_the_provider_bills_differently_names_the_model_and_the_date(gateway, sim, directory, session, tight):
    sim.config.billing.set_price(model="gpt-4o-mini", effective_from=DAY, input="1.50", output="6.00")
    for hour in (9, 10):
        call(gateway, directory, when=at(DAY, hour), text=LONG_TEXT)
    [result] = _run(sim)
    [line] = _lines(session, result)
    assert line.kind == "price_book"
    assert line.provider_micro > line.quorum_micro
    assert "gpt-4o-mini" in line.explanation and DAY.isoformat() in line.explanation
    assert "input at $1.5 per 1M tokens (the book: $0.15)" in line.explanation
    assert "output at $6 per 1M tokens (the book: $0.6)" in line.explanation
    # The day before the drift is billed at the list price.
    call(gateway, directory, when=at(DAY - timedelta(days=1), 10), text=LONG_TEXT)
    [before] = _run(sim, DAY - timedelta(days=1))
    assert before.status == "matched"


def test_cached_input_billed_at_another_rate_is_cached_token_pricing(directory, session, tight):
    from core.gateway import policies
    from core.gateway.wiring import set_gateway
    from tests.gateway_support import RecordingTransport, make_gateway

    policies.forget()
    sim = RecordingTransport(SimulatorConfig(cached_prompt_fraction=0.5))
    gateway = make_gateway(sim)
    set_gateway(gateway)
    # The provider stops discounting cached input; input and output stay at the list price.
    sim.config.billing.set_price(
        model="gpt-4o-mini", effective_from=DAY, input="0.15", cached_input="0.15", output="0.60"
    )
    for hour in (9, 10, 11):
        call(gateway, directory, when=at(DAY, hour), text=LONG_TEXT)
    [result] = _run(sim)
    [line] = _lines(session, result)
    assert line.quorum_cached_tokens == line.provider_cached_tokens > 0
    assert line.kind == "cached_pricing", line.explanation
    assert "cached input of gpt-4o-mini at $0.15 per 1M" in line.explanation and "$0.075" in line.explanation
    set_gateway(None)


def test_a_call_in_flight_at_midnight_is_explained_on_both_days(directory, session, tight):
    from core.gateway import policies
    from core.gateway.wiring import set_gateway
    from tests.gateway_support import RecordingTransport, make_gateway

    policies.forget()
    sim = RecordingTransport(SimulatorConfig(latency_ms=400))
    gateway = make_gateway(sim)
    set_gateway(gateway)
    call(gateway, directory, when=at(DAY, 12))
    # Starts 0.1 s before midnight; the provider answers (and bills) after it.
    call(gateway, directory, when=at(DAY, 23, 59, 59, 900_000))
    first, second = _run(sim, DAY, DAY + timedelta(days=1))
    [late] = _lines(session, first)
    [early] = _lines(session, second)
    assert late.kind == "in_flight" and late.quorum_input_tokens > late.provider_input_tokens
    assert early.kind == "in_flight" and early.provider_input_tokens > early.quorum_input_tokens == 0
    assert "midnight" in late.explanation and "midnight" in early.explanation
    assert first.bypass_tokens == second.bypass_tokens == 0
    set_gateway(None)


def test_quorum_counting_more_than_the_provider_with_nothing_in_flight_is_unexplained(
    gateway, sim, directory, session, tight
):
    call(gateway, directory, when=at(DAY, 9))
    sim.config.billing.clear()  # the provider lost (or never billed) the call
    [result] = _run(sim)
    [line] = _lines(session, result)
    assert line.kind == "unexplained" and "no call was in flight" in line.explanation


def test_pages_of_the_provider_are_all_read(gateway, sim, directory, session, tight):
    days = [DAY + timedelta(days=n) for n in range(5)]
    for day in days:
        call(gateway, directory, when=at(day, 10))
    sim.config.billing.add_usage(
        at=at(days[-1], 8), kind="completions", model="gpt-4o-mini", input_tokens=777, project_id="proj_x"
    )
    paged = provider_of(sim, page_size=2)
    whole = provider_of(sim)
    assert paged.days(days[0], days[-1] + timedelta(days=1)) == {
        day: type(value)(value.day, value.usage, value.costs, paged_pages)
        for day, value in whole.days(days[0], days[-1] + timedelta(days=1)).items()
        for paged_pages in [9]  # 3 pages of 2 days for each of the 3 endpoints
    }
    results = reconcile.reconcile_days(actor=SYSTEM, first=days[0], last=days[-1], provider=paged)
    assert [r.status for r in results] == ["matched"] * 4 + ["differences"]
    assert results[-1].bypass_tokens == 777


def test_an_unreachable_provider_is_a_clear_status_and_nothing_is_reconciled(gateway, sim, directory, session):
    call(gateway, directory, when=at(DAY, 9))
    down = ProviderClient(
        simulated_client(SimulatorConfig(billing=sim.config.billing, faults=["500"] * 5), max_retries=0)
    )
    [result] = reconcile.reconcile_days(actor=SYSTEM, first=DAY, last=DAY, provider=down)
    assert result.status == "unreachable" and "HTTP 500" in result.message
    assert _lines(session, result) == []
    [status] = reconcile.day_statuses(session, actor=SYSTEM, first=DAY, last=DAY)
    assert status.status == "unreachable"


def test_without_an_admin_key_the_real_provider_is_not_called(monkeypatch, db_url):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "x" * 20)
    reset_settings()
    from core.settings import settings

    provider = ProviderClient.from_settings(settings())
    with pytest.raises(ProviderUnreachable, match="QUORUM_OPENAI_ADMIN_KEY"):
        provider.day(DAY)
    [result] = reconcile.reconcile_days(actor=SYSTEM, first=DAY, last=DAY, provider=provider)
    assert result.status == "unreachable"


def test_a_malformed_answer_is_unreachable_not_a_match(gateway, sim, directory, session):
    import httpx
    import openai

    def answer(request):
        return httpx.Response(200, json={"object": "list", "data": "nope"})

    client = openai.OpenAI(
        base_url="http://x.local/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(answer))
    )
    with pytest.raises(ProviderUnreachable, match="not a page of buckets"):
        ProviderClient(client).day(DAY)


def test_a_second_server_stops_while_the_first_holds_the_lease(db_url, sim, session):
    engine = session.get_bind()
    reconcile._acquire(engine, "server-a")
    with pytest.raises(Conflict, match="Another server is reconciling"):
        reconcile.reconcile_days(actor=SYSTEM, first=DAY, last=DAY, provider=provider_of(sim), holder="server-b")
    # A crashed holder's lease expires.
    later = clock.now() + reconcile.LEASE + timedelta(seconds=1)
    clock.set_clock(lambda: later)
    [result] = reconcile.reconcile_days(actor=SYSTEM, first=DAY, last=DAY, provider=provider_of(sim), holder="server-b")
    assert result.status == "matched"
    clock.set_clock(None)
    assert session.execute(text("SELECT count(*) FROM finance_lock")).scalar() == 0


def test_only_finance_and_admins_reconcile(directory, sim, session):
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    with pytest.raises(PermissionDenied):
        reconcile.reconcile_days(actor=engineer, first=DAY, last=DAY, provider=provider_of(sim))
    for role in (Role.FINANCE, Role.ADMIN):
        [result] = reconcile.reconcile_days(
            actor=directory.with_role(role), first=DAY, last=DAY, provider=provider_of(sim)
        )
        assert result.status == "matched"
    auditor = directory.with_role(Role.AUDITOR)
    session.rollback()
    assert len(reconcile.day_statuses(session, actor=auditor, first=DAY, last=DAY)) == 1
    with pytest.raises(PermissionDenied):
        reconcile.reconcile_days(actor=auditor, first=DAY, last=DAY, provider=provider_of(sim))
    assert len(session.exec(select(ReconciliationRun)).all()) == 2
    assert api_key_id("sk-secret-value").startswith("key_") and "secret" not in api_key_id("sk-secret-value")
