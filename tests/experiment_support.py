"""Experiment tests' helpers: a gateway over the simulator whose budget gate is the real ledger.

The wiring of the production gateway to core.budgets lands separately; this gate does
the same through core.budgets.reservations, so budget refusals and ledger rows are real.
"""

from __future__ import annotations

from core import db
from core.budgets import reservations
from core.gateway.ports import Reservation
from core.gateway.wiring import set_gateway
from tests.gateway_support import RecordingTransport, make_gateway


class LedgerBudgetGate:
    def __init__(self) -> None:
        self.held: dict[str, reservations.Reservation] = {}

    def allowed_models(self, team_id):
        return None

    def reserve(self, request):
        person = int(request.actor_ref[7:]) if request.actor_ref.startswith("person:") else None
        with db.write_session() as session:
            held = reservations.reserve(session=session, team_id=request.team_id, model=request.model,
                                        max_tokens=request.max_output_tokens or 4096,
                                        input_tokens_upper_bound=request.input_tokens_upper_bound, person_id=person)
        self.held[held.id] = held
        return Reservation(id=held.id, granted_max_tokens=held.max_tokens)

    def settle(self, session, reservation, usage, outcome):
        reservations.settle(session=session, reservation=self.held.pop(reservation.id), usage=usage,
                            status=outcome.status, request_id=outcome.request_id)

    def release(self, reservation, reason):
        held = self.held.pop(reservation.id, None)
        if held is not None:
            with db.write_session() as session:
                reservations.release(session=session, reservation=held)
                session.commit()


def use_simulated_gateway(config=None) -> RecordingTransport:
    from core.simulator import SimulatorConfig

    transport = RecordingTransport(config or SimulatorConfig())
    set_gateway(make_gateway(transport, LedgerBudgetGate()))
    return transport
