"""Settle a gateway call: write back everything one call leaves, in one transaction.

Both the pipeline (answers, refusals, failures) and a stream (when it ends or is closed)
end a call here, so neither has to reach into the other. Calls that finish together are
written in one transaction (`core.gateway.group_commit`, writers in `core.gateway.writeback`);
`settle` returns only once its own call's rows are committed.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from core import clock, db
from core.audit.record import prepare_event
from core.budgets.usage import Usage
from core.gateway import answer_json, rollup_folder, schema_checks
from core.gateway.call_state import CallState
from core.gateway.escalation import stored_variables
from core.gateway.group_commit import GroupCommit
from core.gateway.ports import BudgetGate, CallOutcome
from core.gateway.writeback import BudgetSettle, CacheWrite, SettledCall, write_back
from core.ops.logs import log_call
from core.ops.metrics import observe_call


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
    """The call's write-back, committed before it returns; returns the response as serialized for it.

    Commits together: the call row, the stored payload (as the team's retention allows),
    the held request, the cache entry, the budget's usage row and one `gateway.call` audit
    event, in one transaction with the calls that finish at the same time. Raises the
    error of its own write-back only (a batch that fails is written again call by call)."""
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
    response_json = answer_json.dumps(response) if response is not None else None
    request_json = (
        _payload(call.sent, call.findings, stored_variables(call))
        if call.sent is not None or response is not None or call.findings
        else None
    )
    settled = SettledCall(
        row=row,
        event=prepare_event(
            actor=call.caller.actor,
            action="gateway.call",
            target_type="gateway_request",
            target_id=call.request_id,
            team_id=team_id,
            after=_event(row, hold),
        ),
        request_json=request_json,
        response_json=response_json,
        network=call.caller.network,
        schema_valid=schema_checks.outcome(call, response),
        hold=hold,
        cache_hit_id=cache_hit_id,
        cache_write=(
            CacheWrite(team_id, cache_key, call.model, response_json, cache_ttl_s)
            if cache_key is not None and status == "ok"
            else None
        ),
        budget=(
            BudgetSettle(
                budget,
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
            # "blocked" with a reservation: an answer an escalation rule refused, after the model ran.
            if call.reservation is not None and status in ("ok", "held", "blocked")
            else None
        ),
    )
    engine = db.get_engine()
    _group_commit(engine).submit(settled)  # returns once this call's rows are committed
    rollup_folder.settled(engine)
    call.settled = True
    # Counted and logged once committed: /metrics and the log never show a call the call log lacks.
    observe_call(row)
    log_call(row)
    return response_json


# Weak: a disposed engine (tests, a fork) takes its batcher with it.
_batchers: weakref.WeakKeyDictionary[Engine, GroupCommit[SettledCall]] = weakref.WeakKeyDictionary()
_batchers_lock = threading.Lock()


def _group_commit(engine: Engine) -> GroupCommit[SettledCall]:
    """The batcher of the configured database (one per engine: a batch is one transaction)."""
    batcher = _batchers.get(engine)
    if batcher is None:
        with _batchers_lock:
            batcher = _batchers.get(engine)
            if batcher is None:
                batcher = _batchers[engine] = GroupCommit(functools.partial(_write, weakref.ref(engine)))
    return batcher


def _write(engine_ref: weakref.ref[Engine], calls: Sequence[SettledCall]) -> None:
    """One write transaction for a batch of settled calls (BEGIN IMMEDIATE on SQLite)."""
    engine = engine_ref()
    if engine is None:  # unreachable while a caller holds the engine, as every submitter does
        raise RuntimeError("the database engine of this write-back was disposed")
    with db.write_session(engine) as session:
        try:
            write_back(session, calls)
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _payload(sent: dict[str, Any] | None, findings: list[dict[str, Any]], variables: dict[str, Any] | None) -> str:
    # A blocked request is stored as its findings only (masked): its text may hold a secret.
    payload: dict[str, Any] = {"request": sent, "findings": findings}
    if variables is not None:
        payload["variables"] = variables  # redacted: what a test case made from this call starts from
    return json.dumps(payload, default=str)


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
