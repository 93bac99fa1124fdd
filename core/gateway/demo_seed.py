"""The gateway's part of the demo: team keys and a week of calls through the real pipeline.

The calls go through `Gateway.call` on the catalog and budgets, against the in-process
simulator with no latency, so the Observability page and the Spend page's recent days
show gateway traffic: Support's chat, a catalog prompt, embeddings, a cache hit, a
person's playground call, one request blocked by a guardrail and one held for review;
Data's and Marketing's catalog prompts run by their reporting keys. The key's
secret is never printed or kept: the demo does not need it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from core import clock
from core.errors import QuorumError
from core.gateway import policies
from core.gateway.adapters import BudgetsGate, CatalogPromptSource
from core.gateway.pipeline import Caller, Gateway, GatewayRequest, PromptCall
from core.gateway.upstream import CircuitBreaker, Upstream
from core.identity import key_auth, keys
from core.identity import people as identity
from core.permissions import Actor
from core.simulator import SimulatorConfig
from core.simulator.transport import simulated_client

SYSTEM = Actor.system("demo")
QUESTIONS = [
    "Where is my parcel?",
    "Can I change my delivery address?",
    "How do I return a jacket?",
    "Do you ship to Norway?",
    "My invoice shows the wrong VAT number.",
    "What are your opening hours?",
]


def seed_gateway(session: Session) -> None:
    support = identity.team_by_name(session, "Support").id
    key = keys.create_key(session=session, actor=SYSTEM, team_id=support, label="Help desk integration")
    # Flagged requests wait for a governance lead rather than being refused outright.
    policies.set_team_policy(session=session, actor=SYSTEM, team_id=support, pii_action="redact", moderation="hold")
    app = Caller.for_key(key_auth.KeyIdentity(key_id=key.key_id, team_id=support, prefix=key.prefix))
    others = {name: _team_key(session, name) for name in ("Data", "Marketing")}
    tom = identity.actor_for_email(session, "tom.becker@example.com")
    gateway = Gateway(
        upstream=Upstream(
            simulated_client(SimulatorConfig(seed=7), max_retries=0),
            name="simulator",
            simulated=True,
            breaker=CircuitBreaker(),
            seed=7,
        ),
        prompts=CatalogPromptSource(),
        budget=BudgetsGate(),
    )
    session.commit()

    real_now = clock.now()
    previous_clock = clock._now  # noqa: SLF001 - restored below: a test may have fixed the clock
    try:
        for days_ago in range(6, -1, -1):
            moment = real_now - timedelta(days=days_ago, hours=2)
            clock.set_clock(lambda moment=moment: moment)
            for index, question in enumerate(QUESTIONS[days_ago % 3 : days_ago % 3 + 2 + days_ago % 2]):
                _call(
                    gateway,
                    app,
                    GatewayRequest(
                        kind="chat",
                        body={
                            "model": "gpt-4o-mini",
                            "max_tokens": 300,
                            "messages": [{"role": "user", "content": f"{question} (ticket {days_ago * 10 + index})"}],
                        },
                    ),
                )
            _call(
                gateway,
                app,
                GatewayRequest(
                    kind="chat",
                    body={"user": f"customer-{days_ago}"},
                    prompt=PromptCall(
                        name="support-answer",
                        variables={
                            "customer_name": "Ana",
                            "customer_id": f"C-{1000 + days_ago}",
                            "question": "Where is my parcel?",
                            "kb_snippets": [],
                            "channel": "email",
                        },
                    ),
                ),
            )
            _call(
                gateway,
                others["Data"],
                GatewayRequest(
                    kind="chat",
                    body={},
                    prompt=PromptCall(
                        name="sql-explain",
                        variables={
                            "sql": f"SELECT region, sum(amount) FROM orders WHERE day >= current_date - {days_ago + 7} "
                            "GROUP BY region",
                            "dialect": "PostgreSQL",
                            "table_notes": ["orders: one row per order"],
                            "reader_is_technical": days_ago % 2 == 0,
                        },
                    ),
                ),
            )
            if days_ago % 2 == 0:
                _call(
                    gateway,
                    others["Marketing"],
                    GatewayRequest(
                        kind="chat",
                        body={},
                        prompt=PromptCall(
                            name="marketing-copy-review",
                            variables={
                                "copy_text": "Track every parcel in real time, from warehouse to doorstep.",
                                "channel": "email",
                                "max_characters": 0,
                                "brand_voice": ["Plain words", "No superlatives"],
                                "approved_facts": ["Parcel tracking updates every 15 minutes"],
                            },
                        ),
                    ),
                )
        clock.set_clock(lambda: real_now)
        repeated = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTIONS[-1]}]}
        _call(gateway, app, GatewayRequest(kind="chat", body=repeated))
        _call(gateway, app, GatewayRequest(kind="chat", body=repeated))  # answered from the cache
        _call(
            gateway,
            app,
            GatewayRequest(kind="embeddings", body={"model": "text-embedding-3-small", "input": QUESTIONS}),
        )
        _call(
            gateway,
            Caller(actor=tom, team_id=support),
            GatewayRequest(
                kind="chat",
                body={
                    "model": "gpt-4.1-mini",
                    "messages": [{"role": "user", "content": "Draft a friendlier refund reply."}],
                },
            ),
        )
        # An access key pasted into a ticket: blocked, and stored nowhere.
        _call(
            gateway,
            app,
            GatewayRequest(
                kind="chat",
                body={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "Login fails with key AKIA" + "Q3EXAMPLE7DEMO42, why?"}],
                },
            ),
        )
        # A threatening message: held for a governance lead.
        _call(
            gateway,
            app,
            GatewayRequest(
                kind="chat",
                body={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "If my parcel is late again I will kill the courier."}],
                },
            ),
        )
    finally:
        clock.set_clock(previous_clock)


def _team_key(session: Session, team_name: str) -> Caller:
    team = identity.team_by_name(session, team_name).id
    key = keys.create_key(session=session, actor=SYSTEM, team_id=team, label=f"{team_name} reporting")
    return Caller.for_key(key_auth.KeyIdentity(key_id=key.key_id, team_id=team, prefix=key.prefix))


def _call(gateway: Gateway, caller: Caller, request: GatewayRequest) -> None:
    try:
        gateway.call(caller=caller, request=request)
    except QuorumError:
        pass  # blocked and held calls are part of the story; each is logged and audited
