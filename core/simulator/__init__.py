"""Quorum's model simulator: answers like the OpenAI API, deterministically, offline.

Reach it through the official SDK, either in-process::

    from core.simulator import SimulatorConfig, simulated_client
    client = simulated_client(SimulatorConfig(faults=["429", "ok"]), max_retries=2)

or over HTTP with ``serve()`` and ``base_url="http://127.0.0.1:8800/v1"``. Every reply
carries ``system_fingerprint == "quorum-simulator"`` (chat) and the response header
``x-quorum-simulated: true`` so the UI can label simulated results.

It follows what a prompt asks the way a capable model would, by small documented rules:
labelled sections (``sections``), SQL explanations (``sql_reading``), document summaries
(``documents``), answers grounded in cited snippets (``grounded``), tasks named by a JSON
schema (``structured``: contract extraction, copy review), rule-following tool calls
(``tools``), and rubric grades when asked to judge (``judge``).

It imports nothing of Quorum's but the ground floor: it stands for OpenAI, and knows
nothing of teams, budgets or the gateway that calls it.
"""

from core.simulator.engine import SYSTEM_FINGERPRINT
from core.simulator.exchange import SIMULATED_HEADER
from core.simulator.faults import FAULT_KINDS, SimulatorConfig
from core.simulator.transport import (
    SIMULATOR_API_KEY,
    SIMULATOR_BASE_URL,
    AsyncSimulatorTransport,
    SimulatorTransport,
    async_simulated_client,
    simulated_client,
)

__all__ = [
    "FAULT_KINDS",
    "SIMULATED_HEADER",
    "SIMULATOR_API_KEY",
    "SIMULATOR_BASE_URL",
    "SYSTEM_FINGERPRINT",
    "AsyncSimulatorTransport",
    "SimulatorConfig",
    "SimulatorTransport",
    "async_simulated_client",
    "simulated_client",
]
