"""The prompt version's escalation rules, applied to an application's call in the gateway.

``attach`` (when the prompt is resolved) keeps the version's compiled rules and the call's
variables on the call; ``verdict`` (after the output guardrails, before the settle) reads
the answer and returns what fired, or None. The pipeline then acts on it:

- ``hold``: the answer is kept back (HTTP 202) and joins the held-request flow, where a
  governance lead releases or denies it;
- ``review_after``: the answer is delivered and the call is queued for review after
  (core.gateway.catches writes the catch in the call's own write-back transaction);
- ``block``: the answer is refused (HTTP 400 naming the rule); the tokens are still billed.

Only calls made with a team key are acted on: a person's playground call shows the rules
that would fire (``fired_rules``) without holding anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.budgets.usage import Usage
from core.catalog.escalation import (
    BLOCK,
    HOLD,
    Answer,
    CompiledRules,
    Fired,
    compiled_for,
    response_schema_of,
)
from core.catalog.spec import VersionSpec
from core.gateway import responses
from core.gateway.call_state import CallState
from core.gateway.errors import GuardrailBlocked, InvalidRequest
from core.gateway.held import new_hold
from core.guardrails import scan_body
from core.models.gateway import HeldRequest

RULE_PREFIX = "escalation."


@dataclass
class CallRules:
    rules: CompiledRules
    variables: dict[str, Any]
    # The variables as the team's guardrail policy redacts them, once the answer was read:
    # stored with the call's payload, so a test case can be made from it later.
    redacted: dict[str, Any] | None = None


def rules_of(spec: VersionSpec, version_id: int | None) -> CompiledRules | None:
    """The version's compiled rules (compiled once per version), or None when it has none."""
    if not spec.escalation:
        return None
    return compiled_for(version_id, spec.escalation, response_schema_of(spec.params.response_format))


def attach(call: CallState, spec: VersionSpec, variables: dict[str, Any], body: dict[str, Any]) -> None:
    rules = rules_of(spec, call.prompt_version_id)
    if rules is None:
        return
    if body.get("stream") and call.caller.key_id is not None:
        # A streamed answer reaches the caller before it is whole: no rule could hold it.
        raise InvalidRequest(
            f"The prompt {call.prompt_name!r} has escalation rules, which read the whole answer; "
            "call it without stream",
            param="stream",
        )
    call.escalation = CallRules(rules, variables)
    # A cached answer would skip the rules (and was produced under another version's, maybe).
    call.use_cache = False


def answer_of(call: CallState, response: dict[str, Any], usage: Usage, variables: dict[str, Any]) -> Answer:
    if call.kind == "responses":
        text = "\n".join(responses.output_texts(response))
        tools = [i.get("name", "") for i in response.get("output") or () if i.get("type") == "function_call"]
    else:
        messages = [c.get("message") or {} for c in response.get("choices") or ()]
        text = "\n".join(m.get("content") or "" for m in messages)
        tools = [(t.get("function") or {}).get("name", "") for m in messages for t in m.get("tool_calls") or ()]
    return Answer(
        text=text,
        variables=variables,
        tool_names=tools,
        output_tokens=usage.output_tokens,
        risk_flags=[str(f.get("rule", "")) for f in call.findings],
    )


def verdict(call: CallState, response: dict[str, Any], usage: Usage) -> Fired | None:
    """What the version's rules say about this answer (None: deliver it as usual)."""
    pending: CallRules | None = call.escalation
    if pending is None or call.caller.key_id is None:
        return None
    fired = pending.rules.evaluate(answer_of(call, response, usage, pending.variables))
    pending.redacted = scan_body(pending.variables, call.policy, root="variables", secrets=False).body
    if fired is not None:
        call.findings.append(
            {
                "rule": RULE_PREFIX + fired.rule,
                "count": len(fired.rules),
                "masked": list(fired.rules),
                "action": fired.action,
            }
        )
    return fired


def hold_for(call: CallState, fired: Fired | None, response: dict[str, Any]) -> HeldRequest | None:
    if fired is None or fired.action != HOLD:
        return None
    return new_hold(
        team_id=call.caller.team_id,
        request_id=call.request_id,
        kind="output",
        rule=RULE_PREFIX + fired.rule,
        findings=call.findings,
        response=response,
    )


def blocked(fired: Fired | None) -> GuardrailBlocked | None:
    if fired is None or fired.action != BLOCK:
        return None
    rule = RULE_PREFIX + fired.rule
    return GuardrailBlocked(
        f"Blocked by the prompt's escalation rule '{fired.rule}': the answer was not delivered", rule=rule
    )


def stored_variables(call: CallState) -> dict[str, Any] | None:
    pending: CallRules | None = call.escalation
    return None if pending is None else pending.redacted


def rule_of(fired: Fired | None) -> str | None:
    return None if fired is None else RULE_PREFIX + fired.rule
