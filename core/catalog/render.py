"""Rendering a version's messages with the caller's variables, in Jinja's sandbox.

Templates are written by prompt engineers and reviewed, but the variables come from
applications and end users, so rendering is defensive: only declared variables, each of
its declared type, no silent blanks (StrictUndefined), no attribute tricks (immutable
sandbox), and a budget per render (core.catalog.sandbox: loop steps, value sizes, output
size, time), so ``'x' * 10**9`` or nested ``range`` loops are refused. Autoescape is off because the output is
chat text, not HTML; a block tag alone on its line leaves no blank line behind. Every
failure is a ValidationError that says which message or variable is at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError

from core.catalog.sandbox import TEMPLATE_ENVIRONMENT, render_limited
from core.catalog.spec import VariableSpec, VersionSpec
from core.errors import ValidationError


def message_label(index: int, role: str) -> str:
    return f"message {index} ({role})"


@lru_cache(maxsize=512)
def compile_template(source: str) -> Template:
    """Compile once per distinct template text; raises TemplateSyntaxError."""
    return TEMPLATE_ENVIRONMENT.from_string(source)


def type_problem(variable: VariableSpec, value: Any) -> str | None:
    """Why ``value`` is not of the variable's declared type, or None when it is."""
    expected = variable.type
    # bool is a subclass of int in Python; a flag is never a count.
    if expected == "string":
        ok = isinstance(value, str)
    elif expected == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif expected == "boolean":
        ok = isinstance(value, bool)
    elif expected == "list":
        ok = isinstance(value, list | tuple) and all(_is_json_like(item) for item in value)
        if isinstance(value, list | tuple) and not ok:
            return f"variable '{variable.name}' must be a list of strings, numbers, booleans or mappings of them"
    else:
        return f"variable '{variable.name}' has an unknown declared type '{expected}'"
    if ok:
        return None
    return f"variable '{variable.name}' must be {expected}, got {type(value).__name__}"


def variable_problems(declared: Sequence[VariableSpec], values: Mapping[str, Any]) -> list[str]:
    """Missing, undeclared and wrongly typed variables, one line each, in a stable order."""
    by_name = {v.name: v for v in declared}
    problems = [f"missing variable '{name}'" for name in by_name if name not in values]
    problems += [
        f"undeclared variable '{name}' (declared: {', '.join(by_name) or 'none'})"
        for name in values
        if name not in by_name
    ]
    problems += [
        problem for name, value in values.items() if name in by_name and (problem := type_problem(by_name[name], value))
    ]
    return problems


def check_variables(version: VersionSpec, variables: Mapping[str, Any]) -> None:
    """Raise ValidationError unless ``variables`` are exactly the declared ones, well typed."""
    problems = variable_problems(version.variables, variables)
    if problems:
        raise ValidationError("; ".join(problems))


def render_messages(version: VersionSpec, variables: Mapping[str, Any]) -> list[dict[str, str]]:
    """The chat messages ``[{'role', 'content'}, ...]`` with the variables filled in."""
    check_variables(version, variables)
    rendered = []
    for index, message in enumerate(version.messages):
        label = message_label(index, message.role)
        try:
            template = compile_template(message.content)
        except TemplateSyntaxError as exc:
            raise ValidationError(f"{label}, line {exc.lineno}: template syntax error: {exc.message}") from None
        try:
            content = render_limited(template, dict(variables))
        except SecurityError as exc:
            raise ValidationError(f"{label}: refused by the template sandbox: {exc}") from None
        except UndefinedError as exc:
            raise ValidationError(f"{label}: {exc}") from None
        except MemoryError:
            raise ValidationError(f"{label}: refused by the template sandbox: the render ran out of memory") from None
        except Exception as exc:  # noqa: BLE001 - a template bug must surface as a user error, not a crash
            raise ValidationError(f"{label}: template failed: {type(exc).__name__}: {exc}") from None
        rendered.append({"role": message.role, "content": content})
    return rendered


def _is_json_like(value: Any, depth: int = 0) -> bool:
    if depth > 3:
        return False
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _is_json_like(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_is_json_like(v, depth + 1) for v in value)
    return False
