import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core.budgets.pricing import PriceBook, Usage, cost_micro, usage_from_openai, worst_case_cost_micro
from core.errors import NotFound, ValidationError

MARCH = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SEPTEMBER = datetime(2025, 9, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.from_yaml()


def write_pricing(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pricing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_ENTRY = """
  - model: m1
    effective_from: 2025-01-01
    input: 1.00
    cached_input: 0.50
    output: 4.00
    source: test
"""


def test_shipped_file_covers_the_models_in_common_use(book):
    expected = [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "omni-moderation-latest",
        "text-moderation-latest",
    ]
    for model in expected:
        assert book.price_at(model, SEPTEMBER).source


def test_cached_input_priced_at_the_cached_rate(book):
    price = book.price_at("gpt-4.1", SEPTEMBER)  # $2.00 in, $0.50 cached, $8.00 out
    all_fresh = cost_micro(price, Usage(input_tokens=1_000_000))
    half_cached = cost_micro(price, Usage(input_tokens=1_000_000, cached_input_tokens=500_000))
    assert all_fresh == 2_000_000
    assert half_cached == 1_000_000 + 250_000


def test_reasoning_tokens_billed_as_output_and_not_twice(book):
    price = book.price_at("o4-mini", SEPTEMBER)  # $4.40 per 1M output
    with_reasoning = Usage(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=900_000)
    without = Usage(input_tokens=0, output_tokens=1_000_000)
    assert cost_micro(price, with_reasoning) == cost_micro(price, without) == 4_400_000


def test_price_change_mid_month(book):
    before = datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC)
    after = datetime(2025, 6, 10, 0, 0, tzinfo=UTC)
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_micro(book.price_at("o3", before), usage) == 50_000_000  # $10 + $40
    assert cost_micro(book.price_at("o3", after), usage) == 10_000_000  # $2 + $8


def test_effective_from_is_read_in_utc(book):
    # 01:00 on 10 June in UTC+2 is still 9 June in UTC: the old price.
    from datetime import timedelta, timezone

    local = datetime(2025, 6, 10, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert book.price_at("o3", local).input_micro_per_1m == 10_000_000


def test_gpt4o_2024_reduction_keeps_history(book):
    assert book.price_at("gpt-4o", datetime(2024, 6, 1, tzinfo=UTC)).input_micro_per_1m == 5_000_000
    assert book.price_at("gpt-4o", datetime(2024, 11, 1, tzinfo=UTC)).input_micro_per_1m == 2_500_000


def test_new_override_never_reprices_the_past(book):
    usage = Usage(input_tokens=10_000, cached_input_tokens=2_000, output_tokens=3_000)
    may = datetime(2025, 5, 20, tzinfo=UTC)
    past_cost = cost_micro(book.price_at("gpt-4.1-mini", may), usage)
    changed = book.with_overrides(
        [
            {
                "model": "gpt-4.1-mini",
                "effective_from": "2025-09-01",
                "input": "0.30",
                "cached_input": "0.075",
                "output": "1.20",
                "source": "negotiated rate",
            }
        ]
    )
    assert cost_micro(changed.price_at("gpt-4.1-mini", may), usage) == past_cost
    later = changed.price_at("gpt-4.1-mini", SEPTEMBER)
    assert later.input_micro_per_1m == 300_000 and later.origin == "price overrides"
    assert book.price_at("gpt-4.1-mini", SEPTEMBER).input_micro_per_1m == 400_000  # original untouched


def test_override_on_the_same_instant_wins_and_later_override_wins(book):
    entry = {"model": "gpt-5", "effective_from": date(2025, 8, 7), "input": "1.00", "source": "a"}
    once = book.with_overrides([entry])
    assert once.price_at("gpt-5", SEPTEMBER).input_micro_per_1m == 1_000_000
    twice = once.with_overrides([{**entry, "input": "0.90", "source": "b"}])
    assert twice.price_at("gpt-5", SEPTEMBER).source == "b"


def test_override_can_add_a_new_model(book):
    with pytest.raises(NotFound):
        book.price_at("ft:gpt-4.1-mini:acme::abc", SEPTEMBER)
    added = book.with_overrides(
        [
            {
                "model": "ft:gpt-4.1-mini:acme::abc",
                "effective_from": "2025-05-01T00:00:00Z",
                "input": "0.80",
                "cached_input": "0.20",
                "output": "3.20",
                "source": "fine-tune",
            }
        ]
    )
    assert added.price_at("ft:gpt-4.1-mini:acme::abc", SEPTEMBER).output_micro_per_1m == 3_200_000


def test_unknown_model_refused_naming_model_and_date(book):
    with pytest.raises(NotFound) as caught:
        book.price_at("foo", MARCH)
    assert str(caught.value) == (
        "No price for model 'foo' on 2025-03-01; add it to data/pricing.yaml or as an override"
    )


def test_known_model_before_its_first_price_refused(book):
    with pytest.raises(NotFound, match="'gpt-5' on 2025-08-06"):
        book.price_at("gpt-5", datetime(2025, 8, 6, 23, tzinfo=UTC))


def test_naive_instant_refused(book):
    with pytest.raises(ValidationError, match="timezone-aware"):
        book.price_at("gpt-5", datetime(2025, 9, 1))


def test_snapshot_alias_resolves(book):
    assert book.resolve_model("gpt-4.1-2025-04-14") == "gpt-4.1"
    assert book.price_at("gpt-4o-2024-11-20", SEPTEMBER) == book.price_at("gpt-4o", SEPTEMBER)
    # A snapshot priced differently from its family has its own entries.
    assert book.price_at("gpt-4o-2024-05-13", SEPTEMBER).input_micro_per_1m == 5_000_000
    # No string guessing: an unlisted snapshot is refused.
    with pytest.raises(NotFound, match="gpt-4.1-2099-01-01"):
        book.price_at("gpt-4.1-2099-01-01", SEPTEMBER)


def test_override_of_an_alias_refused(book):
    with pytest.raises(ValidationError, match="alias of 'gpt-4o'"):
        book.with_overrides(
            [{"model": "gpt-4o-2024-11-20", "effective_from": "2025-01-01", "input": "1", "source": "x"}]
        )


def test_moderation_is_free(book):
    usage = Usage(input_tokens=50_000)
    for model in ("omni-moderation-latest", "text-moderation-latest", "text-moderation-007"):
        assert cost_micro(book.price_at(model, SEPTEMBER), usage) == 0


def test_embeddings_are_input_only(book):
    price = book.price_at("text-embedding-3-small", SEPTEMBER)
    assert cost_micro(price, Usage(input_tokens=1_000_000)) == 20_000
    assert worst_case_cost_micro(price, 1_000_000, 0) == 20_000
    with pytest.raises(ValidationError, match="no output price"):
        cost_micro(price, Usage(input_tokens=1, output_tokens=1))


def test_worst_case_is_never_below_actual(book):
    price = book.price_at("gpt-5-mini", SEPTEMBER)
    bound = worst_case_cost_micro(price, input_upper_bound=1_234, max_output_tokens=567)
    for cached in (0, 600, 1_234):
        for output in (0, 1, 567):
            usage = Usage(input_tokens=1_234, cached_input_tokens=cached, output_tokens=output)
            assert cost_micro(price, usage) <= bound


def test_small_call_rounds_up_to_one_micro_dollar(book):
    price = book.price_at("gpt-5-nano", SEPTEMBER)  # $0.05 per 1M input
    assert cost_micro(price, Usage(input_tokens=1)) == 1  # 0.05 micro-dollars, rounded up


def test_usage_subsets_are_checked():
    with pytest.raises(ValidationError, match="cached_input_tokens"):
        Usage(input_tokens=10, cached_input_tokens=11)
    with pytest.raises(ValidationError, match="reasoning_tokens"):
        Usage(input_tokens=0, output_tokens=5, reasoning_tokens=6)
    with pytest.raises(ValidationError):
        Usage(input_tokens=-1)


def test_usage_from_openai_shapes():
    chat = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert usage_from_openai(chat) == Usage(100, 64, 50, 30)
    responses = {
        "input_tokens": 10,
        "output_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 2},
    }
    assert usage_from_openai(responses) == Usage(10, 0, 5, 2)
    assert usage_from_openai({"prompt_tokens": 7, "total_tokens": 7}) == Usage(7)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            GOOD_ENTRY.replace("    source: test\n", ""),
            r"prices\[0\] \(model m1, effective_from 2025-01-01\): 'source' is a required property",
        ),
        (GOOD_ENTRY.replace("input: 1.00", "input: -1.00"), r"prices\[0\] \(model m1.*input price cannot be negative"),
        (
            GOOD_ENTRY.replace("2025-01-01", "2025-13-01"),
            r"prices\[0\] \(model m1.*effective_from '2025-13-01' is not a date",
        ),
        (GOOD_ENTRY.replace("output: 4.00", "output: 0.0000001"), r"prices\[0\].*output.*finer than one micro-dollar"),
        (GOOD_ENTRY.replace("cached_input: 0.50", "cached_input: 2.00"), r"prices\[0\].*cached_input price is higher"),
        (GOOD_ENTRY.replace("source: test", "source: test\n    colour: blue"), r"prices\[0\].*'colour' was unexpected"),
        (GOOD_ENTRY + GOOD_ENTRY, r"prices\[1\] \(model m1, effective_from 2025-01-01\): a second entry"),
    ],
)
def test_bad_pricing_file_refused_naming_file_and_entry(tmp_path, entry, message):
    path = write_pricing(tmp_path, "prices:" + entry)
    with pytest.raises(ValidationError, match=message) as caught:
        PriceBook.from_yaml(path)
    assert str(path) in str(caught.value)


def test_bad_second_entry_is_named_by_position(tmp_path):
    second = GOOD_ENTRY.replace("m1", "m2").replace("output: 4.00", "output: lots")
    path = write_pricing(tmp_path, "prices:" + GOOD_ENTRY + second)
    with pytest.raises(ValidationError, match=r"prices\[1\] \(model m2.*output.*Not a dollar amount"):
        PriceBook.from_yaml(path)


def test_alias_to_unpriced_model_refused(tmp_path):
    path = write_pricing(tmp_path, "prices:" + GOOD_ENTRY + "aliases:\n  m1-2025: m9\n")
    with pytest.raises(ValidationError, match="'m1-2025' points at 'm9'"):
        PriceBook.from_yaml(path)


def test_unreadable_and_malformed_files_refused(tmp_path):
    with pytest.raises(ValidationError, match="cannot read"):
        PriceBook.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ValidationError, match="not valid YAML"):
        PriceBook.from_yaml(write_pricing(tmp_path, "prices: [\n"))
    with pytest.raises(ValidationError, match="'prices' is a required property"):
        PriceBook.from_yaml(write_pricing(tmp_path, "aliases: {}\n"))


@pytest.mark.parametrize("number", [".nan", ".inf", "-.inf", "1:30.5"])
def test_a_price_yaml_reads_as_a_float_but_no_decimal_holds_is_refused_by_line(tmp_path, number):
    """`.nan`, `.inf` and YAML 1.1's sexagesimal `1:30.5` are floats to YAML; read as Decimals
    they failed with decimal's own exception instead of a message naming the file."""
    text = "prices:" + GOOD_ENTRY.replace("input: 1.00", f"input: {number}")
    line = text.splitlines().index(f"    input: {number}") + 1
    path = write_pricing(tmp_path, text)
    with pytest.raises(ValidationError, match=f"not valid YAML.*{re.escape(number)} is not a finite decimal") as caught:
        PriceBook.from_yaml(path)
    assert str(path) in str(caught.value) and f"line {line}," in str(caught.value)


def test_prices_in_yaml_never_pass_through_float(tmp_path):
    # 0.000003 as a binary float times 1e6 is 2.9999999999999996; the file must give 3.
    entry = GOOD_ENTRY.replace("input: 1.00", "input: 0.000003").replace("cached_input: 0.50", "cached_input: 0.000001")
    book = PriceBook.from_yaml(write_pricing(tmp_path, "prices:" + entry))
    assert book.price_at("m1", MARCH).input_micro_per_1m == 3


def test_float_in_an_override_refused(book):
    with pytest.raises(ValidationError, match=r"overrides\[0\].*not float"):
        book.with_overrides([{"model": "x", "effective_from": "2025-01-01", "input": 0.1, "source": "s"}])


def test_a_price_override_form_reports_every_problem_at_once_in_its_own_words(session, directory):
    from core.budgets import prices
    from core.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        prices.add_override(
            session=session,
            actor=directory.admin,
            model=" ",
            effective_from="2026-12-01",
            input="",
            output="-1",
            source="",
        )
    assert str(refused.value) == (
        "Name the model; Give the input price (USD per 1M tokens); The output price cannot be negative (got -1); "
        "Say where the price comes from (e.g. the provider's pricing page)"
    )
    with pytest.raises(ValidationError, match=r"^The input price: Not a dollar amount: 'ten'$"):
        prices.add_override(
            session=session, actor=directory.admin, model="gpt-4o", effective_from="2026-12-01", input="ten", source="x"
        )
