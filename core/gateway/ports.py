"""The two seams where the gateway meets features built elsewhere: prompts and budgets.

The pipeline only talks to these protocols. The catalog's database workflow provides a
`PromptSource` that resolves approved versions by label; the budgets feature provides a
`BudgetGate` that reserves a worst-case cost before the call, settles the real cost
after it (writing its usage ledger row in the gateway's settle transaction) and owns
each team's model allow-list. Until they are wired in, the implementations below run
the gateway: prompts straight from the YAML files, and budgets that never refuse.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlmodel import Session

from core.budgets.pricing import PriceBook, cost_micro, worst_case_cost_micro
from core.budgets.usage import Usage
from core.catalog.files import load_prompt_file
from core.catalog.spec import VersionSpec, content_hash
from core.errors import BudgetExceeded, NotFound
from core.permissions import Actor


@dataclass(frozen=True)
class ResolvedPrompt:
    """An approved prompt version, ready to render."""

    name: str
    version: str  # what identifies the version in logs (an id or the content hash)
    spec: VersionSpec
    cache_ttl_s: int | None = None  # None: the gateway's default TTL


@dataclass(frozen=True)
class BudgetRequest:
    """What a call may cost at most: input bounded offline, output by ``max_output_tokens``."""

    request_id: str
    team_id: int
    model: str
    input_tokens_upper_bound: int
    max_output_tokens: int | None  # None: the caller set no limit
    actor_ref: str


@dataclass(frozen=True)
class Reservation:
    id: str
    # The output tokens the budget can pay for; the gateway caps max_tokens to it. None: no cap.
    granted_max_tokens: int | None


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


class PromptSource(Protocol):
    def resolve(self, name: str, label: str | None, caller: Actor) -> ResolvedPrompt:
        """The version to run for ``name`` at ``label`` (None: the production label);
        raises NotFound, or PermissionDenied when the caller may not run it."""


class BudgetGate(Protocol):
    def allowed_models(self, team_id: int) -> frozenset[str] | None:
        """The team's model allow-list; None means every priced model."""

    def reserve(self, request: BudgetRequest) -> Reservation:
        """Hold the worst-case cost, or raise BudgetExceeded."""

    def settle(self, session: Session, reservation: Reservation, usage: Usage, outcome: CallOutcome) -> None:
        """Replace the hold by the real cost; add rows to ``session`` only (the gateway commits)."""

    def release(self, reservation: Reservation, reason: str) -> None:
        """Drop the hold: the call was refused, failed or answered from the cache."""


class FilePromptSource:
    """Prompts from ``prompts/<name>.yaml`` as they are on disk (no approval workflow)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._cache: dict[str, tuple[float, ResolvedPrompt]] = {}

    def resolve(self, name: str, label: str | None, caller: Actor) -> ResolvedPrompt:
        path = self.directory / f"{name}.yaml"
        if "/" in name or not path.is_file():
            raise NotFound(f"No prompt named {name!r}")
        mtime = path.stat().st_mtime
        cached = self._cache.get(name)
        if cached and cached[0] == mtime:
            return cached[1]
        _prompt, version = load_prompt_file(path)
        resolved = ResolvedPrompt(name=name, version=content_hash(version)[:12], spec=version)
        self._cache[name] = (mtime, resolved)
        return resolved


class UnlimitedBudgetGate:
    """Never refuses and writes nothing; an optional allow-list per team."""

    def __init__(self, allowed: dict[int, frozenset[str]] | None = None) -> None:
        self.allowed = allowed or {}

    def allowed_models(self, team_id: int) -> frozenset[str] | None:
        return self.allowed.get(team_id)

    def reserve(self, request: BudgetRequest) -> Reservation:
        return Reservation(id=uuid.uuid4().hex, granted_max_tokens=None)

    def settle(self, session: Session, reservation: Reservation, usage: Usage, outcome: CallOutcome) -> None:
        return None

    def release(self, reservation: Reservation, reason: str) -> None:
        return None


@dataclass
class InMemoryBudgetGate:
    """A per-team limit in micro-dollars, held in memory (demos, tests, the benchmark).

    Reserves the worst-case cost, settles the real one; ``settled`` lists every settle.
    """

    limits_micro: dict[int, int]
    prices: PriceBook
    allowed: dict[int, frozenset[str]] = field(default_factory=dict)
    spent_micro: dict[int, int] = field(default_factory=dict)
    held_micro: dict[str, tuple[int, int]] = field(default_factory=dict)
    settled: list[CallOutcome] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allowed_models(self, team_id: int) -> frozenset[str] | None:
        return self.allowed.get(team_id)

    def reserve(self, request: BudgetRequest) -> Reservation:
        from core import clock

        price = self.prices.price_at(request.model, clock.now())
        worst = worst_case_cost_micro(price, request.input_tokens_upper_bound, request.max_output_tokens or 4096)
        with self._lock:
            limit = self.limits_micro.get(request.team_id)
            held = sum(amount for team, amount in self.held_micro.values() if team == request.team_id)
            if limit is not None and self.spent_micro.get(request.team_id, 0) + held + worst > limit:
                raise BudgetExceeded("The team's budget is exhausted for this period")
            reservation = Reservation(id=uuid.uuid4().hex, granted_max_tokens=None)
            self.held_micro[reservation.id] = (request.team_id, worst)
        return reservation

    def settle(self, session: Session, reservation: Reservation, usage: Usage, outcome: CallOutcome) -> None:
        with self._lock:
            self.held_micro.pop(reservation.id, None)
            self.spent_micro[outcome.team_id] = self.spent_micro.get(outcome.team_id, 0) + outcome.cost_micro
            self.settled.append(outcome)

    def release(self, reservation: Reservation, reason: str) -> None:
        with self._lock:
            self.held_micro.pop(reservation.id, None)
            self.released.append(reason)


def call_cost_micro(prices: PriceBook, model: str, usage: Usage) -> int:
    """The call's cost by the price book, 0 when the model has no price (kept out by the allow-list)."""
    from core import clock

    try:
        return cost_micro(prices.price_at(model, clock.now()), usage)
    except NotFound:
        return 0
