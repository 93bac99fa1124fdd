"""The price book: which price applies to a call, and what the call costs.

Prices come from ``data/pricing.yaml`` with admin overrides layered on top. A price is
looked up for the instant of the call, so adding a new entry never re-prices the past.
A model without a price is refused (fail closed): a gateway that priced unknown models
at zero would let any budget be bypassed by naming a new model.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.budgets.money import token_cost_micro
from core.budgets.pricing_file import (
    DEFAULT_PRICING_PATH,
    Price,
    check_aliases,
    display_path,
    parse_price_entries,
    read_pricing_file,
)
from core.budgets.usage import Usage, usage_from_openai
from core.errors import NotFound, ValidationError

__all__ = [
    "DEFAULT_PRICING_PATH",
    "Price",
    "PriceBook",
    "Usage",
    "cost_micro",
    "usage_from_openai",
    "worst_case_cost_micro",
]

OVERRIDES_ORIGIN = "price overrides"


class PriceBook:
    """Prices by model and instant; immutable (``with_overrides`` returns a new book)."""

    def __init__(
        self,
        prices: Sequence[Price],
        aliases: Mapping[str, str] | None = None,
        *,
        overrides: Sequence[Price] = (),
        file_label: str = "data/pricing.yaml",
    ) -> None:
        self._base = tuple(prices)
        self._overrides = tuple(overrides)
        self._aliases = dict(aliases or {})
        self.file_label = file_label
        check_aliases(self._aliases, (*self._base, *self._overrides), origin=file_label)
        # Base entries first, overrides after: on the same instant the override wins, and
        # among overrides the later one in the list wins (stable sort keeps that order).
        timelines: dict[str, list[Price]] = {}
        for price in (*self._base, *self._overrides):
            timelines.setdefault(price.model, []).append(price)
        self._timelines = {
            model: sorted(entries, key=lambda price: price.effective_from) for model, entries in timelines.items()
        }

    @classmethod
    def from_yaml(cls, path: Path | str = DEFAULT_PRICING_PATH) -> PriceBook:
        prices, aliases = read_pricing_file(path)
        return cls(prices, aliases, file_label=display_path(Path(path)))

    def with_overrides(self, raw_overrides: Iterable[Mapping[str, Any]]) -> PriceBook:
        """A new book with extra entries (same shape as the file's) layered on top."""
        overrides = parse_price_entries(raw_overrides, origin=OVERRIDES_ORIGIN, list_name="overrides")
        for index, price in enumerate(overrides):
            if price.model in self._aliases:
                raise ValidationError(
                    f"{OVERRIDES_ORIGIN}: overrides[{index}]: {price.model!r} is an alias of "
                    f"{self._aliases[price.model]!r}; price {self._aliases[price.model]!r} instead"
                )
        return PriceBook(
            self._base,
            self._aliases,
            overrides=(*self._overrides, *overrides),
            file_label=self.file_label,
        )

    def resolve_model(self, model: str) -> str:
        """The priced name for a model name (a dated snapshot maps through the alias map)."""
        return self._aliases.get(model, model)

    def models(self) -> list[str]:
        """Every priced model name, sorted (aliases not included)."""
        return sorted(self._timelines)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def history(self, model: str) -> list[Price]:
        """All entries for a model (or its alias target), oldest first."""
        return list(self._timelines.get(self.resolve_model(model), []))

    def price_at(self, model: str, when: datetime) -> Price:
        """The price in effect for ``model`` at the instant ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValidationError("price_at needs a timezone-aware instant; naive times are ambiguous")
        when = when.astimezone(UTC)
        priced_as = self.resolve_model(model)
        timeline = self._timelines.get(priced_as, [])
        position = bisect_right([price.effective_from for price in timeline], when)
        if position == 0:
            alias_note = f" (priced as {priced_as!r})" if priced_as != model else ""
            raise NotFound(
                f"No price for model {model!r}{alias_note} on {when.date().isoformat()}; "
                f"add it to {self.file_label} or as an override"
            )
        return timeline[position - 1]


def cost_micro(price: Price, usage: Usage) -> int:
    """Actual cost in micro-dollars, rounded up once (see ``core.budgets.money``).

    Uncached input at the input price, cached input at the cached price, and all output
    tokens (reasoning included, since it is a subset of output) at the output price.
    """
    return token_cost_micro(
        (usage.uncached_input_tokens, price.input_micro_per_1m),
        (usage.cached_input_tokens, price.cached_input_micro_per_1m),
        (usage.output_tokens, _output_price(price, usage.output_tokens)),
    )


def worst_case_cost_micro(price: Price, input_upper_bound: int, max_output_tokens: int) -> int:
    """The most a call can cost: every input token uncached, every allowed output token used.

    Never below ``cost_micro`` for a usage within these bounds: cached input is never
    dearer than input (the file refuses otherwise) and the rounding is the same ceiling.
    """
    if input_upper_bound < 0 or max_output_tokens < 0:
        raise ValidationError("Token bounds cannot be negative")
    return token_cost_micro(
        (input_upper_bound, price.input_micro_per_1m),
        (max_output_tokens, _output_price(price, max_output_tokens)),
    )


def _output_price(price: Price, output_tokens: int) -> int:
    if price.output_micro_per_1m is None:
        if output_tokens:
            raise ValidationError(
                f"Model {price.model!r} has no output price, yet {output_tokens} output tokens were counted"
            )
        return 0
    return price.output_micro_per_1m
