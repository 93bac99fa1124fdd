"""The one path every model call takes, whoever makes it (playground, A/B runs, HTTP).

permission and model allow-list -> prompt resolution -> rendering -> input guardrails
(and moderation) -> budget reservation -> response cache -> upstream call -> output
guardrails -> settle (cost, call log row, budget ledger, audit event, stored payload)
-> response. The stages before the budget (the request's shape, a catalog prompt, the
secrets check) are in core.gateway.request_stages.

`Gateway.call()` returns a `GatewayResponse`, or a `GatewayStream` for streamed chat, or
raises a typed error (core.errors / core.gateway.errors). Every outcome after the caller
is known is settled in ONE write transaction: the call row, the redacted payloads, the
budget's usage row and one `gateway.call` audit event that never holds prompt text.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from core import db
from core.errors import BudgetExceeded, NotFound, QuorumError
from core.gateway import cache, escalation, moderation, policies, rate_limits, responses, schema_checks
from core.gateway.billed_usage import billed_usage
from core.gateway.call_state import Caller, CallState
from core.gateway.errors import (
    GuardrailBlocked,
    HeldForReview,
    ModelNotAllowed,
    ModelNotPriced,
    RateLimited,
    UpstreamFailed,
)
from core.gateway.held import RELEASED, new_hold
from core.gateway.ports import BudgetGate, PromptSource
from core.gateway.redaction import (
    finding_summary,
    message_texts,
    outcome_findings,
    redacted_response,
)
from core.gateway.request_shape import cap_output, check_output_limit
from core.gateway.request_stages import (
    MODERATION_MODEL,
    GatewayRequest,
    PromptCall,
    blocked,
    budget_request_of,
    prepared_body,
    refuse_secrets,
)
from core.gateway.settle import settle
from core.gateway.streaming import GatewayStream
from core.gateway.telemetry import span
from core.gateway.upstream import Upstream
from core.guardrails import GuardrailPolicy, scan_body, scan_output
from core.models.gateway import GatewayCall, HeldRequest
from core.permissions import Permission, require

# Importers of the pipeline find the request's types here too.
__all__ = ["MODERATION_MODEL", "Caller", "Gateway", "GatewayRequest", "GatewayResponse", "GatewayStream", "PromptCall"]


@dataclass(frozen=True)
class GatewayResponse:
    request_id: str
    body: dict[str, Any]
    cache_hit: bool
    simulated: bool
    attempts: int
    cost_micro: int
    # `body` already serialized (the settle stored this text), so the HTTP API sends it as is.
    body_json: str | None = field(default=None, repr=False, compare=False)


_log = logging.getLogger("quorum.gateway")


class Gateway:
    def __init__(
        self,
        *,
        upstream: Upstream,
        prompts: PromptSource,
        budget: BudgetGate,
        default_cache_ttl_s: int = cache.DEFAULT_TTL_S,
    ) -> None:
        self.upstream, self.prompts, self.budget = upstream, prompts, budget
        self.default_cache_ttl_s = default_cache_ttl_s
        self._verdicts = moderation.VerdictCache()

    # ---- the one entry point ---------------------------------------------------------------

    def call(self, *, caller: Caller, request: GatewayRequest, skip_moderation: bool = False):
        call = CallState(
            request_id=f"req_{uuid.uuid4().hex[:24]}",
            caller=caller,
            kind=request.kind,
            started=time.perf_counter(),
            use_cache=request.use_cache,
        )
        if caller.key_id is None:
            require(caller.actor, Permission.PLAYGROUND_RUN, team_id=caller.team_id)
        try:
            call.policy, call.gateway_settings = policies.for_call(caller.team_id)
            return self._stages(call, request, skip_moderation)
        except QuorumError:
            raise
        except Exception as error:
            # A defect, not a refusal: give the budget back at once (not in 10 minutes when
            # the hold expires), keep a call-log row, and let the HTTP layer answer 500.
            self._crashed(call, error)
            raise

    def _stages(self, call: CallState, request: GatewayRequest, skip_moderation: bool):
        caller = call.caller
        try:
            with span("gateway.guardrails.secrets"):
                refuse_secrets(call, request)
            with span("gateway.prepare"):
                body = prepared_body(call, request, self.prompts)
            with span("gateway.allow_list"):
                self._check_model(call)
                check_output_limit(call.kind, call.model, body)
            with span("gateway.guardrails.input"):
                body = self._input_guardrails(call, body, skip_moderation)
            call.sent = body
            call.use_cache = call.use_cache and cache.cacheable(call.kind, call.gateway_settings.cache, body)
            if call.use_cache and not call.stream:
                call.cache_read = cache.AdmissionLookup(kind=call.kind, team_id=caller.team_id, body=body)
            budget_request = budget_request_of(call, body)
            rate_count = rate_limits.prepare(call, budget_request)  # counted in the reservation's transaction
            with span("gateway.budget.reserve"):
                call.reservation = self.budget.reserve(
                    budget_request, also=rate_limits.along(rate_count, call.cache_read)
                )
            rate_limits.confirm(rate_count)
            body = cap_output(body, call.reservation.granted_max_tokens, call.kind)
        except ModelNotAllowed as error:
            status = "not_priced" if isinstance(error, ModelNotPriced) else "not_allowed"
            raise self._refused(call, status, 403, error) from None
        except GuardrailBlocked as error:
            error.request_id = call.request_id
            raise self._refused(call, "blocked", 400, error, rule=error.rule) from None
        except HeldForReview:
            raise
        except BudgetExceeded as error:
            raise self._refused(call, "budget_exceeded", 429, error) from None
        except RateLimited as error:
            raise self._refused(call, "rate_limited", 429, error, rule=f"rate_limit.{error.measure}") from None
        if call.stream:
            return self._stream(call, body)
        return self._complete(call, body)

    def answer_released(self, *, caller: Caller, public_id: str) -> dict[str, Any] | None:
        """The answer to a held request, once a lead released it (None while pending).

        An input hold is answered now, on the first poll after release, from the redacted
        request stored when it was held (moderation is not asked again)."""
        from core.gateway.held import DENIED, PENDING, attach_response, held_for_team
        from core.models.gateway import StoredPayload as Stored

        with db.session() as session:
            held = held_for_team(session, team_id=caller.team_id, public_id=public_id)
            stored = session.get(Stored, held.request_id)
        if held.status in (PENDING, DENIED) or held.response is not None:
            return held.response
        body = json.loads(stored.request_json)["request"]
        with db.get_engine().connect() as connection:
            logged = connection.execute(
                select(GatewayCall.__table__.c.endpoint).where(GatewayCall.__table__.c.request_id == held.request_id)
            ).scalar()
        # The call log says which endpoint was held; a catalog prompt is a chat call.
        kind = "chat" if "messages" in body or logged in (None, "prompt") else logged
        result = self.call(
            caller=caller, request=GatewayRequest(kind=kind, body={**body, "stream": False}), skip_moderation=True
        )
        with db.write_session() as session:
            attach_response(session, public_id=public_id, response=result.body)
        return result.body

    def retrieve_response(self, *, caller: Caller, response_id: str) -> dict[str, Any]:
        """A stored Responses API answer, for the team whose call produced it (others get NotFound,
        as for an id that does not exist); its output is redacted as the call's answer was."""
        table, holds = GatewayCall.__table__, HeldRequest.__table__
        with db.get_engine().connect() as connection:
            owned = connection.execute(
                select(table.c.request_id, table.c.status)
                .where(table.c.response_id == response_id, table.c.team_id == caller.team_id)
                .limit(1)
            ).first()
            hold = (
                None
                if owned is None or owned.status != "held"
                else connection.execute(
                    select(holds.c.public_id, holds.c.status).where(holds.c.request_id == owned.request_id)
                ).first()
            )
        if owned is None:
            raise NotFound(f"Response with id '{response_id}' not found.")
        if hold is not None and hold.status != RELEASED:
            # The provider keeps the answer a lead has not released: it stays held here too.
            raise HeldForReview(
                f"The response {response_id} is held for review by a governance lead; poll its status",
                held_id=hold.public_id,
                request_id=owned.request_id,
            )
        with span("gateway.upstream"):
            result = self.upstream.retrieve_response(response_id)
        with db.session() as session:
            policy = policies.team_policy(session, caller.team_id)
        return responses.redacted_response(result.body, policy)

    # ---- stages ----------------------------------------------------------------------------

    def _check_model(self, call: CallState) -> None:
        self.budget.check_model(call.caller.team_id, call.model)

    def allowed_models(self, team_id: int) -> list[str]:
        return self.budget.allowed_models(team_id)

    def _input_guardrails(self, call: CallState, body: dict[str, Any], skip_moderation: bool) -> dict[str, Any]:
        """Secrets and personal data in every string of the body, whatever the endpoint."""
        policy = call.policy
        verdict = scan_body(body, policy)
        call.findings = outcome_findings(verdict)
        if verdict.blocked:
            raise blocked(verdict)
        body = verdict.body
        # A moderation request is itself the check: it is not moderated again.
        if policy.moderation != "off" and not skip_moderation and call.kind != "moderations":
            self._moderate(call, body, moderation.moderated_messages(call.kind, body), policy)
        return body

    def _moderate(self, call: CallState, body: dict[str, Any], messages: list[dict], policy: GuardrailPolicy) -> None:
        texts = [t for m in messages for t in message_texts(m)]
        if not texts:
            return
        provider = call.gateway_settings.moderation_provider
        with span("gateway.moderation"):
            try:
                results = moderation.verdicts(self.upstream, self._verdicts, texts, provider, policy.moderation)
            except moderation.ModerationUnavailable as error:
                raise self._refused(call, "moderation_unavailable", error.status, error) from None
            except UpstreamFailed as error:
                raise self._refused(call, "upstream_error", error.status, error) from None
        categories = sorted(
            {name for r in results if r.get("flagged") for name, hit in (r.get("categories") or {}).items() if hit}
        )
        if not categories:
            return
        rule = f"moderation.{categories[0]}"
        call.findings.append(
            {"rule": rule, "count": len(categories), "masked": categories, "action": policy.moderation}
        )
        if policy.moderation == "block":
            raise GuardrailBlocked(
                f"Blocked by the guardrail '{rule}': the moderation check flagged {', '.join(categories)}", rule=rule
            )
        call.sent = body
        hold = new_hold(
            team_id=call.caller.team_id, request_id=call.request_id, kind="input", rule=rule, findings=call.findings
        )
        self._settle(call, status="held", http_status=202, rule=rule, hold=hold)
        raise HeldForReview(
            f"The request was held for review by a governance lead ({rule}); poll its status",
            held_id=hold.public_id,
            request_id=call.request_id,
        )

    def _complete(self, call: CallState, body: dict[str, Any]) -> GatewayResponse:
        key = cache.request_hash(call.kind, body)
        entry = None
        if call.cache_read is not None and call.cache_read.key == key:
            entry = call.cache_read.hit  # looked up in the admission's transaction
        elif call.use_cache:
            with span("gateway.cache.lookup"), db.get_engine().connect() as connection:
                entry = cache.lookup(connection, team_id=call.caller.team_id, key=key)
        cached = (entry.id, json.loads(entry.response_json)) if entry else None
        if cached is not None:
            # A ledger row at cost 0 (the tokens the client saw); the hold is given back in it.
            self._settle(
                call,
                status="ok",
                http_status=200,
                response=cached[1],
                cache_hit=True,
                cache_hit_id=cached[0],
                usage=billed_usage(call.kind, body, cached[1])[0],
            )
            return GatewayResponse(call.request_id, cached[1], True, False, 0, 0, body_json=entry.response_json)
        try:
            with span("gateway.upstream"):
                result = self.upstream.call(call.kind, body)
        except UpstreamFailed as error:
            self.budget.release(call.reservation, "upstream_error")
            raise self._refused(call, "upstream_error", error.status, error) from None
        call.attempts, call.simulated, call.upstream_ms = result.attempts, result.simulated, result.elapsed_ms
        response = result.body
        # The upstream's usage report, or an estimate where it sent none a call can have.
        granted = call.reservation.granted_max_tokens if call.reservation is not None else None
        usage, usage_estimated = billed_usage(call.kind, body, response, max_output_tokens=granted)
        if call.kind == "responses" and isinstance(response.get("id"), str):
            call.response_id = response["id"][:80]
        hold = fired = None
        if call.kind in ("chat", "responses"):
            with span("gateway.guardrails.output"):
                response, hold = self._output_guardrails(call, response)
                fired = escalation.verdict(call, response, usage) if hold is None else None
                hold = hold or escalation.hold_for(call, fired, response)
        cost = self.budget.cost_micro(call.reservation, call.model, usage)
        if (refusal := escalation.blocked(fired)) is not None:
            schema_checks.note(call, response)  # the settle gets no answer: checked here
            self._settle(
                call,
                status="blocked",
                http_status=400,
                usage=usage,
                cost=cost,
                rule=refusal.rule,
                usage_estimated=usage_estimated,
            )
            raise refusal
        ttl = call.cache_ttl_s if call.cache_ttl_s is not None else self.default_cache_ttl_s
        with span("gateway.settle"):
            response_json = self._settle(
                call,
                status="held" if hold else "ok",
                http_status=202 if hold else 200,
                response=response,
                usage=usage,
                cost=cost,
                hold=hold,
                rule=hold.rule if hold else escalation.rule_of(fired),
                cache_key=None if hold or fired or not call.use_cache else key,
                cache_ttl_s=ttl,
                usage_estimated=usage_estimated,
            )
        if hold is not None:
            raise HeldForReview(
                f"The answer was held for review by a governance lead ({hold.rule}); poll its status",
                held_id=hold.public_id,
                request_id=call.request_id,
            )
        return GatewayResponse(
            call.request_id, response, False, call.simulated, call.attempts, cost, body_json=response_json
        )

    def _output_guardrails(self, call: CallState, response: dict[str, Any]):
        policy = call.policy
        if call.kind == "responses":
            texts = responses.output_texts(response)
        else:
            texts = [c.get("message", {}).get("content") or "" for c in response.get("choices") or []]
        verdicts = [scan_output(text, policy) for text in texts]
        flagged = [v for v in verdicts if v.decision == "flag"]
        if not flagged:
            return response, None
        summaries = [finding_summary(f) for v in flagged for f in v.findings]
        holding = [
            s for s in summaries if s["rule"].startswith("secret.") or policy.action_for(s["rule"][4:]) == "block"
        ]
        redacted = (
            responses.redacted_response(response, policy)
            if call.kind == "responses"
            else redacted_response(response, policy)
        )
        call.findings.extend(summaries)
        if not holding:
            return redacted, None  # personal data the policy redacts: redact it and answer
        return redacted, new_hold(
            team_id=call.caller.team_id,
            request_id=call.request_id,
            kind="output",
            rule=holding[0]["rule"],
            findings=summaries,
            response=redacted,
        )

    def _stream(self, call: CallState, body: dict[str, Any]) -> GatewayStream:
        if call.kind == "responses":
            # The final event (response.completed) always carries the usage: nothing to ask for.
            open_stream, upstream_body, wants_usage = self.upstream.responses_stream, body, True
        else:
            # Usage is always asked of the upstream (the bill needs it); the client gets it if it asked.
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            upstream_body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
            open_stream = self.upstream.chat_stream
        try:
            with span("gateway.upstream"):
                upstream = open_stream(upstream_body)
        except UpstreamFailed as error:
            self.budget.release(call.reservation, "upstream_error")
            raise self._refused(call, "upstream_error", error.status, error) from None
        call.attempts, call.simulated = upstream.attempts, upstream.simulated
        return GatewayStream(self.budget, call, upstream, wants_usage)

    # ---- settling --------------------------------------------------------------------------

    def _crashed(self, call: CallState, error: Exception) -> None:
        error.request_id = call.request_id  # type: ignore[attr-defined]  # quoted in the 500
        if call.reservation is not None:
            try:
                self.budget.release(call.reservation, "error")  # a no-op once settled or released
            except Exception:  # noqa: BLE001 - the original error is the one to report
                _log.exception("gateway: could not release the reservation of %s", call.request_id)
        if not call.settled:
            try:
                self._settle(call, status="error", http_status=500)
            except Exception:  # noqa: BLE001
                _log.exception("gateway: could not record the failed call %s", call.request_id)

    def _refused(
        self, call: CallState, status: str, http_status: int, error: QuorumError, rule: str | None = None
    ) -> QuorumError:
        if call.reservation is not None and status != "upstream_error":
            self.budget.release(call.reservation, status)
        self._settle(call, status=status, http_status=http_status, rule=rule)
        error.request_id = call.request_id  # so the caller can quote it (HTTP: x-request-id)
        return error

    def _settle(self, call: CallState, **outcome) -> str | None:
        return settle(call, budget=self.budget, **outcome)
