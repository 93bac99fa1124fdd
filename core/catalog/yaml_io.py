"""YAML reading and writing shared by the prompt and test-set file formats.

Reading is strict in three ways PyYAML is not by default: a key written twice is an
error (PyYAML silently keeps the last one, so a duplicated variable would vanish), dates
stay strings (a contract date in a test case is text for a template, not a
``datetime``), and ``.nan`` and ``.inf`` are refused (no JSON can hold them, so a version
or a test case with one could be neither hashed, stored nor sent). Every problem names
the file, and for syntax errors the line.

Files come from uploads and pull requests, so reading is also bounded: a file larger than
``MAX_FILE_BYTES`` is refused before it is parsed, and so is one that uses more than
``MAX_ALIASES`` aliases, nests deeper than ``MAX_DEPTH`` or expands to more than
``MAX_VALUES`` values. PyYAML shares an aliased node instead of copying it, so a
billion-laughs file of a few hundred bytes parses quickly, into a structure whose
expansion every later step (schema validation, JSON encoding, storing) would walk for
minutes; the expansion is counted on the node graph, once per shared node, before
anything is constructed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from core.errors import ValidationError

_MAX_REASON_CHARS = 300

# A prompt file or a test set is a few kilobytes; the largest real test sets are a few
# hundred kilobytes of pasted documents.
MAX_FILE_BYTES = 1_000_000
# '<<: *base' once per case is the only reuse real files make.
MAX_ALIASES = 1_000
MAX_DEPTH = 64
MAX_VALUES = 200_000


class CatalogValidationError(ValidationError):
    """One or more problems with catalog files; ``problems`` lists them one per line."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(self.problems)
        super().__init__(message)


class _YamlLimitExceeded(yaml.YAMLError):
    """A limit of the module note was passed; the message names it."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, leaves timestamps as strings, and counts
    aliases and nesting while it composes the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _YamlLimitExceeded(f"more than {MAX_ALIASES} aliases (*name); the limit is {MAX_ALIASES}")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _YamlLimitExceeded(f"nested deeper than {MAX_DEPTH} levels; the limit is {MAX_DEPTH}")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
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

    def construct_finite_float(self, node: yaml.ScalarNode) -> float:
        value: float = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is not a number JSON can hold (NaN or infinite)", node.start_mark
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_finite_float)
_StrictLoader.yaml_implicit_resolvers = {
    first_char: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first_char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_values(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded.

    Sizes are remembered per node, so a node shared by a thousand aliases is walked once:
    the count of a billion-laughs file is computed in microseconds, not expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    return size(root)


def check_size(size_in_bytes: int, source: str) -> None:
    """Refuse a file (or pasted text) above MAX_FILE_BYTES before reading or parsing it."""
    if size_in_bytes > MAX_FILE_BYTES:
        raise CatalogValidationError(
            [f"{source}: the file is {size_in_bytes:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes"]
        )


def read_limited(path: Path) -> str:
    """A file's text, refused unreadable or above MAX_FILE_BYTES without reading it whole."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                check_size(max(len(data), path.stat().st_size), str(path))
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogValidationError([f"{path}: cannot read the file: {exc}"]) from None


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text within the module's limits; every problem is a ValidationError
    naming the source (and the line for syntax errors, the limit for limits)."""
    check_size(len(text.encode("utf-8")), source)
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_values(root) > MAX_VALUES:
            raise _YamlLimitExceeded(
                f"expands to more than {MAX_VALUES:,} values (aliases inside aliases); the limit is {MAX_VALUES:,}"
            )
        return loader.construct_document(root)
    except _YamlLimitExceeded as exc:
        raise CatalogValidationError([f"{source}: {exc}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = exc.problem or exc.context or "invalid YAML"
        raise CatalogValidationError([f"{source}: {where}YAML syntax error: {reason}"]) from None
    except yaml.YAMLError as exc:
        raise CatalogValidationError([f"{source}: YAML syntax error: {exc}"]) from None
    finally:
        loader.dispose()


def schema_problems(document: Any, schema: Mapping[str, Any], source: str) -> list[str]:
    """Every way ``document`` breaks ``schema``, as 'source: path: reason' lines."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{source}: {_describe(error)}" for error in errors]


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    hint = error.schema.get("x-hint") if isinstance(error.schema, dict) else None
    if error.validator == "pattern" and hint:
        reason = f"{error.instance!r} {hint}"
    elif error.validator in ("minLength", "minItems") and not error.instance:
        reason = f"is empty: {hint}" if hint else "is empty"
    elif error.validator == "enum":
        reason = f"{error.instance!r} is not one of: " + ", ".join(str(v) for v in error.validator_value)
    else:
        reason = error.message
    if len(reason) > _MAX_REASON_CHARS:
        # Long reasons quote whole sub-documents; the path already says where to look.
        reason = reason[:_MAX_REASON_CHARS] + "..."
    return f"{path}: {reason}" if path else reason


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as '|' blocks so templates stay readable in a diff."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
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
