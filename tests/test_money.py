from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.budgets.money import (
    MAX_DOLLARS,
    MAX_MICRO,
    ceil_div,
    format_cents,
    format_micro,
    micro_to_decimal,
    parse_dollars_to_micro,
    token_cost_micro,
)
from core.errors import ValidationError


def test_decimal_strings_parse_exactly():
    assert parse_dollars_to_micro("0.1") + parse_dollars_to_micro("0.2") == parse_dollars_to_micro("0.3")
    assert parse_dollars_to_micro("0.075") == 75_000
    assert parse_dollars_to_micro(Decimal("1234.567891")) == 1_234_567_891
    assert parse_dollars_to_micro("$1,234.50") == 1_234_500_000
    assert parse_dollars_to_micro(3) == 3_000_000


def test_floats_are_refused():
    with pytest.raises(ValidationError, match="not float"):
        parse_dollars_to_micro(0.1)


@pytest.mark.parametrize("bad", ["0.0000001", "abc", "NaN", "Infinity", ""])
def test_inexact_or_non_amounts_are_refused(bad):
    with pytest.raises(ValidationError):
        parse_dollars_to_micro(bad)


@pytest.mark.parametrize("huge", ["1e18", "1000000000000.000001", "-1e13", 10**13, Decimal("9.3e12")])
def test_an_amount_beyond_a_trillion_dollars_is_refused_by_name(huge):
    # A bigger amount would not fit the databases' 64-bit integers once in micro-dollars.
    with pytest.raises(ValidationError, match=r"largest Quorum accepts, \$1,000,000,000,000"):
        parse_dollars_to_micro(huge)


@given(st.integers(min_value=-MAX_MICRO, max_value=MAX_MICRO))
def test_every_amount_up_to_the_limit_round_trips_exactly(micro):
    assert parse_dollars_to_micro(str(micro_to_decimal(micro))) == micro
    assert parse_dollars_to_micro(MAX_DOLLARS) == MAX_MICRO < 2**63


def test_formatting():
    assert format_micro(1_234_567_890) == "$1,234.567890"
    assert format_micro(0) == "$0.000000"
    assert format_micro(-5) == "-$0.000005"
    assert format_cents(1_234_567_890) == "$1,234.57"
    assert format_cents(5_000) == "$0.01"  # half a cent rounds up for display
    assert format_cents(4_999) == "$0.00"
    assert format_cents(-1_234_567_890) == "-$1,234.57"
    assert micro_to_decimal(75_000) == Decimal("0.075")


def test_ten_thousand_small_costs_sum_exactly():
    # 0.1 cent ten thousand times is exactly $10; a float sum would drift.
    assert sum(parse_dollars_to_micro("0.001") for _ in range(10_000)) == 10_000_000


def test_costs_round_up_once_to_the_micro_dollar():
    assert ceil_div(1, 1_000_000) == 1
    assert ceil_div(0, 1_000_000) == 0
    assert ceil_div(2_000_000, 1_000_000) == 2
    # 1 token at $0.005/1M is 0.005 micro-dollars: rounds up to 1.
    assert token_cost_micro((1, 5_000)) == 1
    # Two classes of 0.5 micro-dollar each: summed before rounding, so 1, not 2.
    assert token_cost_micro((1, 500_000), (1, 500_000)) == 1
    assert token_cost_micro() == 0


def test_results_are_ints():
    assert type(token_cost_micro((123_456, 2_500_000))) is int
    assert type(parse_dollars_to_micro("2.50")) is int
