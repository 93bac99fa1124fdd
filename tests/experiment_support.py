"""Experiment tests' helper: the production gateway (real catalog and budgets) over the simulator."""

from __future__ import annotations

from core.gateway.wiring import set_gateway
from tests.gateway_support import RecordingTransport, make_gateway


def use_simulated_gateway(config=None) -> RecordingTransport:
    from core.simulator import SimulatorConfig

    transport = RecordingTransport(config or SimulatorConfig())
    set_gateway(make_gateway(transport))
    return transport
