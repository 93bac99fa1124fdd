"""A fast yes/no check of an answer against the common subset of JSON Schema.

``jsonschema`` takes ~20 µs to say whether a small answer is valid, which alone would eat
most of the escalation rules' per-call budget. Response schemas are nearly always plain
objects of typed properties, so those compile here into nested closures (~1 µs); a schema
using anything else (``$ref``, ``anyOf``, ``pattern``...) gets ``None`` and the caller
uses ``jsonschema``. Semantics follow draft 2020-12: booleans are not numbers, ``1.0``
is an integer, ``enum``/``const`` compare as JSON does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        # Annotations: no effect on validity.
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$comment",
    }
)


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return False


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def compile_subset(schema: Any) -> Check | None:
    """A check equivalent to ``jsonschema`` for this schema, or None when it uses more."""
    if schema is True or schema == {}:
        return lambda _value: True
    if schema is False:
        return lambda _value: False
    if not isinstance(schema, Mapping) or not set(schema) <= _SUPPORTED:
        return None
    checks: list[Check] = []
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            return None
        checks.append(lambda v: any(_is_type(v, k) for k in kinds))
    if "enum" in schema:
        options = schema["enum"]
        if not isinstance(options, list):
            return None
        checks.append(lambda v: any(_json_equal(v, o) for o in options))
    if "const" in schema:
        constant = schema["const"]
        checks.append(lambda v: _json_equal(v, constant))
    for key, compare in (("minimum", operator.ge), ("maximum", operator.le)):
        if key in schema:
            bound = schema[key]
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                return None
            checks.append(_bounded(bound, compare))
    for key, sized_type, at_least in (
        ("minItems", list, True),
        ("maxItems", list, False),
        ("minLength", str, True),
        ("maxLength", str, False),
    ):
        if key in schema:
            size = schema[key]
            if isinstance(size, bool) or not isinstance(size, int):
                return None
            checks.append(_sized(size, sized_type, at_least))
    object_check = _object_check(schema)
    if object_check is None and any(k in schema for k in ("properties", "required", "additionalProperties")):
        return None
    if object_check is not None:
        checks.append(object_check)
    if "items" in schema:
        item = compile_subset(schema["items"])
        if item is None:
            return None
        checks.append(_each_item(item))
    return lambda v: all(check(v) for check in checks)


def _bounded(bound: float, compare: Callable[[Any, Any], bool]) -> Check:
    return lambda v: isinstance(v, bool) or not isinstance(v, int | float) or compare(v, bound)


def _sized(size: int, sized_type: type[list[Any]] | type[str], at_least: bool) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, sized_type):
            return True
        return len(value) >= size if at_least else len(value) <= size

    return check


def _each_item(item: Check) -> Check:
    return lambda v: not isinstance(v, list) or all(item(x) for x in v)


def _object_check(schema: Mapping[str, Any]) -> Check | None:
    if not any(k in schema for k in ("properties", "required", "additionalProperties")):
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        return None
    compiled: dict[str, Check] = {}
    for name, sub in properties.items():
        property_check = compile_subset(sub)
        if property_check is None:
            return None
        compiled[name] = property_check
    extra = schema.get("additionalProperties", True)
    extra_check = compile_subset(extra)
    if extra_check is None:
        return None
    required_names = tuple(required)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if any(name not in value for name in required_names):
            return False
        for key, item in value.items():
            sub = compiled.get(key)
            if not (sub(item) if sub is not None else extra_check(item)):
                return False
        return True

    return check
