"""The two seams where the gateway meets features built elsewhere: prompts and budgets.

The pipeline only talks to these protocols; core.gateway.adapters fills them with the
prompt catalog (approved versions by label) and budgets (reservations, the usage ledger,
the team's model allow-list and the price book with its overrides).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from core.budgets.usage import Usage
from core.catalog.spec import VersionSpec
from core.permissions import Actor


@dataclass(frozen=True)
class ResolvedPrompt:
    """A prompt version, ready to render."""

    name: str
    version: str  # what identifies the version in logs
    spec: VersionSpec
    cache_ttl_s: int | None = None  # None: the gateway's default TTL
    prompt_id: int | None = None
    version_id: int | None = None


@dataclass(frozen=True)
class BudgetRequest:
    """What a call may cost at most: input bounded offline, output by ``max_output_tokens``."""

    request_id: str
    kind: str  # "chat" | "embeddings" | "responses" | "moderations"
    team_id: int
    model: str
    input_tokens_upper_bound: int
    max_output_tokens: int | None  # None: the caller set no limit
    person_id: int | None = None
    key_id: int | None = None
    prompt_id: int | None = None
    prompt_version_id: int | None = None


@dataclass(frozen=True)
class Reservation:
    id: str
    # The output tokens the budget holds room for; the gateway caps max_tokens to it. None: no cap.
    granted_max_tokens: int | None
    held: Any = None  # the gate's own record of the hold


@dataclass(frozen=True)
class CallOutcome:
    """How a call ended, for the ledger: ``status`` is the gateway's call status."""

    request_id: str
    team_id: int
    model: str
    status: str
    cost_micro: int
    cache_hit: bool = False
    usage_estimated: bool = False
    latency_ms: int = 0


# Work done in the budget admission's transaction, committed with it (the rate-limit count and
# the cache lookup): (connection, granted output tokens or None). An error it raises refuses the call.
AdmissionRead = Callable[[Any, int | None], None]


class PromptSource(Protocol):
    def resolve(
        self,
        name: str,
        label: str | None,
        caller: Actor,
        *,
        application: bool,
        version: int | None = None,
        assignment_key: str | None = None,
    ) -> ResolvedPrompt:
        """The version to run for ``name`` at ``label`` (None: the production label), or the
        numbered ``version`` for a person (never for an application); raises NotFound, or
        PermissionDenied when the caller may not run it. ``assignment_key`` keeps one end
        user on one side of an A/B split."""


class BudgetGate(Protocol):
    def check_model(self, team_id: int, model: str) -> None:
        """Raise ModelNotAllowed (not in the team's allow-list) or ModelNotPriced (no price)."""

    def allowed_models(self, team_id: int) -> list[str]:
        """The models the team may call."""

    def reserve(self, request: BudgetRequest, *, also: AdmissionRead | None = None) -> Reservation:
        """Hold the worst-case cost, or raise BudgetExceeded.

        ``also(connection, granted_max_tokens)``: work to do inside the admission's
        transaction once the call is admitted, committed with it (the gateway's rate-limit
        count and cache lookup: one transaction per call instead of three); an error it raises
        propagates with nothing held. A gate may ignore it; the gateway then does it on its own."""

    def cost_micro(self, reservation: Reservation | None, model: str, usage: Usage) -> int:
        """What the call costs (the price in effect when it was reserved)."""

    def settle(self, session: Session, reservation: Reservation, usage: Usage, outcome: CallOutcome) -> None:
        """Replace the hold by the real cost and write the ledger row into ``session`` (the gateway commits)."""

    def settle_many(self, session: Session, settled: Sequence[tuple[Reservation, Usage, CallOutcome]]) -> None:
        """`settle` for calls written back together (group commit): one update per counter row for all."""

    def release(self, reservation: Reservation, reason: str) -> None:
        """Drop the hold: the call was refused or failed upstream."""
