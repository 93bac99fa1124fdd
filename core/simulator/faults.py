"""How the simulator misbehaves on purpose: latency and injected faults.

Faults are decided per call, in this order: the scripted ``faults`` sequence first
(one entry per call, so ``["429", "ok"]`` fails the first call and serves the second),
then ``fault_rates`` drawn from a PRNG seeded with ``seed``, else "ok". Scripts make
tests exact; rates make demos look like a real, slightly unreliable upstream.

Kinds:
- ``"429"``: rate limited, with ``Retry-After`` (seconds) and ``retry-after-ms``.
- ``"500"``: server error.
- ``"timeout"``: the reply hangs ``timeout_s`` seconds before coming (a client with a
  shorter read timeout gives up first).
- ``"drop_stream"``: the connection is cut after ``drop_after_chunks`` body parts and no
  ``[DONE]``; a non-streamed reply is cut half-way through its JSON.

One config may be shared by many threads (the HTTP server, parallel test clients):
the call counter and the PRNG are guarded by a lock.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.simulator.billing import QUORUM_PROJECT_ID, BillingLog
from core.simulator.responses import ResponseStore

FAULT_KINDS = ("ok", "429", "500", "timeout", "drop_stream")


@dataclass(frozen=True)
class CallPlan:
    """What happens to one call: its 1-based number, its fault kind, its added latency."""

    number: int
    fault: str
    delay_s: float


@dataclass
class SimulatorConfig:
    """Latency, faults and reply options for one simulator (transport or server)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    faults: Sequence[str] = ()
    fault_rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 1.0
    timeout_s: float = 30.0
    drop_after_chunks: int = 2
    # Share of prompt tokens reported as cached (usage.prompt_tokens_details.cached_tokens).
    cached_prompt_fraction: float = 0.0
    # False: no /v1/moderations (404), like vLLM, Ollama and most OpenAI-compatible servers.
    serves_moderation: bool = True
    # What the provider counts and bills (the organization Usage and Costs APIs): every
    # answered call is added under ``project_id`` and the calling key's id.
    billing: BillingLog = field(default_factory=BillingLog, repr=False, compare=False)
    project_id: str = QUORUM_PROJECT_ID

    # Responses stored for GET /v1/responses/{id} and previous_response_id (bounded).
    stored_responses: ResponseStore = field(default_factory=ResponseStore, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _calls: int = field(default=0, init=False, repr=False, compare=False)
    _seen: Counter[str] = field(default_factory=Counter, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.faults = tuple(str(kind) for kind in self.faults)
        unknown = [k for k in (*self.faults, *self.fault_rates) if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"Unknown fault kind(s) {unknown}; expected one of {FAULT_KINDS}.")
        if any(rate < 0 for rate in self.fault_rates.values()) or sum(self.fault_rates.values()) > 1:
            raise ValueError("Fault rates must be non-negative and add up to at most 1.")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.timeout_s < 0 or self.drop_after_chunks < 0:
            raise ValueError("Latency, jitter, timeout and drop_after_chunks must not be negative.")
        self._rng = random.Random(self.seed)

    @classmethod
    def failing(cls, times: int, fault: str = "429", **options: Any) -> SimulatorConfig:
        """A config whose first ``times`` calls fail with ``fault``, then all succeed."""
        return cls(faults=[fault] * times, **options)

    def next_call(self) -> CallPlan:
        """Counts a call and decides its fault and latency."""
        with self._lock:
            index = self._calls
            self._calls += 1
            if index < len(self.faults):
                fault = self.faults[index]
            else:
                fault = self._draw_fault()
            jitter = self._rng.random() * self.jitter_ms if self.jitter_ms else 0.0
            self._seen[fault] += 1
        return CallPlan(number=index + 1, fault=fault, delay_s=(self.latency_ms + jitter) / 1000)

    @property
    def calls(self) -> int:
        """How many calls the simulator has received."""
        with self._lock:
            return self._calls

    def fault_counts(self) -> dict[str, int]:
        """How many calls got each fault kind ("ok" included)."""
        with self._lock:
            return dict(self._seen)

    def reset(self) -> None:
        """Forget the calls: the script and the PRNG start over."""
        with self._lock:
            self._calls = 0
            self._seen.clear()
            self._rng = random.Random(self.seed)

    def _draw_fault(self) -> str:
        if not self.fault_rates:
            return "ok"
        draw, threshold = self._rng.random(), 0.0
        for kind, rate in self.fault_rates.items():
            threshold += rate
            if draw < threshold:
                return kind
        return "ok"
