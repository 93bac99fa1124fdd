"""YAML reading and writing shared by the prompt and test-set file formats.

Reading is strict in the two ways PyYAML is not by default: a key written twice is an
error (PyYAML silently keeps the last one, so a duplicated variable would vanish), and
dates stay strings (a contract date in a test case is text for a template, not a
``datetime``). Every problem names the file, and for syntax errors the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import yaml

from core.errors import ValidationError

_MAX_REASON_CHARS = 300


class CatalogValidationError(ValidationError):
    """One or more problems with catalog files; ``problems`` lists them one per line."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(self.problems)
        super().__init__(message)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and leaves timestamps as strings."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *base' then overriding a key is how test sets share variables
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first_char: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first_char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become a ValidationError naming source and line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = exc.problem or exc.context or "invalid YAML"
        raise CatalogValidationError([f"{source}: {where}YAML syntax error: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise CatalogValidationError([f"{source}: YAML syntax error: {exc}"]) from None


def schema_problems(document: Any, schema: Mapping[str, Any], source: str) -> list[str]:
    """Every way ``document`` breaks ``schema``, as 'source: path: reason' lines."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{source}: {_describe(error)}" for error in errors]


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    reason = error.message
    if len(reason) > _MAX_REASON_CHARS:
        # Long reasons quote whole sub-documents; the path already says where to look.
        reason = reason[:_MAX_REASON_CHARS] + "..."
    return f"{path}: {reason}" if path else reason


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as '|' blocks so templates stay readable in a diff."""

    def increase_indent(self, flow=False, indentless=False):
        # Indent list items under their key, as people write them by hand.
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    """YAML text for a document, keys in the given order, templates as blocks."""
    return yaml.dump(
        document,
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
