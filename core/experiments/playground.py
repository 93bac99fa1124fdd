"""The playground: run one prompt version (drafts of your own team too) on one input, or several side by side.

Every call goes through the gateway as the person, for the prompt's team when they belong
to it (otherwise their first team), so allow-lists, guardrails, budgets and audit apply.
A chat continues by passing the earlier turns (assistant answers and new user turns),
which are appended after the rendered prompt.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.catalog.render import render_messages
from core.catalog.spec import VersionSpec
from core.catalog.store import APPROVED, get_prompt, get_version, version_spec, versions_of
from core.db import saved_id
from core.errors import ValidationError
from core.experiments.gateway_call import result_of
from core.experiments.runner import Variant, VariantChoice, escalation_of
from core.gateway.call_state import Caller
from core.gateway.pipeline import GatewayRequest
from core.gateway.wiring import default_gateway
from core.permissions import Actor, Permission, require

ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Answer:
    label: str
    text: str
    input_tokens: int
    output_tokens: int
    cost_micro: int
    latency_ms: float
    request_id: str
    error: str | None = None
    # What production's escalation rules would do with this answer: (action, rule, ...) or ().
    escalation: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionChoice:
    id: int
    number: int
    state: str
    model: str
    variables: tuple[tuple[str, str], ...]  # (name, type); every declared variable is required
    temperature: float | None = None  # the version's own parameters, where it sets them
    max_tokens: int | None = None


def runnable_versions(session: Session, *, actor: Actor, prompt_id: int) -> list[VersionChoice]:
    """Approved versions, plus every other version for the owning team's prompt engineers, newest first."""
    require(actor, Permission.PLAYGROUND_RUN)
    prompt = get_prompt(session, prompt_id)
    drafts_ok = actor.can(Permission.PROMPT_WRITE, team_id=prompt.team_id)
    choices = []
    for version in reversed(versions_of(session, saved_id(prompt))):
        if version.state != APPROVED and not drafts_ok:
            continue
        spec = version_spec(version)
        choices.append(
            VersionChoice(
                saved_id(version),
                version.number,
                version.state,
                spec.model,
                tuple((v.name, v.type) for v in spec.variables),
                spec.params.temperature,
                spec.params.max_tokens,
            )
        )
    return choices


def run(
    *,
    session: Session,
    actor: Actor,
    variants: Sequence[VariantChoice],
    variables: Mapping[str, Any],
    history: Sequence[Mapping[str, str]] = (),
) -> list[Answer]:
    """Each variant on the same input (and chat history), side by side, in the given order."""
    if not variants:
        raise ValidationError("Choose at least one version to run")
    for turn in history:
        if turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise ValidationError("Chat turns must be user or assistant messages with text")
    prepared = [_prepare(session, actor, v, variables, history, i) for i, v in enumerate(variants)]
    with ThreadPoolExecutor(max_workers=min(4, len(prepared))) as pool:
        return list(pool.map(lambda p: _call(actor, *p), prepared))


def _prepare(
    session: Session,
    actor: Actor,
    choice: VariantChoice,
    variables: Mapping[str, Any],
    history: Sequence[Mapping[str, str]],
    index: int,
) -> tuple[str, int, dict[str, Any], VersionSpec, dict[str, Any]]:
    version = get_version(session, choice.version_id)
    prompt = get_prompt(session, version.prompt_id)
    require(actor, Permission.PLAYGROUND_RUN)
    if version.state != APPROVED:
        require(actor, Permission.PROMPT_WRITE, team_id=prompt.team_id)
    team_id = prompt.team_id if prompt.team_id in actor.team_ids or actor.is_system else min(actor.team_ids or {0})
    require(actor, Permission.PLAYGROUND_RUN, team_id=team_id)
    variant = Variant(
        label=f"v{version.number}",
        version=version_spec(version),
        model=choice.model or None,
        params={k: v for k, v in dict(choice.params).items() if v is not None},
    )
    messages = render_messages(variant.version, dict(variables)) + [dict(t) for t in history]
    body: dict[str, Any] = {"model": variant.model_name, "messages": messages, **variant.request_params()}
    if variant.openai_tools():
        body["tools"] = variant.openai_tools()
    label = f"#{index + 1} v{version.number} · {variant.model_name}"
    return label, team_id, body, variant.version, dict(variables)


def _call(
    actor: Actor, label: str, team_id: int, body: dict[str, Any], version: VersionSpec, variables: dict[str, Any]
) -> Answer:
    started = time.perf_counter()
    try:
        # Never from the response cache: variants side by side (often the same version twice,
        # run at once) and re-runs are there to sample the model, not to repeat one answer.
        response = default_gateway().call(
            caller=Caller(actor=actor, team_id=team_id), request=GatewayRequest(kind="chat", body=body, use_cache=False)
        )
    except Exception as error:  # noqa: BLE001 - one variant's refusal is shown next to the others
        return Answer(
            label,
            "",
            0,
            0,
            0,
            (time.perf_counter() - started) * 1000,
            getattr(error, "request_id", ""),
            error=str(error),
        )
    result = result_of(response.body, latency_ms=(time.perf_counter() - started) * 1000, cost_micro=response.cost_micro)
    text = result.text or "\n".join(f"tool call {t.name}({t.arguments})" for t in result.tool_calls)
    return Answer(
        label,
        text,
        result.usage.input_tokens,
        result.usage.output_tokens,
        result.cost_micro,
        result.latency_ms,
        response.request_id,
        escalation=escalation_of(version, variables, result),
    )
