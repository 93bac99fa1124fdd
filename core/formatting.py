"""How figures read to a person: money, tokens, percentages, times and missing values.

One layer, so that every page, table and export header says `$1,234.56` the same way.
Pure functions over plain values; nothing here reads the database or knows a page.
Stored amounts stay integer micro-dollars; this rounding is for display only.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

MISSING = "—"
_MICRO_PER_DOLLAR = 1_000_000
_CENT_MICRO = 10_000


def money(micro: int | None) -> str:
    """`1234567890` -> `$1,234.57`; amounts below a cent keep the digits that matter
    (`4200` -> `$0.0042`), so a cheap call does not read as free; `None` -> `—`."""
    if micro is None:
        return MISSING
    sign = "-" if micro < 0 else ""
    size = abs(micro)
    if 0 < size < _CENT_MICRO:
        digits = f"{Decimal(size).scaleb(-6):f}".rstrip("0")
        return f"{sign}${digits}"
    cents = Decimal(size).scaleb(-6).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{sign}${cents:,.2f}"


def price(micro: int | None) -> str:
    """A rate (a price per 1M tokens) exactly, without trailing zeros past the cent:
    `75_000` -> `$0.075`, `2_500_000` -> `$2.50`; rounding a price would misstate every
    cost computed from it."""
    if micro is None:
        return MISSING
    sign = "-" if micro < 0 else ""
    exact = f"{Decimal(abs(micro)).scaleb(-6):,.6f}"
    whole, fraction = exact.split(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{fraction}"


def dollars(value: float | Decimal | None) -> str:
    """Money already in dollars (a chart's or a forecast's float) read like `money`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return money(int(Decimal(str(value)).scaleb(6).to_integral_value(rounding=ROUND_HALF_UP)))


def tokens(count: int | None, *, compact: bool = False) -> str:
    """`1234567` -> `1,234,567`, or `1.2M` when `compact` (chart labels, tight cards)."""
    if count is None:
        return MISSING
    if not compact or abs(count) < 10_000:
        return f"{count:,}"
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(count) >= size:
            return f"{count / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{count:,}"  # pragma: no cover - every |count| >= 10,000 met a suffix above


def percent(fraction: float | None, *, digits: int = 0) -> str:
    """`0.8312` -> `83%`; a small non-zero share keeps one significant digit (`0.004` ->
    `0.4%`) so it never reads as nothing."""
    if fraction is None or not math.isfinite(fraction):
        return MISSING
    value = fraction * 100
    if value != 0 and abs(value) < 1 and digits == 0:
        return f"{value:.1g}%" if abs(value) >= 0.1 else "<0.1%"
    return f"{value:.{digits}f}%"


def when(moment: datetime | None, zone: str = "UTC", *, seconds: bool = False) -> str:
    """A UTC instant in the viewer's time zone, the zone named: `2026-11-27 14:05 CET`."""
    if moment is None:
        return MISSING
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(ZoneInfo(zone))
    shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{local.strftime(shape)} {local.tzname() or zone}"


def milliseconds(value: float | None) -> str:
    """Latency: `0.84` -> `0.8 ms`, `1234.5` -> `1,235 ms`, `65000` -> `65.0 s`."""
    if value is None or not math.isfinite(value):
        return MISSING
    if value >= 60_000:
        return f"{value / 1000:,.1f} s"
    if value >= 10:
        return f"{value:,.0f} ms"
    return f"{value:.1f} ms"


def text_or_missing(value: object) -> str:
    """Table cells: `None` and empty strings read as `—`, never as the word "None"."""
    if value is None or value == "":
        return MISSING
    return str(value)


def column_title(name: str) -> str:
    """A stored field name as a column header: `used_pct` -> `Used %`, `spent_micro` ->
    `Spent`, `crosses_budget_on` -> `Crosses budget on`."""
    words = name.removesuffix("_micro").removesuffix("_usd")
    if words.endswith("_pct"):
        words = words.removesuffix("_pct") + " %"
    words = words.replace("_", " ").strip()
    return words[:1].upper() + words[1:]
