"""Settle a gateway call: write back everything one call leaves, in one transaction.

Both the pipeline (answers, refusals, failures) and a stream (when it ends or is closed)
end a call here, so neither has to reach into the other.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import insert

from core import clock, db
from core.audit.record import record_row
from core.budgets import rollups
from core.budgets.usage import Usage
from core.gateway import cache
from core.gateway.call_state import CallState
from core.gateway.ports import BudgetGate, CallOutcome
from core.models.gateway import GatewayCall, StoredPayload
from core.retention.payloads import minimized_payload, payload_storage_mode


def settle(
    call: CallState,
    *,
    budget: BudgetGate,
    status: str,
    http_status: int,
    response: dict | None = None,
    usage: Usage | None = None,
    cost: int = 0,
    rule: str | None = None,
    hold=None,
    cache_hit: bool = False,
    cache_hit_id: int | None = None,
    cache_key: str | None = None,
    cache_ttl_s: int = 0,
    usage_estimated: bool = False,
) -> str | None:
    """The call's one write transaction; returns the response as serialized for it.

    Commits together: the call row, the stored payload (as the team's retention allows),
    the held request, the cache entry, the budget's usage row, the hourly roll-ups and one `gateway.call`
    audit event."""
    usage = usage or Usage(input_tokens=0)
    team_id = call.caller.team_id
    # Plain column values, no ORM object: the unit of work costs more than the writes here.
    row = {
        "request_id": call.request_id,
        "created_at": clock.now(),
        "team_id": team_id,
        "key_id": call.caller.key_id,
        "actor": call.caller.actor.ref,
        "endpoint": call.kind if call.prompt_name is None else "prompt",
        "model": call.model[:80],
        "prompt_name": call.prompt_name,
        "prompt_version": call.prompt_version,
        "status": status,
        "http_status": http_status,
        "rule": rule,
        "stream": call.stream,
        "cache_hit": cache_hit,
        "simulated": call.simulated,
        "attempts": call.attempts,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "usage_estimated": usage_estimated,
        "cost_micro": cost,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
        "upstream_ms": round(call.upstream_ms, 3),
        "response_id": call.response_id,
    }
    # Serialized once, outside the write lock: the stored payload and the cache entry share it.
    response_json = json.dumps(response) if response is not None else None
    request_json = (
        _payload(call.sent, call.findings) if call.sent is not None or response is not None or call.findings else None
    )
    event = _event(row, hold)
    with db.write_session() as session:
        try:
            # The session's Connection (BEGIN IMMEDIATE on SQLite): Core statements skip the ORM layer.
            connection = session.connection()
            connection.execute(_INSERT_CALL, row)
            if request_json is not None:
                stored = minimized_payload(
                    payload_storage_mode(connection, team_id),
                    request_json,
                    response_json,
                    needed_for_hold=hold is not None,
                )
                if stored is not None:
                    connection.execute(
                        _INSERT_PAYLOAD,
                        {
                            "request_id": call.request_id,
                            "team_id": team_id,
                            "created_at": row["created_at"],
                            "request_json": stored[0],
                            "response_json": stored[1],
                        },
                    )
            if hold is not None:
                session.add(hold)
            if cache_hit_id is not None:
                cache.count_hit(connection, cache_hit_id)
            if cache_key is not None and status == "ok":
                cache.store(
                    connection,
                    team_id=team_id,
                    key=cache_key,
                    model=call.model,
                    response_json=response_json,
                    ttl_s=cache_ttl_s,
                )
            if call.reservation is not None and status in ("ok", "held"):
                budget.settle(
                    session,
                    call.reservation,
                    usage,
                    CallOutcome(
                        request_id=call.request_id,
                        team_id=team_id,
                        model=call.model,
                        status=status,
                        cost_micro=cost,
                        cache_hit=cache_hit,
                        usage_estimated=usage_estimated,
                        latency_ms=round(row["latency_ms"]),
                    ),
                )
            rollups.record_settled(connection, [row])
            record_row(
                session,
                actor=call.caller.actor,
                action="gateway.call",
                target_type="gateway_request",
                target_id=call.request_id,
                team_id=team_id,
                after=event,
            )
            session.commit()
        except BaseException:
            session.rollback()
            raise
    call.settled = True
    return response_json


def _payload(sent: dict[str, Any] | None, findings: list[dict[str, Any]]) -> str:
    # A blocked request is stored as its findings only (masked): its text may hold a secret.
    return json.dumps({"request": sent, "findings": findings}, default=str)


_INSERT_CALL = insert(GatewayCall.__table__)
_INSERT_PAYLOAD = insert(StoredPayload.__table__)


def _event(row: dict[str, Any], hold) -> dict[str, Any]:
    event = {
        name: row[name]
        for name in (
            "status",
            "http_status",
            "model",
            "endpoint",
            "cache_hit",
            "stream",
            "attempts",
            "input_tokens",
            "output_tokens",
            "cost_micro",
        )
    }
    for name, value in (
        ("rule", row["rule"]),
        ("key_id", row["key_id"]),
        ("prompt", row["prompt_name"]),
        ("prompt_version", row["prompt_version"]),
    ):
        if value is not None:
            event[name] = value
    if hold is not None:
        event["held_id"] = hold.public_id
    if row["usage_estimated"]:
        event["usage_estimated"] = True
    return event
