"""Helpers shared by the finance tests: calls through the real gateway on a given instant, and
the simulated provider's view of what it answered."""

from __future__ import annotations

from datetime import UTC, date, datetime

from core import clock
from core.finance.provider_usage import ProviderClient
from core.gateway.pipeline import Caller, GatewayRequest
from core.permissions import Actor, Role
from core.simulator import SimulatorConfig, simulated_client

SYSTEM = Actor.system("test")
DAY = date(2026, 11, 10)
LONG_TEXT = " ".join(f"word{i}" for i in range(600))


def at(day: date, hour: int = 10, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)


def call(gateway, directory, *, when: datetime, model: str = "gpt-4o-mini", text: str = "Where is my parcel?") -> None:
    """One chat call by a prompt engineer of Support, started at ``when``."""
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    clock.set_clock(lambda: when)
    try:
        gateway.call(
            caller=Caller(actor=engineer, team_id=next(iter(engineer.team_ids))),
            request=GatewayRequest(kind="chat", body={"model": model, "messages": [{"role": "user", "content": text}]}),
        )
    finally:
        clock.set_clock(None)


def embed(gateway, directory, *, when: datetime) -> None:
    engineer = directory.with_role(Role.PROMPT_ENGINEER)
    clock.set_clock(lambda: when)
    try:
        gateway.call(
            caller=Caller(actor=engineer, team_id=next(iter(engineer.team_ids))),
            request=GatewayRequest(
                kind="embeddings", body={"model": "text-embedding-3-small", "input": ["one", "two words"]}
            ),
        )
    finally:
        clock.set_clock(None)


def provider_of(sim, **options) -> ProviderClient:
    """The provider's Usage and Costs APIs over the same simulator the gateway called."""
    return ProviderClient(simulated_client(SimulatorConfig(billing=sim.config.billing), max_retries=0), **options)
