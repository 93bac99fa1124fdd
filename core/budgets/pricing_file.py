"""Reading price entries: the YAML file and admin overrides, validated before use.

A price that is wrong in the file is wrong on every invoice, so a malformed file is
refused whole, with the file and the entry named, rather than half loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from core.budgets.money import parse_dollars_to_micro
from core.errors import ValidationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PRICING_PATH = PROJECT_ROOT / "data" / "pricing.yaml"

_AMOUNT = {"type": ["number", "string"]}  # strings allowed so overrides can say "0.075"

PRICE_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "effective_from", "input", "source"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "minLength": 1, "pattern": r"^\S+$"},
        "effective_from": {"type": "string", "minLength": 10},
        "input": _AMOUNT,
        "cached_input": _AMOUNT,
        "output": _AMOUNT,
        "source": {"type": "string", "minLength": 1},
    },
}

PRICING_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["prices"],
    "additionalProperties": False,
    "properties": {
        # Entries are checked one by one below, so that an error can name its entry.
        "prices": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "aliases": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        # Read by core.budgets.model_limits: what each model accepts (not a price).
        "limits": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "max_output_tokens": {"type": "integer", "minimum": 1},
                    "context_window": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Price:
    """One model's prices from one instant on, in micro-dollars per 1M tokens."""

    model: str
    effective_from: datetime  # timezone-aware, UTC
    input_micro_per_1m: int
    cached_input_micro_per_1m: int  # equals the input price when there is no cache discount
    output_micro_per_1m: int | None  # None: the model produces no billable output
    source: str
    origin: str  # where the entry came from: the file's path, or "price overrides"


class _ExactYamlLoader(yaml.SafeLoader):
    """SafeLoader that reads floats as ``Decimal`` and timestamps as their text.

    Decimal: ``0.075`` must never pass through a binary float on its way to an int.
    Text: dates are parsed below with our own rules (a bare date means 00:00 UTC).
    """


def _exact_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    """A YAML float as a Decimal; what YAML reads as a float but no price can be (``.nan``,
    ``.inf``, the sexagesimal ``1:30.5``) is an error naming its line."""
    text = str(loader.construct_scalar(node))
    try:
        value = Decimal(text.replace("_", ""))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise yaml.constructor.ConstructorError(None, None, f"{text} is not a finite decimal number", node.start_mark)
    return value


_ExactYamlLoader.add_constructor("tag:yaml.org,2002:float", _exact_number)
_ExactYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def read_pricing_file(path: Path | str = DEFAULT_PRICING_PATH) -> tuple[list[Price], dict[str, str]]:
    """The price entries and the alias map of a pricing file, or ``ValidationError``."""
    path = Path(path)
    label = display_path(path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_ExactYamlLoader)  # noqa: S506
    except OSError as exc:
        raise ValidationError(f"{label}: cannot read the pricing file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{label}: not valid YAML ({exc})") from None
    problem = _first_schema_problem(PRICING_FILE_SCHEMA, document)
    if problem:
        raise ValidationError(f"{label}: {problem}")
    prices = parse_price_entries(document["prices"], origin=label, list_name="prices")
    aliases = dict(document.get("aliases") or {})
    check_aliases(aliases, prices, origin=label)
    return prices, aliases


def parse_price_entries(raw_entries: Iterable[Mapping[str, Any]], *, origin: str, list_name: str) -> list[Price]:
    """Validate and convert raw entries (from the file, or overrides from the app)."""
    prices: list[Price] = []
    seen: set[tuple[str, datetime]] = set()
    for index, raw in enumerate(raw_entries):
        where = f"{origin}: {list_name}[{index}]{_entry_label(raw)}"
        price = _parse_entry(raw, origin=origin, where=where)
        key = (price.model, price.effective_from)
        if key in seen:
            raise ValidationError(f"{where}: a second entry for the same model and effective_from")
        seen.add(key)
        prices.append(price)
    return prices


def check_aliases(aliases: Mapping[str, str], prices: Iterable[Price], *, origin: str) -> None:
    """Every alias points at a priced model, and no name is both alias and priced model."""
    priced = {price.model for price in prices}
    for alias, target in aliases.items():
        if alias in priced:
            raise ValidationError(f"{origin}: aliases: {alias!r} is both an alias and a priced model")
        if target not in priced:
            raise ValidationError(f"{origin}: aliases: {alias!r} points at {target!r}, which has no price entry")


def display_path(path: Path) -> str:
    """The path relative to the project when it is inside it (shorter in messages)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _parse_entry(raw: Any, *, origin: str, where: str) -> Price:
    raw = _dates_as_text(raw)
    problem = _first_schema_problem(PRICE_ENTRY_SCHEMA, raw)
    if problem:
        raise ValidationError(f"{where}: {problem}")
    effective_from = _parse_instant(raw["effective_from"], where=where)
    input_price = _parse_price(raw, "input", where=where)
    cached_price = _parse_price(raw, "cached_input", where=where) if "cached_input" in raw else input_price
    output_price = _parse_price(raw, "output", where=where) if "output" in raw else None
    if cached_price > input_price:
        # Worst-case reservations price every input token at the input rate; that is
        # only a bound if cached tokens never cost more.
        raise ValidationError(f"{where}: cached_input price is higher than the input price")
    return Price(
        model=raw["model"],
        effective_from=effective_from,
        input_micro_per_1m=input_price,
        cached_input_micro_per_1m=cached_price,
        output_micro_per_1m=output_price,
        source=raw["source"],
        origin=origin,
    )


def _parse_price(raw: Mapping[str, Any], field: str, *, where: str) -> int:
    try:
        micro = parse_dollars_to_micro(raw[field])
    except ValidationError as exc:
        raise ValidationError(f"{where}: {field}: {exc}") from None
    if micro < 0:
        raise ValidationError(f"{where}: {field} price cannot be negative ({raw[field]})")
    return micro


def _parse_instant(text: str, *, where: str) -> datetime:
    """A date means 00:00 UTC that day; a date-time must carry its offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{where}: effective_from {text!r} is not a date (YYYY-MM-DD)") from None
    if instant.tzinfo is None:
        raise ValidationError(f"{where}: effective_from {text!r} has a time but no UTC offset")
    return instant.astimezone(UTC)


def _dates_as_text(raw: Any) -> Any:
    """Overrides built in Python may carry date objects; the schema expects text."""
    if isinstance(raw, Mapping) and isinstance(raw.get("effective_from"), date | datetime):
        return {**raw, "effective_from": raw["effective_from"].isoformat()}
    return raw


def _entry_label(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return ""
    parts = [f"{key} {raw[key]!s}" for key in ("model", "effective_from") if key in raw]
    return f" ({', '.join(parts)})" if parts else ""


def _first_schema_problem(schema: dict[str, Any], instance: Any) -> str | None:
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is None:
        return None
    location = ".".join(str(part) for part in error.absolute_path)
    return f"{location}: {error.message}" if location else error.message
