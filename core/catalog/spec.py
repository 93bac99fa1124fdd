"""What a prompt and one of its versions are, as plain frozen dataclasses.

A prompt (``PromptSpec``) is the governed thing: its name, owning team, purpose, risk tier
and data classification. A version (``VersionSpec``) is the content that is reviewed and
run: messages, declared variables, model, parameters and tools, plus a change note.
Versions are immutable; ``content_hash`` identifies a version's content, so two versions
with the same content have the same hash whoever wrote them and whenever.

Nested JSON (response formats, tool parameter schemas) stays as plain dicts: treat them as
read-only. The hash, not Python equality, is the identity of a version.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.catalog.escalation import EscalationRule, rules_content, rules_from_content

TEAMS = ("Support", "Marketing", "Legal", "Data")
RISK_TIERS = ("low", "medium", "high")
DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
VARIABLE_TYPES = ("string", "integer", "number", "boolean", "list")
MESSAGE_ROLES = ("system", "developer", "user", "assistant")
REASONING_EFFORTS = ("low", "medium", "high")

PROMPT_NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
# Variable names must be plain Jinja identifiers so templates can use them as {{ name }}.
VARIABLE_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


@dataclass(frozen=True)
class PromptSpec:
    """The prompt-level facts a governance lead reviews; they do not change per version."""

    name: str
    team: str
    purpose: str
    risk_tier: str
    data_classification: str


@dataclass(frozen=True)
class MessageSpec:
    """One chat message; ``content`` is a Jinja template."""

    role: str
    content: str


@dataclass(frozen=True)
class VariableSpec:
    """A declared template variable. Every declared variable is required at render time."""

    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ModelParams:
    """Request parameters; ``None`` means 'not sent, the model's default applies'."""

    temperature: float | None = None
    max_tokens: int | None = None
    response_format: Mapping[str, Any] | None = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class VersionSpec:
    """The content of one immutable prompt version."""

    messages: tuple[MessageSpec, ...]
    variables: tuple[VariableSpec, ...]
    model: str
    params: ModelParams = field(default_factory=ModelParams)
    tools: tuple[ToolSpec, ...] = ()
    change_note: str = ""
    escalation: tuple[EscalationRule, ...] = ()  # core.catalog.escalation

    def variable(self, name: str) -> VariableSpec | None:
        return next((v for v in self.variables if v.name == name), None)

    @property
    def variable_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variables)


def prompt_to_dict(prompt: PromptSpec) -> dict[str, Any]:
    return {
        "name": prompt.name,
        "team": prompt.team,
        "purpose": prompt.purpose,
        "risk_tier": prompt.risk_tier,
        "data_classification": prompt.data_classification,
    }


def prompt_from_dict(data: Mapping[str, Any]) -> PromptSpec:
    return PromptSpec(
        name=data["name"],
        team=data["team"],
        purpose=data["purpose"],
        risk_tier=data["risk_tier"],
        data_classification=data["data_classification"],
    )


def version_content(version: VersionSpec) -> dict[str, Any]:
    """The content fields as plain JSON-ready data (what is hashed, stored and dumped).

    Variables become a mapping keyed by name, so their order never matters; parameters
    left at ``None`` are omitted, so 'not set' has one spelling.
    """
    params = {
        key: value
        for key, value in (
            ("temperature", version.params.temperature),
            ("max_tokens", version.params.max_tokens),
            ("response_format", version.params.response_format),
            ("reasoning_effort", version.params.reasoning_effort),
        )
        if value is not None
    }
    content: dict[str, Any] = {
        "model": version.model,
        "params": _plain(params),
        "variables": {v.name: {"type": v.type, "description": v.description} for v in version.variables},
        "messages": [{"role": m.role, "content": m.content} for m in version.messages],
        "tools": [
            {"name": t.name, "description": t.description, "parameters": _plain(t.parameters)} for t in version.tools
        ],
    }
    if version.escalation:
        content["escalation"] = _plain(rules_content(version.escalation))
    return content


def version_from_content(content: Mapping[str, Any], *, change_note: str = "") -> VersionSpec:
    """The inverse of ``version_content`` (plus the change note, which is not content)."""
    params = content.get("params") or {}
    temperature = params.get("temperature")
    return VersionSpec(
        messages=tuple(MessageSpec(m["role"], m["content"]) for m in content["messages"]),
        variables=tuple(
            VariableSpec(name, spec["type"], spec.get("description", ""))
            for name, spec in (content.get("variables") or {}).items()
        ),
        model=content["model"],
        params=ModelParams(
            # A YAML '1' and '1.0' are the same temperature; keep one Python type.
            temperature=float(temperature) if isinstance(temperature, int | float) else temperature,
            max_tokens=params.get("max_tokens"),
            response_format=params.get("response_format"),
            reasoning_effort=params.get("reasoning_effort"),
        ),
        tools=tuple(
            ToolSpec(t["name"], t.get("description", ""), t.get("parameters") or {}) for t in content.get("tools") or ()
        ),
        change_note=change_note,
        escalation=rules_from_content(content.get("escalation")),
    )


def content_hash(version: VersionSpec) -> str:
    """SHA-256 hex of the canonical JSON of a version's content.

    Covers messages, variables, model, params, tools and escalation rules; not the change note (nor author
    or time, which are not part of a spec). Keys are sorted and integral floats are
    written as integers, so dict ordering, YAML styling and '1' vs '1.0' do not move it.
    """
    canonical = json.dumps(
        _canonical_numbers(version_content(version)),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """Deep-copy mappings and sequences into dicts and lists (tuples and proxies included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def _canonical_numbers(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    return value
