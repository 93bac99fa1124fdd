"""OpenAI's organization Usage and Costs APIs, answered from the simulator's billing log.

``GET /v1/organization/usage/completions``, ``/usage/embeddings`` and ``/costs`` in the
documented shape: a ``page`` of daily ``bucket`` objects (``start_time``, ``end_time``,
``results``), ``has_more`` and an opaque ``next_page`` cursor. Query parameters as the
provider takes them: ``start_time`` (required, Unix seconds), ``end_time``,
``bucket_width`` (only ``1d``, the width costs support), ``limit`` (buckets per page,
default 7, at most 31), ``page``, and ``group_by`` (repeated, or ``group_by[]``): usage by
``model``, ``project_id``, ``api_key_id``; costs by ``project_id``, ``line_item``.
Empty days are buckets with no results, as the provider sends them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

from core.simulator.api_error import bad_request
from core.simulator.billing import KINDS, BillingLog, UsageCount, cost_micro, day_of, day_start, next_day

USAGE_GROUPS = ("model", "project_id", "api_key_id")
COST_GROUPS = ("project_id", "line_item")
DEFAULT_LIMIT, MAX_LIMIT = 7, 31
PATHS = {
    "/v1/organization/usage/completions": "completions",
    "/v1/organization/usage/embeddings": "embeddings",
    "/v1/organization/costs": "costs",
}


def organization_page(billing: BillingLog, path: str, query: str) -> dict[str, Any]:
    """The page of buckets for one of ``PATHS``."""
    what = PATHS[path]
    params = parse_qs(query, keep_blank_values=True)
    groups = tuple(params.get("group_by", []) + params.get("group_by[]", []))
    allowed = COST_GROUPS if what == "costs" else USAGE_GROUPS
    unknown = [g for g in groups if g not in allowed]
    if unknown:
        raise bad_request(f"Invalid group_by value(s) {unknown}; allowed: {list(allowed)}.", param="group_by")
    width = _one(params, "bucket_width") or "1d"
    if width != "1d":
        raise bad_request("The simulator serves daily buckets only (bucket_width=1d).", param="bucket_width")
    start_text = _one(params, "start_time")
    if start_text is None:
        raise bad_request("Missing required parameter: 'start_time'.", param="start_time")
    first = day_of(_int(start_text, "start_time"))
    end_text = _one(params, "end_time")
    limit = min(max(_int(_one(params, "limit") or str(DEFAULT_LIMIT), "limit"), 1), MAX_LIMIT)
    end = day_of(_int(end_text, "end_time") - 1) + timedelta(days=1) if end_text else first + timedelta(days=limit)
    page = _one(params, "page")
    if page:
        if not page.startswith("page_"):
            raise bad_request("Invalid page cursor.", param="page")
        first = day_of(_int(page.removeprefix("page_"), "page"))
    last = min(end, first + timedelta(days=limit))
    buckets = []
    day = first
    while day < last:
        results = _costs(billing, day, groups) if what == "costs" else _usage(billing, what, day, groups)
        buckets.append(
            {"object": "bucket", "start_time": day_start(day), "end_time": day_start(next_day(day)), "results": results}
        )
        day = next_day(day)
    has_more = last < end
    return {
        "object": "page",
        "data": buckets,
        "has_more": has_more,
        "next_page": f"page_{day_start(last)}" if has_more else None,
    }


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"Invalid value for '{name}': {text!r} is not an integer.", param=name) from None


def _usage(billing: BillingLog, kind: str, day: date, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    assert kind in KINDS
    totals: dict[tuple[str | None, ...], UsageCount] = defaultdict(UsageCount)
    for key, count in billing.usage(kind, day, next_day(day)):
        group = tuple(getattr(key, name) if name in groups else None for name in USAGE_GROUPS)
        total = totals[group]
        total.input_tokens += count.input_tokens
        total.cached_tokens += count.cached_tokens
        total.output_tokens += count.output_tokens
        total.requests += count.requests
    results = []
    for (model, project_id, key_id), total in sorted(totals.items(), key=lambda item: str(item[0])):
        result: dict[str, Any] = {
            "object": f"organization.usage.{kind}.result",
            "input_tokens": total.input_tokens,
            "num_model_requests": total.requests,
            "project_id": project_id,
            "user_id": None,
            "api_key_id": key_id,
            "model": model,
        }
        if kind == "completions":
            result.update(
                output_tokens=total.output_tokens,
                input_cached_tokens=total.cached_tokens,
                input_audio_tokens=0,
                output_audio_tokens=0,
                batch=None,
            )
        results.append(result)
    return results


def _costs(billing: BillingLog, day: date, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    amounts: dict[tuple[str | None, str | None], Decimal] = defaultdict(Decimal)
    for kind in KINDS:
        for key, count in billing.usage(kind, day, next_day(day)):
            price = billing.price(key.model, day)
            if price is None:
                continue  # a model the provider does not list: not billed here
            cached_price = price.input if price.cached_input is None else price.cached_input
            items = {
                "input": cost_micro(count.input_tokens - count.cached_tokens, price.input),
                "cached input": cost_micro(count.cached_tokens, cached_price),
                "output": cost_micro(count.output_tokens, price.output),
            }
            for item, micro in items.items():
                if not micro:
                    continue
                group = (
                    key.project_id if "project_id" in groups else None,
                    f"{key.model}, {item}" if "line_item" in groups else None,
                )
                amounts[group] += micro
    return [
        {
            "object": "organization.costs.result",
            "amount": {"value": float((micro / 1_000_000).quantize(Decimal("1e-9"), ROUND_HALF_UP)), "currency": "usd"},
            "line_item": line_item,
            "project_id": project_id,
        }
        for (project_id, line_item), micro in sorted(amounts.items(), key=lambda item: str(item[0]))
    ]
