"""The editor page's form, turned into specs with the same validation as a prompt file."""

from __future__ import annotations

from collections.abc import Sequence

from core.catalog.escalation import rules_content
from core.catalog.files import parse_prompt_document
from core.catalog.spec import PromptSpec, VersionSpec, prompt_to_dict, version_content
from core.catalog.yaml_io import dump_yaml, parse_yaml
from core.errors import ValidationError


def parse_variables(text: str) -> dict[str, dict[str, str]]:
    """'name: type: description' per line (description optional) -> the file's variables mapping."""
    variables: dict[str, dict[str, str]] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(":", 2)]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValidationError(f"Variables, line {number}: write 'name: type' or 'name: type: description'")
        if parts[0] in variables:
            raise ValidationError(f"Variables, line {number}: '{parts[0]}' is declared twice")
        variables[parts[0]] = {"type": parts[1], **({"description": parts[2]} if len(parts) > 2 and parts[2] else {})}
    return variables


def variables_text(version: VersionSpec) -> str:
    return "\n".join(f"{v.name}: {v.type}" + (f": {v.description}" if v.description else "") for v in version.variables)


def escalation_text(version: VersionSpec) -> str:
    """The version's escalation rules as the YAML list the form edits ("" when it has none)."""
    return dump_yaml(rules_content(version.escalation)) if version.escalation else ""


def build_version(
    *,
    prompt: PromptSpec,
    model: str,
    temperature: float | None,
    max_tokens: int | None,
    messages: Sequence[tuple[str, str]],
    variables: str,
    change_note: str,
    base: VersionSpec | None = None,
    escalation: str | None = None,
) -> tuple[PromptSpec, VersionSpec]:
    """Specs from the form; tools, response format and reasoning effort carry over from `base`,
    and so do its escalation rules unless ``escalation`` (the rules' YAML list) is given."""
    params = dict(version_content(base)["params"]) if base else {}
    params.pop("temperature", None)
    params.pop("max_tokens", None)
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens:
        params["max_tokens"] = int(max_tokens)
    document = {
        **prompt_to_dict(prompt),
        "change_note": change_note.strip(),
        "model": model.strip(),
        "params": params,
        "variables": parse_variables(variables),
        "messages": [{"role": role, "content": content} for role, content in messages if content.strip()],
    }
    if base and base.tools:
        document["tools"] = version_content(base)["tools"]
    if escalation is None:
        if base and base.escalation:
            document["escalation"] = rules_content(base.escalation)
    elif escalation.strip():
        rules = parse_yaml(escalation, "the escalation rules")
        if not isinstance(rules, list):
            raise ValidationError("Escalation rules: write a YAML list, one '- name: ...' item per rule")
        document["escalation"] = rules
    return parse_prompt_document(document, "the form")
