"""The simulator's organization Usage and Costs APIs, in-process and over HTTP: OpenAI's page
and bucket shape, grouping, pagination, refusals in OpenAI's error shape, and a bill that
adds up to what was answered."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import clock
from core.finance.explain import Side, Tokens
from core.finance.reconcile import share_by_tokens
from core.simulator import SimulatorConfig
from core.simulator.billing import BillingLog, api_key_id
from tests.test_simulator import ask, carrier, http_server  # noqa: F401 - fixtures

DAY = date(2026, 11, 10)
START = int(datetime(2026, 11, 10, tzinfo=UTC).timestamp())


def _config_with_calls(carrier) -> tuple[SimulatorConfig, object]:  # noqa: F811 - the fixture
    config = SimulatorConfig()
    client = carrier.openai(config)
    clock.set_clock(lambda: datetime(2026, 11, 10, 9, tzinfo=UTC))
    try:
        ask(client, model="gpt-4o-mini")
        ask(client, model="gpt-4o-mini")
        ask(client, model="gpt-4o")
        client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    finally:
        clock.set_clock(None)
    return config, client


def test_usage_comes_back_in_openais_bucket_shape_grouped_as_asked(carrier):  # noqa: F811
    config, client = _config_with_calls(carrier)
    http = carrier.http(config)
    page = http.get(
        "/organization/usage/completions",
        params={"start_time": START, "end_time": START + 86400, "group_by": ["model", "api_key_id"]},
    ).json()
    assert page["object"] == "page" and page["has_more"] is False and page["next_page"] is None
    [bucket] = page["data"]
    assert bucket["object"] == "bucket" and (bucket["start_time"], bucket["end_time"]) == (START, START + 86400)
    by_model = {r["model"]: r for r in bucket["results"]}
    assert set(by_model) == {"gpt-4o", "gpt-4o-mini"}
    mini = by_model["gpt-4o-mini"]
    assert mini["object"] == "organization.usage.completions.result"
    assert mini["num_model_requests"] == 2 and mini["input_tokens"] > 0 and mini["output_tokens"] > 0
    assert mini["api_key_id"] == api_key_id("sk-sim") and mini["project_id"] is None  # not grouped by project
    embeddings = http.get("/organization/usage/embeddings", params={"start_time": START, "limit": 1}).json()
    [result] = embeddings["data"][0]["results"]
    assert result["object"] == "organization.usage.embeddings.result" and result["model"] is None


def test_costs_are_line_items_per_project_that_add_up(carrier):  # noqa: F811
    config, _client = _config_with_calls(carrier)
    page = (
        carrier.http(config)
        .get("/organization/costs", params={"start_time": START, "limit": 1, "group_by": ["line_item", "project_id"]})
        .json()
    )
    items = {r["line_item"]: r for r in page["data"][0]["results"]}
    assert {"gpt-4o-mini, input", "gpt-4o-mini, output", "gpt-4o, output", "text-embedding-3-small, input"} <= set(
        items
    )
    assert all(r["amount"]["currency"] == "usd" and r["project_id"] == "proj_quorum" for r in items.values())
    ungrouped = carrier.http(config).get("/organization/costs", params={"start_time": START, "limit": 1}).json()
    [total] = ungrouped["data"][0]["results"]
    assert total["amount"]["value"] == pytest.approx(sum(r["amount"]["value"] for r in items.values()))


def test_pages_follow_next_page_to_the_end(carrier):  # noqa: F811
    config = SimulatorConfig()
    http = carrier.http(config)
    seen, cursor = [], None
    while True:
        params = {
            "start_time": START,
            "end_time": START + 5 * 86400,
            "limit": 2,
            **({"page": cursor} if cursor else {}),
        }
        page = http.get("/organization/costs", params=params).json()
        seen += [bucket["start_time"] for bucket in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_page"]
    assert seen == [START + n * 86400 for n in range(5)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "start_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": START, "bucket_width": "1h"}, "bucket_width"),
        ({"start_time": START, "group_by": "user_id"}, "group_by"),
        ({"start_time": START, "page": "not-a-cursor"}, "page"),
    ],
)
def test_malformed_queries_are_refused_in_openais_error_shape(carrier, params, message):  # noqa: F811
    response = carrier.http().get("/organization/usage/completions", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == message


def test_the_log_survives_a_restart_and_two_processes_share_it(tmp_path):
    path = tmp_path / "bill.jsonl"
    first, second = BillingLog(path), BillingLog(path)
    first.add_usage(at=datetime(2026, 11, 10, 9, tzinfo=UTC), kind="completions", model="gpt-4o", input_tokens=7)
    second.add_usage(at=datetime(2026, 11, 10, 10, tzinfo=UTC), kind="completions", model="gpt-4o", input_tokens=5)
    first.set_price(model="gpt-4o", effective_from=DAY, input="9")
    for log in (first, second, BillingLog(path)):
        [(_key, count)] = list(log.usage("completions", DAY, date(2026, 11, 11)))
        assert (count.input_tokens, count.requests) == (12, 2)
        assert log.price("gpt-4o", DAY).input == 9_000_000
    assert "sk-" not in path.read_text()


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=8))
def test_a_foreign_projects_dollars_are_shared_among_its_keys_without_losing_a_micro_dollar(micro, tokens):
    sides = [Side(tokens=Tokens(input=n)) for n in tokens]
    share_by_tokens(micro, sides)
    assert sum(side.micro for side in sides) == micro and all(side.micro >= 0 for side in sides)


def test_a_reset_in_another_process_and_a_damaged_line_are_read_correctly(tmp_path):
    path = tmp_path / "bill.jsonl"
    reader, resetter = BillingLog(path), BillingLog(path)
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    reader.add_usage(at=at, kind="completions", model="gpt-4o", input_tokens=1_000)
    resetter.clear()  # the demo's reset, in another process
    resetter.add_usage(at=at, kind="completions", model="gpt-4o", input_tokens=3)
    with path.open("ab") as file:
        file.write(b'{"type": "usage", "day": "2026-11-10"\n')  # a line cut short by a crash
    resetter.add_usage(at=at, kind="completions", model="gpt-4o", input_tokens=4)
    for log in (reader, resetter, BillingLog(path)):
        [(_key, count)] = list(log.usage("completions", DAY, date(2026, 11, 11)))
        assert (count.input_tokens, count.requests) == (7, 2)


def test_many_usages_in_one_append_bill_as_the_same_usages_one_by_one_or_not_at_all(tmp_path):
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    usages = [
        {"at": at, "kind": "completions", "model": "gpt-4o", "input_tokens": n, "output_tokens": 2 * n}
        for n in range(1, 40)
    ]
    one_by_one, together = BillingLog(tmp_path / "one.jsonl"), BillingLog(tmp_path / "together.jsonl")
    for usage in usages:
        one_by_one.add_usage(**usage)
    together.add_usages(usages)
    for log in (together, BillingLog(tmp_path / "together.jsonl")):  # and as another process reads it
        [(_key, count)] = list(log.usage("completions", DAY, date(2026, 11, 11)))
        [(_key, expected)] = list(one_by_one.usage("completions", DAY, date(2026, 11, 11)))
        assert count == expected and count.requests == 39
    # One bad usage (an endpoint the provider has not) refuses the whole batch before a line is written.
    with pytest.raises(ValueError, match="Unknown usage kind"):
        together.add_usages([*usages, {"at": at, "kind": "images", "model": "dall-e-3", "input_tokens": 1}])
    [(_key, count)] = list(BillingLog(tmp_path / "together.jsonl").usage("completions", DAY, date(2026, 11, 11)))
    assert count.requests == 39
