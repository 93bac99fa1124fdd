"""The stages of a call before its budget is asked: what the request is, and whether it may go on.

`prepared_body` turns an HTTP body or a catalog prompt into the body every later stage
reads (validated against the SDK's request types); `refuse_secrets` blocks a credential in
what is read before the input guardrails scan the whole body; `budget_request_of` says what
the budget must hold for the call. The pipeline (core.gateway.pipeline) runs them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.budgets.tokens import chat_input_tokens_upper_bound, text_tokens_upper_bound
from core.catalog.render import render_messages
from core.errors import ValidationError
from core.gateway import escalation, moderation, responses, schema_checks, validation
from core.gateway.call_state import CallState
from core.gateway.errors import GuardrailBlocked, InvalidRequest
from core.gateway.ports import BudgetRequest, PromptSource
from core.gateway.redaction import blocked_reason, outcome_findings
from core.gateway.request_shape import prompt_params
from core.gateway.telemetry import span
from core.guardrails import scan_body

MODERATION_MODEL = moderation.MODERATION_MODEL


@dataclass(frozen=True)
class PromptCall:
    name: str
    variables: dict[str, Any]
    label: str | None = None
    version: int | None = None  # a numbered version: the playground only (people, not keys)


@dataclass
class GatewayRequest:
    """An OpenAI-shaped request body; for ``prompt`` calls the body adds only delivery options."""

    kind: str  # "chat" | "embeddings" | "responses" | "moderations"
    body: dict[str, Any]
    prompt: PromptCall | None = None
    # False: neither answered from nor stored in the response cache (experiment repetitions
    # must each reach the model, or they would measure nothing).
    use_cache: bool = True


def prepared_body(call: CallState, request: GatewayRequest, prompts: PromptSource) -> dict[str, Any]:
    """The body the stages read: a catalog prompt resolved and rendered, checked against the SDK's
    request types; sets the call's model, stream flag and prompt."""
    body = dict(request.body or {})
    if request.prompt is not None:
        with span("gateway.prompt.resolve"):
            # The end user (or the request) picks the side of an A/B split, stably.
            assignment_key = body.get("user") if isinstance(body.get("user"), str) else call.request_id
            resolved = prompts.resolve(
                request.prompt.name,
                request.prompt.label,
                call.caller.actor,
                application=call.caller.key_id is not None,
                version=request.prompt.version,
                assignment_key=assignment_key,
            )
        with span("gateway.prompt.render"):
            messages = render_messages(resolved.spec, request.prompt.variables)
        call.prompt_name, call.prompt_version = resolved.name, resolved.version
        call.prompt_id, call.prompt_version_id = resolved.prompt_id, resolved.version_id
        call.cache_ttl_s = resolved.cache_ttl_s
        escalation.attach(call, resolved.spec, request.prompt.variables, body)
        schema_checks.attach(call, resolved.spec)
        body = {
            **{k: v for k, v in body.items() if k in ("stream", "stream_options", "user")},
            **prompt_params(resolved.spec),
            "messages": messages,
        }
    if call.kind == "moderations" and body.get("model") is None:
        body["model"] = MODERATION_MODEL  # optional at OpenAI, which defaults to it
    # Against the SDK's own request types, before any stage reads the body.
    if call.kind == "chat":
        validation.check_chat(body)
    elif call.kind == "embeddings":
        validation.check_embeddings(body)
    elif call.kind not in ("responses", "moderations"):
        raise ValidationError(f"Unknown call kind {call.kind!r}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required", param="model")
    call.model = model
    if call.kind == "chat":
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise InvalidRequest("'messages' must be a non-empty list", param="messages")
        call.stream = bool(body.get("stream"))
    elif call.kind == "responses":
        responses.validate(body)
        call.stream = bool(body.get("stream"))
    else:  # embeddings, moderations
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest(
                "'input' must be text or a list of texts (token arrays cannot be checked by the guardrails)",
                param="input",
            )
    return body


def refuse_secrets(call: CallState, request: GatewayRequest) -> None:
    """Block a credential in what the stages before the input guardrails read.

    A refused model is recorded by name, and a prompt call's name, label and variables
    are used (and a render error quotes them) before the rendered body is scanned, so
    these are scanned first. The rest of the body is scanned, whole, by
    the pipeline's input guardrails.
    """
    if request.prompt is None:
        scanned = {"model": request.body.get("model")} if isinstance(request.body, dict) else {}
    else:
        prompt = request.prompt
        scanned = {
            **(request.body or {}),
            "prompt": prompt.name,
            "label": prompt.label,
            "variables": prompt.variables,
        }
    verdict = scan_body(scanned, call.policy, pii=False)
    if verdict.blocked:
        call.findings = outcome_findings(verdict)
        raise blocked(verdict)


def budget_request_of(call: CallState, body: dict[str, Any]) -> BudgetRequest:
    """What the budget is asked to hold for the call: its input bound and the output it may produce."""
    if call.kind == "chat":
        bound = chat_input_tokens_upper_bound(
            messages=body["messages"], tools=body.get("tools"), response_format=body.get("response_format")
        )
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
    elif call.kind == "responses":
        bound, max_out = responses.input_tokens_upper_bound(body), body.get("max_output_tokens")
    else:
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        bound, max_out = sum(text_tokens_upper_bound(t) for t in texts), 0
    return BudgetRequest(
        request_id=call.request_id,
        kind=call.kind,
        team_id=call.caller.team_id,
        model=call.model,
        input_tokens_upper_bound=bound,
        max_output_tokens=max_out,
        person_id=call.caller.actor.person_id if call.caller.key_id is None else None,
        key_id=call.caller.key_id,
        prompt_id=call.prompt_id,
        prompt_version_id=call.prompt_version_id,
    )


def blocked(verdict) -> GuardrailBlocked:
    # Names the field, never the text in it: the caller finds the key without it being echoed.
    return GuardrailBlocked(
        f"Blocked by the guardrail '{verdict.rule}': the request contains "
        f"{blocked_reason(verdict.rule)} in {verdict.field}; remove it and try again",
        rule=verdict.rule,
    )
