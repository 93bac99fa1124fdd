"""What changed between two versions, field by field, as a reviewer reads it.

A diff of the whole YAML text counts block markers (``|-``) and re-indentation as changes and
cuts long messages off; here each message, parameter, variable and tool is compared on its
own (escalation rules by name), a message's text line by line, and a change that only moves whitespace says so (it can
still matter to a model, but a reviewer should not have to hunt for it).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from core.catalog.spec import VersionSpec

ADDED, REMOVED, CHANGED, WHITESPACE = "added", "removed", "changed", "whitespace only"


@dataclass(frozen=True)
class FieldChange:
    field: str  # e.g. "model", "temperature", "message 2 (user)", "variable product"
    kind: str  # ADDED, REMOVED, CHANGED or WHITESPACE
    old: str
    new: str
    # A unified diff of a message's text ("-" old line, "+" new line, " " context); empty for
    # short values, whose old and new say it all.
    lines: tuple[str, ...] = ()


def version_changes(old: VersionSpec | None, new: VersionSpec) -> list[FieldChange]:
    """Every difference between `old` (None: nothing yet) and `new`, in the order of the file."""
    changes: list[FieldChange] = []
    if old is None:
        changes.append(FieldChange("model", ADDED, "", new.model))
        for index, message in enumerate(new.messages, start=1):
            added = _text_change(f"message {index} ({message.role})", "", message.content)
            if added is not None:
                changes.append(added)
        for rule in new.escalation:
            shown = _shown({"when": dict(rule.when), "action": rule.action})
            changes.append(FieldChange(f"escalation rule {rule.name}", ADDED, "", shown))
        return changes
    _value(changes, "model", old.model, new.model)
    for name in ("temperature", "max_tokens", "reasoning_effort", "response_format"):
        _value(changes, name, _shown(getattr(old.params, name)), _shown(getattr(new.params, name)))
    for index in range(max(len(old.messages), len(new.messages))):
        before = old.messages[index] if index < len(old.messages) else None
        after = new.messages[index] if index < len(new.messages) else None
        role = after.role if after is not None else before.role if before is not None else ""
        label = f"message {index + 1} ({role})"
        if before is not None and after is not None and before.role != after.role:
            changes.append(FieldChange(f"message {index + 1} role", CHANGED, before.role, after.role))
        change = _text_change(label, before.content if before else "", after.content if after else "")
        if change is not None:
            changes.append(change)
    old_vars = {v.name: f"{v.type}: {v.description}".rstrip(": ") for v in old.variables}
    new_vars = {v.name: f"{v.type}: {v.description}".rstrip(": ") for v in new.variables}
    for name in [*old_vars, *(n for n in new_vars if n not in old_vars)]:
        _value(changes, f"variable {name}", old_vars.get(name, ""), new_vars.get(name, ""))
    old_tools = {t.name: _shown({"description": t.description, "parameters": t.parameters}) for t in old.tools}
    new_tools = {t.name: _shown({"description": t.description, "parameters": t.parameters}) for t in new.tools}
    for name in [*old_tools, *(n for n in new_tools if n not in old_tools)]:
        _value(changes, f"tool {name}", old_tools.get(name, ""), new_tools.get(name, ""))
    # Escalation rules decide what reaches a person: each one is shown by name.
    old_rules = {r.name: _shown({"when": dict(r.when), "action": r.action}) for r in old.escalation}
    new_rules = {r.name: _shown({"when": dict(r.when), "action": r.action}) for r in new.escalation}
    for name in [*old_rules, *(n for n in new_rules if n not in old_rules)]:
        _value(changes, f"escalation rule {name}", old_rules.get(name, ""), new_rules.get(name, ""))
    return changes


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _kind(old: str, new: str) -> str | None:
    if old == new:
        return None
    if not old:
        return ADDED
    if not new:
        return REMOVED
    if old.split() == new.split():
        return WHITESPACE
    return CHANGED


def _value(changes: list[FieldChange], field: str, old: str, new: str) -> None:
    kind = _kind(old, new)
    if kind is not None:
        changes.append(FieldChange(field, kind, old, new))


def _text_change(field: str, old: str, new: str) -> FieldChange | None:
    kind = _kind(old, new)
    if kind is None:
        return None
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
    # Drop the '---/+++' file header and keep '@@' hunks as separators a reader can skip.
    body = tuple(line for line in lines if not line.startswith(("---", "+++")))
    return FieldChange(field, kind, old, new, body)
