"""Who calls the gateway, and what the gateway knows about one call as it goes.

Shared by the pipeline, the stream and the settle step, so none of them imports another
for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.gateway import cache
from core.gateway.policies import GatewaySettings
from core.gateway.ports import Reservation
from core.guardrails import GuardrailPolicy
from core.permissions import Actor


@dataclass(frozen=True)
class Caller:
    """Who calls: a person (playground, A/B runs) acting for a team, or a team key."""

    actor: Actor
    team_id: int
    key_id: int | None = None
    # The network prefix the call came from (core.gateway.key_networks), never the address;
    # None in process (playground, A/B runs) or when the address is unknown.
    network: str | None = None

    @classmethod
    def for_key(cls, identity, network: str | None = None) -> Caller:
        return cls(actor=identity.actor, team_id=identity.team_id, key_id=identity.key_id, network=network)


@dataclass
class CallState:
    """What the pipeline knows about one call as it goes."""

    request_id: str
    caller: Caller
    kind: str
    started: float
    model: str = ""
    stream: bool = False
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_id: int | None = None
    prompt_version_id: int | None = None
    cache_ttl_s: int | None = None
    sent: dict[str, Any] | None = None  # the (redacted) body as sent upstream
    attempts: int = 0
    simulated: bool = False
    upstream_ms: float = 0.0
    reservation: Reservation | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    use_cache: bool = True
    cache_read: cache.AdmissionLookup | None = None
    settled: bool = False
    response_id: str | None = None  # the Responses API answer's id, for GET /v1/responses/{id}
    # The team's policy, read once when the call starts: the secrets check, the input and
    # output guardrails, moderation, the cache and a stream's settle all apply this one.
    policy: GuardrailPolicy = field(default_factory=GuardrailPolicy)
    gateway_settings: GatewaySettings = field(default_factory=GatewaySettings)
    # The prompt version's compiled escalation rules and the call's variables (core.gateway.escalation).
    escalation: Any = None
    # The version's JSON-schema check of the answer, and its result once read (core.gateway.schema_checks).
    answer_check: Any = None
    answer_valid: bool | None = None
