"""The prompt file format: ``prompts/<name>.yaml``, one prompt per file.

A file holds a prompt's metadata and its *current* content, not its history: version
history lives in the database, and git keeps the history of the file. Importing a file
whose content hash matches the latest stored version is therefore a no-op, and a changed
file becomes the next draft version. Layout (keys in this order when dumped)::

    name: ticket-triage              # slug; must equal the file name without .yaml
    team: Support                    # Support | Marketing | Legal | Data
    purpose: Classify an incoming support ticket ...
    risk_tier: medium                # low | medium | high
    data_classification: internal    # public | internal | confidential | restricted
    change_note: What changed in this content and why
    model: gpt-4o-mini
    params:                          # all optional
      temperature: 0                 # leave out for reasoning models
      max_tokens: 400
      response_format: {type: json_schema, json_schema: {name: ..., strict: true, schema: {...}}}
      reasoning_effort: medium       # o-series models only
    variables:                       # every declared variable is required when rendering
      ticket_body: {type: string, description: ...}   # string|integer|number|boolean|list
    messages:                        # content is a Jinja template
      - role: system                 # system | developer | user | assistant
        content: |
          ...
    tools:                           # optional function tools
      - name: create_ticket
        description: ...
        parameters: {JSON Schema of the arguments}
    escalation:                      # optional; see core.catalog.escalation
      - name: low-confidence
        when: {field: confidence, below: 0.6}
        action: hold                 # hold | review_after | block

A ``list`` variable holds JSON-like items (strings, numbers, booleans or small mappings),
so a template can loop over knowledge-base snippets and read ``snippet.title``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.catalog.checks import escalation_problems
from core.catalog.file_schemas import PROMPT_FILE_SCHEMA
from core.catalog.spec import (
    PromptSpec,
    VersionSpec,
    prompt_from_dict,
    prompt_to_dict,
    version_content,
    version_from_content,
)
from core.catalog.yaml_io import CatalogValidationError, dump_yaml, parse_yaml, read_limited, schema_problems

PROMPT_FILE_SUFFIX = ".yaml"


def parse_prompt_document(
    document: Any, source: str, *, expected_name: str | None = None
) -> tuple[PromptSpec, VersionSpec]:
    """Validate an already-parsed document (a dict from YAML, JSON or a form) and build specs."""
    problems = [_naming_rules(problem, document) for problem in schema_problems(document, PROMPT_FILE_SCHEMA, source)]
    if not problems and expected_name is not None and document["name"] != expected_name:
        problems.append(
            f"{source}: name: '{document['name']}' does not match the file name '{expected_name}{PROMPT_FILE_SUFFIX}'"
        )
    if problems:
        raise CatalogValidationError(problems)
    prompt = prompt_from_dict(document)
    version = version_from_content(document, change_note=document.get("change_note", ""))
    problems = [f"{source}: {problem}" for problem in escalation_problems(version)]
    if problems:
        raise CatalogValidationError(problems)
    return prompt, version


def _naming_rules(problem: str, document: Any) -> str:
    """'escalation.2.when: ...' -> "escalation rule 'legal-threat'.when: ...": people know rules by name."""
    rules = document.get("escalation") if isinstance(document, dict) else None
    if not isinstance(rules, list):
        return problem

    def named(match: re.Match[str]) -> str:
        index = int(match.group(1))
        rule = rules[index] if index < len(rules) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        return f"escalation rule '{name}'" if isinstance(name, str) else match.group(0)

    return re.sub(r"escalation\.(\d+)", named, problem, count=1)


def load_prompt_text(text: str, source: str = "<prompt>") -> tuple[PromptSpec, VersionSpec]:
    """Load a prompt from YAML text (an upload, a paste); ``source`` names it in errors."""
    return parse_prompt_document(parse_yaml(text, source), source)


def load_prompt_file(path: str | Path) -> tuple[PromptSpec, VersionSpec]:
    """Load ``prompts/<name>.yaml``; the ``name`` inside must match the file name."""
    path = Path(path)
    source = str(path)
    return parse_prompt_document(parse_yaml(read_limited(path), source), source, expected_name=path.stem)


def load_directory(directory: str | Path) -> list[tuple[PromptSpec, VersionSpec]]:
    """Every ``*.yaml`` directly in ``directory``, sorted by name; all or nothing.

    Every file is validated before anything is returned; if any file is bad, the
    CatalogValidationError lists the problems of all of them.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogValidationError([f"{directory}: not a directory"])
    loaded: list[tuple[PromptSpec, VersionSpec]] = []
    problems: list[str] = []
    for path in sorted(directory.glob(f"*{PROMPT_FILE_SUFFIX}")):
        try:
            loaded.append(load_prompt_file(path))
        except CatalogValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CatalogValidationError(problems)
    return sorted(loaded, key=lambda pair: pair[0].name)


def prompt_document(prompt: PromptSpec, version: VersionSpec) -> dict[str, Any]:
    """The file's content as a dict, keys in the documented order."""
    content = version_content(version)
    document: dict[str, Any] = prompt_to_dict(prompt)
    if version.change_note:
        document["change_note"] = version.change_note
    document["model"] = content["model"]
    for key in ("params", "variables"):
        if content[key]:
            document[key] = content[key]
    for name, variable in document.get("variables", {}).items():
        if not variable["description"]:
            # An empty description is the default; writing it would only add noise.
            document["variables"][name] = {"type": variable["type"]}
    document["messages"] = content["messages"]
    if content["tools"]:
        document["tools"] = content["tools"]
    if "escalation" in content:
        document["escalation"] = content["escalation"]
    return document


def dump_prompt_file(prompt: PromptSpec, version: VersionSpec) -> str:
    """YAML text of a prompt file; loading it back gives the same content hash."""
    return dump_yaml(prompt_document(prompt, version))
