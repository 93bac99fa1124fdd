"""Why a day's ledger and the provider's bill differ, per model: the comparison itself.

Pure functions over what both sides counted; ``reconcile`` reads the two sides and stores
what comes out. The kinds, in the order they are tried:

- ``bypass``: the provider counted usage under a project or key that is not Quorum's, or
  more under Quorum's own than Quorum sent (and calls in flight do not account for it):
  traffic that went around every guardrail and budget.
- ``in_flight``: Quorum dates a call when it starts, the provider when it answers; a call
  that started just before midnight is on the next day of the bill.
- ``cached_pricing``: the tokens agree but cached input was priced differently (the
  provider's cached-input rate is not the book's, or the book has none).
- ``price_book``: the tokens agree but the provider billed another rate than the price
  book's entry for that model and date.
- ``unexplained``: Quorum counted more than the provider billed, with no call in flight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from core.budgets.money import format_micro
from core.budgets.pricing import Price

KINDS = ("match", "in_flight", "cached_pricing", "price_book", "bypass", "unexplained")
KIND_LABELS = {
    "match": "Matches",
    "in_flight": "Calls in flight at midnight",
    "cached_pricing": "Cached-token pricing",
    "price_book": "Price book differs from the bill",
    "bypass": "Usage that bypassed Quorum",
    "unexplained": "Unexplained",
}


@dataclass
class Tokens:
    input: int = 0
    cached: int = 0
    output: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output

    def add(self, other: Tokens) -> None:
        self.input += other.input
        self.cached += other.cached
        self.output += other.output


@dataclass
class Side:
    """One model's figures on one side: tokens and micro-dollars (per line item for the provider)."""

    tokens: Tokens = field(default_factory=Tokens)
    micro: int = 0
    items: dict[str, int] = field(default_factory=dict)  # provider only: "input" | "cached input" | "output"


@dataclass(frozen=True)
class Line:
    model: str
    project_id: str
    api_key_id: str
    kind: str
    quorum: Tokens
    provider: Tokens
    quorum_micro: int
    provider_micro: int
    explanation: str


@dataclass(frozen=True)
class Boundary:
    """Tokens of Quorum's calls that started close enough to a midnight to finish after it."""

    before_start: int  # started in the window before this day began (the provider may bill them today)
    before_end: int  # started in the window before this day ended (the provider may bill them tomorrow)


def compare_model(
    *,
    day: date,
    model: str,
    quorum: Side,
    ours: Side,
    others: Mapping[tuple[str, str], Side],
    price: Price | None,
    boundary: Boundary,
    tolerance_micro: int,
    our_project: str,
    our_key: str,
) -> list[Line]:
    """The lines of one model on one day: Quorum's own traffic, then every foreign project or key."""
    lines = []
    for (project_id, key_id), side in sorted(others.items()):
        lines.append(
            Line(
                model,
                project_id,
                key_id,
                "bypass",
                Tokens(),
                side.tokens,
                0,
                side.micro,
                f"The provider counted {side.tokens.total:,} tokens of {model} ({format_micro(side.micro)}) under "
                f"project {project_id or 'unknown'}, key {key_id or 'unknown'}: not Quorum's, so these calls "
                "bypassed every guardrail and budget.",
            )
        )
    if not (quorum.tokens.total or ours.tokens.total or quorum.micro or ours.micro):
        return lines
    kind, why = _explain(day, model, quorum, ours, price, boundary, tolerance_micro)
    lines.insert(0, Line(model, our_project, our_key, kind, quorum.tokens, ours.tokens, quorum.micro, ours.micro, why))
    return lines


def _explain(
    day: date, model: str, quorum: Side, ours: Side, price: Price | None, boundary: Boundary, tolerance: int
) -> tuple[str, str]:
    gap = ours.tokens.total - quorum.tokens.total
    if gap > 0:
        if gap <= boundary.before_start:
            return "in_flight", (
                f"The provider billed {gap:,} more tokens of {model} than Quorum counted on {day}; Quorum's calls "
                f"that started just before midnight ({boundary.before_start:,} tokens) ended on this day, and "
                "the provider dates a call by its end."
            )
        return "bypass", (
            f"The provider counted {gap:,} more tokens of {model} under Quorum's own project and key than Quorum "
            "sent: calls made with Quorum's provider key outside Quorum."
        )
    if gap < 0:
        if -gap <= boundary.before_end:
            return "in_flight", (
                f"Quorum counted {-gap:,} more tokens of {model} than the provider billed on {day}: calls that "
                "started just before midnight, billed by the provider on the next day."
            )
        return "unexplained", (
            f"Quorum counted {-gap:,} more tokens of {model} than the provider billed, and no call was in "
            "flight at midnight."
        )
    difference = ours.micro - quorum.micro
    if abs(difference) <= tolerance:
        return "match", ""
    if quorum.tokens.cached != ours.tokens.cached:
        return "cached_pricing", (
            f"The provider counted {ours.tokens.cached:,} of the input tokens of {model} as cached, Quorum "
            f"{quorum.tokens.cached:,}: cached input is priced lower."
        )
    billed = {item: _rate(micro, _tokens_of(item, ours.tokens)) for item, micro in ours.items.items()}
    if price is None:
        return "price_book", f"Quorum's price book has no price for {model} on {day}."
    book_cached = price.cached_input_micro_per_1m
    book = {"input": price.input_micro_per_1m, "output": price.output_micro_per_1m or 0}
    book["cached input"] = price.input_micro_per_1m if book_cached is None else book_cached
    # An item differs when its bill is off the book's rate by more than 1% (and a micro-dollar
    # of rounding): the amounts of a bill are rounded, so small items imply inexact rates.
    differing = {
        item: rate
        for item, rate in billed.items()
        if rate is not None
        and abs(ours.items[item] - book.get(item, 0) * _tokens_of(item, ours.tokens) / 1_000_000)
        > 1 + book.get(item, 0) * _tokens_of(item, ours.tokens) / 100_000_000
    }
    if set(differing) == {"cached input"}:
        note = "" if book_cached is not None else " (the book has no cached price, so it charges the input price)"
        return "cached_pricing", (
            f"The provider billed cached input of {model} at {_per_1m(differing['cached input'])} per 1M tokens on "
            f"{day}; Quorum's price book has {_per_1m(book['cached input'])}{note}."
        )
    described = "; ".join(
        f"{item} at {_per_1m(rate)} per 1M tokens (the book: {_per_1m(book.get(item, 0))})"
        for item, rate in sorted(differing.items())
    )
    return "price_book", (
        f"The provider billed {model} on {day} {described or 'a different total'}: Quorum's price book entry "
        f"from {price.effective_from.date()} ({price.source}) differs from the bill by {format_micro(difference)}."
    )


def _tokens_of(item: str, tokens: Tokens) -> int:
    return {"input": tokens.input - tokens.cached, "cached input": tokens.cached, "output": tokens.output}.get(item, 0)


def _rate(micro: int, tokens: int) -> int | None:
    """The price per 1M tokens a line item implies, to the micro-dollar (None without tokens)."""
    if tokens <= 0:
        return None
    # Round to a tenth of a cent per 1M: the bill's amounts are rounded, the rates behind them are not.
    rate = Decimal(micro) * 1_000_000 / tokens
    return int((rate / 1_000).quantize(Decimal(1), ROUND_HALF_UP) * 1_000)


def _per_1m(micro: int) -> str:
    return "$" + str((Decimal(micro) / 1_000_000).normalize())
