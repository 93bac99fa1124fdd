"""Figures as a person reads them: one formatting layer for every page and export."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from core import formatting as fmt


def test_money_reads_as_dollars_and_cents_with_thousands():
    assert fmt.money(1_234_567_890) == "$1,234.57"
    assert fmt.money(0) == "$0.00"
    assert fmt.money(-2_500_000) == "-$2.50"
    assert fmt.money(10_000) == "$0.01"


def test_money_below_a_cent_keeps_the_digits_that_matter():
    assert fmt.money(4200) == "$0.0042"
    assert fmt.money(1) == "$0.000001"
    assert fmt.money(-50) == "-$0.00005"


def test_missing_values_never_read_as_none():
    for shown in (fmt.money(None), fmt.tokens(None), fmt.percent(None), fmt.when(None), fmt.text_or_missing(None)):
        assert shown == fmt.MISSING
    assert fmt.text_or_missing("") == fmt.MISSING
    assert fmt.percent(float("nan")) == fmt.MISSING


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_every_amount_of_a_cent_or_more_has_two_decimals_and_grouped_thousands(micro):
    shown = fmt.money(micro)
    if abs(micro) >= 10_000:
        assert re.fullmatch(r"-?\$\d{1,3}(,\d{3})*\.\d{2}", shown), shown
    assert "None" not in shown and "e" not in shown


def test_tokens_group_thousands_and_compact_for_charts():
    assert fmt.tokens(1_234_567) == "1,234,567"
    assert fmt.tokens(1_234_567, compact=True) == "1.2M"
    assert fmt.tokens(2_000, compact=True) == "2,000"
    assert fmt.tokens(45_000, compact=True) == "45k"


def test_small_shares_do_not_read_as_zero_percent():
    assert fmt.percent(0.8312) == "83%"
    assert fmt.percent(0.004) == "0.4%"
    assert fmt.percent(0.0001) == "<0.1%"
    assert fmt.percent(0) == "0%"


def test_times_name_the_zone_they_are_shown_in():
    moment = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
    assert fmt.when(moment) == "2026-11-27 13:05 UTC"
    assert fmt.when(moment, "Europe/Berlin") == "2026-11-27 14:05 CET"
    assert fmt.when(moment.replace(tzinfo=None)) == "2026-11-27 13:05 UTC"


def test_latency_reads_in_the_unit_that_fits():
    assert fmt.milliseconds(0.84) == "0.8 ms"
    assert fmt.milliseconds(1234.5) == "1,234 ms"
    assert fmt.milliseconds(65_000) == "65.0 s"


def test_stored_field_names_become_column_titles():
    assert fmt.column_title("spent_micro") == "Spent"
    assert fmt.column_title("used_pct") == "Used %"
    assert fmt.column_title("crosses_budget_on") == "Crosses budget on"


def test_a_price_keeps_every_digit_it_was_given():
    assert fmt.price(75_000) == "$0.075"
    assert fmt.price(2_500_000) == "$2.50"
    assert fmt.price(150_000) == "$0.15"
    assert fmt.price(1_234_567_891) == "$1,234.567891"
    assert fmt.price(0) == "$0.00"
    assert fmt.price(-10) == "-$0.00001"
    assert fmt.price(None) == fmt.MISSING


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_a_price_reads_back_to_the_exact_micro_dollars(micro):
    text = fmt.price(micro)
    assert Decimal(text.replace("$", "").replace(",", "")) * 1_000_000 == micro
