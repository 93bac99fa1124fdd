"""Deterministic instances of a JSON Schema, for structured outputs and tool arguments.

Covers what OpenAI's strict structured outputs allow: ``type`` (also as a list, e.g.
``["string", "null"]``), ``enum``, ``const``, ``properties``/``required``, ``items`` with
``minItems``/``maxItems``/``uniqueItems``, numeric bounds, string lengths and common
formats, ``anyOf``/``oneOf`` (first branch), ``allOf`` and local ``$ref`` into
``$defs``/``definitions``. ``pattern`` is not generated for; a schema that needs it
gets a plain string. Strings are filled from the prompt's own words, guided by the
property name ("city" takes a place named in the prompt, "summary" a sentence...).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.simulator.fields import NULL, boolean_for, string_for
from core.simulator.understanding import CUES, Reading, cue_hits

_MAX_DEPTH = 8
_PROSE_NAMES = ("summary", "description", "answer", "text", "reason", "explanation", "content", "message", "comment")
_FALLBACK_PLACES = ("Paris", "Berlin", "Tokyo", "Toronto", "Nairobi")


@dataclass(frozen=True)
class Hints:
    """Words from the prompt that generated strings draw on."""

    words: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    sentence: str = ""
    reading: Reading | None = None  # when set, enums, flags and named strings follow the input


def instance_for(schema: dict[str, Any], *, rng: random.Random, hints: Hints | None = None) -> object:
    """A value valid against ``schema``, the same one for the same ``rng`` state."""
    return _Generator(schema, rng, hints or Hints()).value(schema, name="", depth=0)


class _Generator:
    def __init__(self, root: dict[str, Any], rng: random.Random, hints: Hints) -> None:
        self.root = root
        self.rng = rng
        self.hints = hints

    def value(self, schema: dict[str, Any], *, name: str, depth: int) -> object:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self._enum(schema["enum"], name)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                branches = [self._resolve(b) for b in schema[key]]
                non_null = [b for b in branches if b.get("type") != "null"]
                if non_null and len(non_null) < len(branches) and self._decided_null(non_null[0], name):
                    return None
                return self.value((non_null or branches)[0], name=name, depth=depth)
        if schema.get("allOf"):
            return self.value(_merge(self._resolve(s) for s in schema["allOf"]), name=name, depth=depth)
        kind = _pick_type(schema)
        if isinstance(schema.get("type"), list) and "null" in schema["type"] and self._decided_null(schema, name):
            return None
        if depth > _MAX_DEPTH and kind in ("object", "array"):
            return {} if kind == "object" else []
        return getattr(self, f"_{kind}")(schema, name=name, depth=depth)

    def _enum(self, options: list[Any], name: str) -> object:
        reading = self.hints.reading
        chosen = reading.choose(name, options) if reading is not None else None
        chosen = self.rng.choice(options) if chosen is None else chosen
        if reading is not None and name:
            reading.decided[name] = chosen
        return chosen

    def _decided_null(self, schema: dict[str, Any], name: str) -> bool:
        if self.hints.reading is None or _pick_type(schema) != "string":
            return False
        return string_for(self.hints.reading, name.lower(), nullable=True) is NULL

    def _object(self, schema: dict[str, Any], *, name: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        return {key: self.value(sub, name=key, depth=depth + 1) for key, sub in properties.items()}

    def _array(self, schema: dict[str, Any], *, name: str, depth: int) -> list[Any]:
        low = schema.get("minItems", 1)
        high = schema.get("maxItems", max(low, 3))
        count = self.rng.randint(low, max(low, min(high, low + 2)))
        items = schema.get("items") or {}
        resolved = self._resolve(items)
        if self.hints.reading is not None and low == 0 and not self._has_cue(resolved, self.hints.reading):
            return []  # a list of classified findings is empty when nothing in the input fits a class
        if schema.get("uniqueItems") and resolved.get("enum"):
            return self.rng.sample(resolved["enum"], min(count, len(resolved["enum"])))
        values: list[Any] = []
        for index in range(count):
            item = self.value(items, name=f"{name}_{index}" if name else str(index), depth=depth + 1)
            if schema.get("uniqueItems") and item in values:
                continue
            values.append(item)
        return values

    def _has_cue(self, item: dict[str, Any], reading: Reading) -> bool:
        declared = [self._resolve(s).get("enum") for s in (item.get("properties") or {}).values()]
        enums: list[list[Any]] = [e for e in declared if e]
        if not enums:
            return True  # not a classified list: keep the generic behaviour
        return any(cue_hits(reading.text, CUES.get(str(o).lower(), ())) for e in enums for o in e)

    def _string(self, schema: dict[str, Any], *, name: str, depth: int) -> str:
        decided = string_for(self.hints.reading, name.lower(), nullable=False) if self.hints.reading else None
        text = decided if isinstance(decided, str) else self._string_for(name.lower(), schema.get("format"))
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if len(text) < low:
            text = (text + " " + "x" * low)[:low]
        return text[:high] if high is not None else text

    def _string_for(self, name: str, fmt: str | None) -> str:
        words = self.hints.words or ["example"]
        by_format = {
            "date-time": "2025-01-15T09:30:00Z",
            "date": "2025-01-15",
            "time": "09:30:00",
            "email": "alex.morgan@example.com",
            "uri": f"https://example.com/{words[0].lower()}",
            "uuid": f"{self.rng.getrandbits(32):08x}-0000-4000-8000-{self.rng.getrandbits(48):012x}",
        }
        if fmt in by_format:
            return by_format[fmt]
        if any(k in name for k in ("city", "location", "country", "place", "address", "destination")):
            return self.hints.places[0] if self.hints.places else self.rng.choice(_FALLBACK_PLACES)
        if "email" in name:
            return by_format["email"]
        if any(k in name for k in ("url", "link", "website")):
            return by_format["uri"]
        if "date" in name:
            return by_format["date"]
        if any(k in name for k in _PROSE_NAMES):
            return self.hints.sentence or f"A note about {words[0]}."
        if any(k in name for k in ("name", "title", "label", "topic", "subject")):
            return " ".join(w[0].upper() + w[1:] for w in words[:3])
        if name == "id" or name.endswith("_id"):
            return f"{name or 'id'}-{self.rng.randint(1000, 9999)}"
        return self.rng.choice(words)

    def _integer(self, schema: dict[str, Any], *, name: str, depth: int) -> int:
        low, high = _bounds(schema, step=1)
        return self.rng.randint(int(low), int(high))

    def _number(self, schema: dict[str, Any], *, name: str, depth: int) -> float:
        low, high = _bounds(schema, step=0.01)
        return min(max(round(self.rng.uniform(low, high), 2), low), high)

    def _boolean(self, schema: dict[str, Any], *, name: str, depth: int) -> bool:
        decided = boolean_for(self.hints.reading, name.lower()) if self.hints.reading else None
        return self.rng.random() < 0.5 if decided is None else decided

    def _null(self, schema: dict[str, Any], *, name: str, depth: int) -> None:
        return None

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follows local ``$ref`` pointers (``#/$defs/...``); remote refs are not supported."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < _MAX_DEPTH:
            target: Any = self.root  # a JSON document: objects, lists and scalars
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")] if part else target
            schema, seen = target, seen + 1
        return schema if isinstance(schema, dict) else {}


def _pick_type(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if non_null else "null"
    if declared in ("object", "array", "string", "integer", "number", "boolean", "null"):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _bounds(schema: dict[str, Any], *, step: float) -> tuple[float, float]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -step) + step)
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100 + step) - step)
    if low > high and "minimum" not in schema and "exclusiveMinimum" not in schema:
        low = high  # only an upper bound was given, and it is below our default floor
    multiple = schema.get("multipleOf")
    if multiple:
        # Keep it simple: the smallest multiple inside the range.
        value = -(-low // multiple) * multiple
        return value, value
    return low, max(low, high)


def _merge(schemas: Iterable[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"properties": {}, "required": []}
    for schema in schemas:
        merged.update({k: v for k, v in schema.items() if k not in ("properties", "required")})
        merged["properties"].update(schema.get("properties") or {})
        merged["required"] += schema.get("required") or []
    return merged
