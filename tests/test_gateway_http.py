"""The gateway through its HTTP endpoint, with the official openai SDK as the client."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import httpx
import openai
import pytest
from sqlalchemy import String, Text, select
from sqlmodel import SQLModel

from core import clock
from core.audit import record as audit
from core.budgets import config as budget_config
from core.budgets.pricing import PriceBook, cost_micro
from core.budgets.usage import usage_from_openai
from core.catalog.demo_seed import seed_catalog
from core.gateway import policies
from core.gateway.held import decide
from core.models.budgets import BudgetHold, UsageRecord
from core.permissions import Role
from core.simulator import SimulatorConfig
from tests.gateway_support import (
    ADMIN,
    HELLO,
    MODEL,
    RecordingTransport,
    calls,
    client,
    make_gateway,
    new_key,
    team_id,
    use,
)


def moderation_off(session, team="Support"):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session, team), pii_action="redact", moderation="off"
    )


def ledger(session) -> list[UsageRecord]:
    session.rollback()
    return list(session.exec(select(UsageRecord).order_by(UsageRecord.id)).scalars())


def holds(session) -> int:
    session.rollback()
    return len(session.exec(select(BudgetHold)).all())


def events(session, request_id):
    session.rollback()
    return [
        e
        for e in audit.recent_events(session, actor=ADMIN, limit=200, action_prefix="gateway.")
        if e.target_id == request_id
    ]


# ---- the happy path, audited ---------------------------------------------------------------


def test_chat_call_answers_and_is_audited_with_what_the_client_saw(server, gateway, session):
    key = new_key(session)
    raw = client(server, key).chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers["x-quorum-simulated"] == "true"
    request_id = raw.headers["x-request-id"]
    [event] = events(session, request_id)
    assert event.action == "gateway.call" and event.team_id == team_id(session)
    assert event.after["status"] == "ok" and event.after["http_status"] == 200
    assert event.after["output_tokens"] == completion.usage.completion_tokens
    assert "opening hours" not in json.dumps(event.after)  # never the prompt text
    [row] = calls(session)
    assert (row.request_id, row.key_id, row.status) == (request_id, key.key_id, "ok")


def test_tools_pass_through_and_tool_calls_come_back_unchanged(server, gateway, session, sim):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}},
                    "required": ["order_id"],
                },
            },
        }
    ]
    completion = client(server, new_key(session)).chat.completions.create(
        model=MODEL, messages=HELLO, tools=tools, tool_choice="required"
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup_order" and "order_id" in json.loads(call.function.arguments)
    assert json.loads(sim.bodies("/chat/completions")[-1])["tools"] == tools


def test_embeddings_and_models(server, gateway, session):
    c = client(server, new_key(session))
    result = c.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 1536
    assert MODEL in [m.id for m in c.models.list()]


def test_streaming_returns_chunks_and_records_usage(server, gateway, session):
    stream = client(server, new_key(session)).chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text_out = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text_out and chunks[-1].usage.completion_tokens > 0
    [row] = calls(session)
    assert row.stream and row.status == "ok" and not row.usage_estimated
    assert row.output_tokens == chunks[-1].usage.completion_tokens and row.cost_micro > 0


def test_stream_without_include_usage_gets_no_usage_chunk_but_is_billed(server, gateway, session):
    chunks = list(client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    [row] = calls(session)
    assert row.output_tokens > 0 and not row.usage_estimated


def test_prompt_endpoint_runs_a_catalog_prompt_by_name(server, gateway, session):
    seed_catalog(session)
    key = new_key(session)
    variables = {
        "customer_name": "Ana",
        "customer_id": "C-1001",
        "question": "Where is my parcel?",
        "kb_snippets": [
            {"id": "KB-1", "title": "Shipping", "url": "https://kb.example.com/1", "text": "Parcels ship in 2 days."}
        ],
        "channel": "email",
    }
    response = httpx.post(
        f"{server.base_url}/prompts/support-answer/completions",
        headers={"Authorization": f"Bearer {key.secret}"},
        json={"variables": variables},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]
    [row] = calls(session)
    assert row.prompt_name == "support-answer" and row.endpoint == "prompt" and row.prompt_version == "v1"
    missing = httpx.post(
        f"{server.base_url}/prompts/support-answer/completions",
        headers={"Authorization": f"Bearer {key.secret}"},
        json={"variables": {}},
    )
    assert missing.status_code == 400 and "missing variable" in missing.json()["error"]["message"]
    unknown = httpx.post(
        f"{server.base_url}/prompts/no-such-prompt/completions",
        headers={"Authorization": f"Bearer {key.secret}"},
        json={"variables": {}},
    )
    assert unknown.status_code == 404


# ---- keys ----------------------------------------------------------------------------------


# ---- refusals ------------------------------------------------------------------------------


def test_a_model_outside_the_allow_list_gets_403(server, gateway, sim, session):
    budget_config.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), allowed_models=[MODEL], lower_max_tokens=False
    )
    c = client(server, new_key(session))
    with pytest.raises(openai.PermissionDeniedError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.code == "model_not_allowed"
    assert [m.id for m in c.models.list()] == [MODEL]
    [row] = calls(session)
    assert (row.status, row.http_status) == ("not_allowed", 403)
    assert sim.bodies("/chat/completions") == [] and ledger(session) == []


def test_a_model_without_a_price_fails_closed(server, gateway, sim, session):
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(server, new_key(session)).chat.completions.create(model="gpt-unpriced-9", messages=HELLO)
    assert caught.value.code == "model_not_priced" and "no price" in caught.value.message
    [row] = calls(session)
    assert (row.status, row.http_status) == ("not_priced", 403)
    assert sim.bodies("/chat/completions") == [] and ledger(session) == []


def test_a_team_at_its_hard_budget_gets_429_and_nothing_is_billed(server, gateway, sim, session):
    moderation_off(session)
    c = client(server, new_key(session))
    first = c.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=50)
    [spent] = ledger(session)
    # The cap is what was spent: the team is exactly at its hard budget.
    budget_config.set_budget(
        session=session,
        actor=ADMIN,
        scope="team",
        target_id=team_id(session),
        data=budget_config.BudgetInput(cap_usd=f"{spent.cost_micro / 1e6:.6f}"),
    )
    with pytest.raises(openai.RateLimitError) as caught:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "And on Sundays?"}])
    assert caught.value.code == "budget_exceeded" and "Over budget" in caught.value.message
    assert [r.status for r in calls(session)] == ["ok", "budget_exceeded"]
    assert calls(session)[1].cost_micro == 0
    [event] = events(session, caught.value.response.headers["x-request-id"])
    assert event.after["http_status"] == 429
    assert len(sim.bodies("/chat/completions")) == 1 and ledger(session) == [spent] and holds(session) == 0
    assert spent.output_tokens == first.usage.completion_tokens


# ---- guardrails ----------------------------------------------------------------------------


def _openai_key() -> str:
    import random
    import string

    rng = random.Random(7)
    alnum = string.ascii_letters + string.digits
    return (
        "sk-"
        + "proj-"
        + "".join(rng.choice(alnum) for _ in range(74))
        + "T3Blbk"
        + "FJ"
        + "".join(rng.choice(alnum) for _ in range(74))
    )


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_an_openai_key_in_a_prompt_is_blocked_and_stored_nowhere(server, gateway, session, sim, capfd):
    secret = _openai_key()
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with pytest.raises(openai.BadRequestError) as caught:
            client(server, new_key(session)).chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"Why does {secret} not work?"}]
            )
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    error = caught.value
    assert error.code == "guardrail_blocked" and error.param == "secret.openai_api_key"
    assert secret not in str(error.body)
    assert all(secret.encode() not in body for _p, body in sim.received)  # never sent upstream
    session.rollback()
    found = []
    for table in SQLModel.metadata.sorted_tables:
        columns = [c.name for c in table.columns if isinstance(c.type, (String, Text))]
        for row in session.execute(table.select()).mappings():
            found += [f"{table.name}.{c}" for c in columns if row[c] and secret[20:60] in str(row[c])]
    assert found == []
    out, err = capfd.readouterr()
    assert secret[20:60] not in "\n".join(capture.lines) + out + err
    [row] = calls(session)
    assert (row.status, row.rule) == ("blocked", "secret.openai_api_key")


def test_a_card_number_is_redacted_before_the_upstream_sees_it(server, gateway, session, sim):
    card = "4111 1111 1111 1111"
    client(server, new_key(session)).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Refund the order paid with {card}, please."}]
    )
    [sent] = sim.bodies("/chat/completions")
    content = json.loads(sent)["messages"][0]["content"]
    assert "4111" not in content and "Refund the order" in content
    for _path, body in sim.received:
        assert b"4111 1111" not in body


def test_moderation_block_names_the_rule(server, gateway, session):
    with pytest.raises(openai.BadRequestError) as caught:
        client(server, new_key(session)).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "I will kill you"}]
        )
    assert caught.value.param.startswith("moderation.")


def test_a_held_request_waits_for_a_lead_then_is_answered(server, gateway, session, directory):
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="hold"
    )
    key = new_key(session)
    headers = {"Authorization": f"Bearer {key.secret}"}
    response = httpx.post(
        f"{server.base_url}/chat/completions",
        headers=headers,
        json={"model": MODEL, "messages": [{"role": "user", "content": "I will kill you"}]},
    )
    assert response.status_code == 202
    held_id = response.json()["id"]
    poll = httpx.get(f"{server.base_url}/held/{held_id}", headers=headers).json()
    assert poll["status"] == "pending" and poll["response"] is None
    other_team = new_key(session, team="Legal")
    assert (
        httpx.get(
            f"{server.base_url}/held/{held_id}", headers={"Authorization": f"Bearer {other_team.secret}"}
        ).status_code
        == 404
    )
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    with pytest.raises(Exception, match="comment"):
        decide(session=session, actor=lead, public_id=held_id, release=True, comment=" ")
    decide(session=session, actor=lead, public_id=held_id, release=True, comment="Quoted from a ticket")
    poll = httpx.get(f"{server.base_url}/held/{held_id}", headers=headers).json()
    assert poll["status"] == "released" and poll["response"]["choices"][0]["message"]["content"]
    assert poll["comment"] == "Quoted from a ticket"


# ---- faults --------------------------------------------------------------------------------


def test_a_429_then_success_is_retried_and_billed_once(server, directory, session):
    sim = RecordingTransport(SimulatorConfig(faults=["429", "ok"], retry_after_s=0.01))
    use(make_gateway(sim))
    moderation_off(session)
    completion = client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO)
    assert len(sim.bodies("/chat/completions")) == 2
    [row] = calls(session)
    assert row.attempts == 2 and row.status == "ok"
    expected = cost_micro(
        PriceBook.from_yaml().price_at(MODEL, clock.now()), usage_from_openai(completion.usage.model_dump())
    )
    assert [u.cost_micro for u in ledger(session)] == [expected] == [row.cost_micro]


def test_500_until_retries_run_out_bills_nothing_and_answers_502(server, directory, session):
    sim = RecordingTransport(SimulatorConfig(faults=["500"] * 3))
    use(make_gateway(sim))
    moderation_off(session)
    with pytest.raises(openai.APIStatusError) as caught:
        client(server, new_key(session)).chat.completions.create(model=MODEL, messages=HELLO)
    assert caught.value.status_code == 502 and "500" in caught.value.message
    assert len(sim.bodies("/chat/completions")) == 3
    assert ledger(session) == [] and holds(session) == 0
    [row] = calls(session)
    assert (row.status, row.http_status, row.cost_micro) == ("upstream_error", 502, 0)


def test_client_leaving_a_stream_midway_still_records_usage(server, gateway, session):
    stream = client(server, new_key(session)).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Tell me a long story about ships"}], stream=True
    )
    first = next(iter(stream))
    assert first.choices
    stream.close()
    deadline = time.monotonic() + 5
    while not calls(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = calls(session)
    assert row.status == "ok" and row.output_tokens > 0 and row.cost_micro > 0


# ---- cache ---------------------------------------------------------------------------------


def test_cache_hit_costs_nothing_and_never_crosses_teams(server, gateway, session, sim):
    support, legal = client(server, new_key(session)), client(server, new_key(session, team="Legal"))
    first = support.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0)
    second = support.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0)
    other = legal.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, temperature=0)
    assert [r.headers["x-quorum-cache"] for r in (first, second, other)] == ["miss", "hit", "miss"]
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(sim.bodies("/chat/completions")) == 2
    rows = calls(session)
    assert [(r.cache_hit, r.cost_micro > 0) for r in rows] == [(False, True), (True, False), (False, True)]
    [event] = events(session, second.headers["x-request-id"])
    assert event.after["cache_hit"] is True and event.after["cost_micro"] == 0


# ---- the ledger and the audit log agree with the client ----------------------------------


def test_usage_rows_and_audit_events_match_what_the_client_saw(server, gateway, session):
    from core.audit import query as audit_query
    from core.budgets import reports

    moderation_off(session)
    key = new_key(session)
    c = client(server, key)
    seen = {}
    for question in ("Opening hours?", "Do you ship to Norway?", "Opening hours?"):  # the third is a cache hit
        raw = c.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": question}], user="customer-17", seed=7
        )
        seen[raw.headers["x-request-id"]] = (raw.parse().usage, raw.headers["x-quorum-cache"])
    embedded = c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="parcel")
    seen[embedded.headers["x-request-id"]] = (embedded.parse().usage, "miss")

    rows = {r.request_id: r for r in ledger(session)}
    assert set(rows) == set(seen)
    book = PriceBook.from_yaml()
    for request_id, (usage, cache_state) in seen.items():
        row = rows[request_id]
        assert (row.input_tokens, row.output_tokens) == (usage.prompt_tokens, getattr(usage, "completion_tokens", 0))
        assert (row.team_id, row.key_id, row.person_id) == (team_id(session), key.key_id, None)
        assert row.cache_hit == (cache_state == "hit")
        expected = (
            0
            if row.cache_hit
            else cost_micro(book.price_at(row.model, row.occurred_at), usage_from_openai(usage.model_dump()))
        )
        assert row.cost_micro == expected
        [event] = events(session, request_id)
        assert (event.after["input_tokens"], event.after["output_tokens"], event.after["cost_micro"]) == (
            row.input_tokens,
            row.output_tokens,
            row.cost_micro,
        )
        assert event.after["cache_hit"] == row.cache_hit
    assert [r.cache_hit for r in rows.values()].count(True) == 1

    # The Spend report and the audit log query see the same calls.
    [support] = [t for t in reports.team_overview(session, actor=ADMIN) if t.team_id == team_id(session)]
    assert support.spent_micro == sum(r.cost_micro for r in rows.values()) > 0
    page = audit_query.search(
        session, actor=ADMIN, filters=audit_query.AuditFilter(action="gateway.call", team_id=team_id(session))
    )
    assert sorted(e.target_id for e in page.events) == sorted(seen)


def test_a_price_override_prices_the_next_call(server, gateway, session):
    from core.budgets import prices

    moderation_off(session)
    c = client(server, new_key(session))
    prices.add_override(
        session=session,
        actor=ADMIN,
        model=MODEL,
        effective_from=clock.now() - timedelta(seconds=1),
        input="100",
        output="100",
        source="contract price",
    )
    completion = c.chat.completions.create(model=MODEL, messages=HELLO)
    [row] = ledger(session)
    assert row.cost_micro == (completion.usage.prompt_tokens + completion.usage.completion_tokens) * 100
    assert calls(session)[0].cost_micro == row.cost_micro


# ---- prompts: applications run approved versions only --------------------------------------


def _prompt_call(server, key, name, **body):
    return httpx.post(
        f"{server.base_url}/prompts/{name}/completions",
        headers={"Authorization": f"Bearer {key.secret}"},
        json={"variables": {}, **body},
    )


def test_an_application_cannot_run_a_draft_or_unapproved_prompt(server, gateway, session, sim):
    seed_catalog(session)
    key = new_key(session)
    # Approved by one of the two leads it needs: no label, so nothing an application may run.
    assert _prompt_call(server, key, "contract-clause-extract").status_code == 404
    # Not labelled 'staging'; asking for a version number does not reach the unapproved v2.
    unlabelled = _prompt_call(server, key, "support-answer", label="staging")
    assert unlabelled.status_code == 404 and "staging" in unlabelled.json()["error"]["message"]
    variables = {
        "customer_name": "Ana",
        "customer_id": "C-1",
        "question": "Where is my parcel?",
        "kb_snippets": [],
        "channel": "email",
    }
    ran = _prompt_call(server, key, "support-answer", variables=variables, version=2)
    assert ran.status_code == 200, ran.text
    assert calls(session)[-1].prompt_version == "v1"
    assert "order number" not in json.loads(sim.bodies("/chat/completions")[-1])["messages"][0]["content"]
    [usage] = ledger(session)
    assert usage.prompt_id is not None and usage.prompt_version_id is not None
