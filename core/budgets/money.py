"""Money as integer micro-dollars, end to end.

A float cannot hold 0.1 exactly, and sums of per-call costs in floats drift; budgets
compare those sums against limits, so every amount here is an ``int`` of micro-dollars
(1 USD = 1,000,000). Decimal strings and ``Decimal`` come in, ``int`` goes out, and a
float is refused at the door rather than silently rounded.

Rounding rule (the one rule, used for actual costs and for worst-case reservations):
a cost in tokens is computed exactly as a rational number and rounded UP (ceiling) to
the next whole micro-dollar, once per call. Rounding up never under-reports spend, and
because the same monotone rule prices both the reservation and the settlement, a
reservation for an upper bound of tokens is never smaller than the settled cost. The
bias is below one micro-dollar per call ($1 per million calls).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from core.errors import ValidationError

MICRO_PER_DOLLAR = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per 1M tokens
# The largest amount a price, cap or limit may state: a trillion dollars. Sums of many such
# amounts must still fit the databases' 64-bit integers (9.2e18 micro-dollars).
MAX_DOLLARS = 10**12
MAX_MICRO = MAX_DOLLARS * MICRO_PER_DOLLAR


def parse_dollars_to_micro(value: str | Decimal | int) -> int:
    """Exact micro-dollars for a dollar amount: ``"0.075"`` -> ``75_000``.

    Refuses floats (already inexact) and amounts finer than a micro-dollar (they would
    need rounding, and a price or a limit should be stated exactly).
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise ValidationError(
            f"Money must be given as a decimal string or Decimal, not {type(value).__name__} {value!r}"
        )
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").removeprefix("$")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValidationError(f"Not a dollar amount: {value!r}") from None
    elif isinstance(value, Decimal):
        amount = value
    else:
        raise ValidationError(f"Not a dollar amount: {value!r}")
    if not amount.is_finite():
        raise ValidationError(f"Not a finite dollar amount: {value!r}")
    if abs(amount) > MAX_DOLLARS:
        raise ValidationError(f"Dollar amount {value!r} is more than the largest Quorum accepts, ${MAX_DOLLARS:,}")
    micro = amount * MICRO_PER_DOLLAR
    if micro != micro.to_integral_value():
        raise ValidationError(f"Dollar amount {value!r} is finer than one micro-dollar ($0.000001)")
    return int(micro)


def micro_to_decimal(micro: int) -> Decimal:
    """Dollars as an exact ``Decimal`` (for exports and arithmetic outside this module)."""
    return Decimal(micro).scaleb(-6)


def format_micro(micro: int) -> str:
    """Full precision for ledgers and audit views: ``1234567890`` -> ``"$1,234.567890"``."""
    sign = "-" if micro < 0 else ""
    dollars, fraction = divmod(abs(micro), MICRO_PER_DOLLAR)
    return f"{sign}${dollars:,}.{fraction:06d}"


def format_cents(micro: int) -> str:
    """Rounded to cents for dashboards: ``1234567890`` -> ``"$1,234.57"``.

    Display rounding is half-up (away from zero), the convention people expect on a
    report; it never feeds back into any stored amount.
    """
    cents = micro_to_decimal(micro).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def ceil_div(numerator: int, denominator: int) -> int:
    """Integer ceiling of ``numerator / denominator`` (positive denominator), no float."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    return -(-numerator // denominator)


def token_cost_micro(*terms: tuple[int, int]) -> int:
    """Cost of several token classes, each ``(tokens, price_micro_per_1m)``, rounded up once.

    Summing exact numerators before the single ceiling keeps the result within one
    micro-dollar of the true cost, whatever the number of token classes.
    """
    numerator = 0
    for tokens, price_micro_per_1m in terms:
        if tokens < 0 or price_micro_per_1m < 0:
            raise ValidationError("Token counts and prices cannot be negative")
        numerator += tokens * price_micro_per_1m
    return ceil_div(numerator, TOKENS_PER_PRICE_UNIT)
