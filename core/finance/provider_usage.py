"""The provider's own figures: OpenAI's organization Usage and Costs APIs, one UTC day at a time.

The SDK has no methods for these endpoints, so they are read with its low-level
``client.get`` (which keeps its retries, timeouts and error types), page by page while the
answer says ``has_more``. The key is the admin key (``QUORUM_OPENAI_ADMIN_KEY``), never the
gateway's: an organization's usage is not readable with a project key. With no OpenAI key
at all, Quorum's built-in simulator plays the provider, from the log of what it answered.
Anything that keeps the figures from arriving whole is a ``ProviderUnreachable``: a
reconciliation never runs on a partial bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import openai

from core.errors import QuorumError
from core.settings import Settings
from core.simulator import SimulatorConfig, simulated_client
from core.simulator.billing import shared_log

USAGE_PATHS = {"completions": "/organization/usage/completions", "embeddings": "/organization/usage/embeddings"}
COSTS_PATH = "/organization/costs"
MAX_PAGES = 100  # a day is one bucket; more pages than this is a provider that never stops


class ProviderUnreachable(QuorumError):
    """The provider's usage or costs could not be read in full; nothing is marked reconciled."""


@dataclass(frozen=True)
class ProviderUsage:
    """Tokens the provider counted for one model under one project and key on one day."""

    model: str
    project_id: str
    api_key_id: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    requests: int


@dataclass(frozen=True)
class ProviderCost:
    """Dollars the provider billed on one day for one line item (``gpt-4o-mini, cached input``)."""

    project_id: str
    model: str
    item: str
    micro: int


@dataclass(frozen=True)
class ProviderDay:
    day: date
    usage: tuple[ProviderUsage, ...]
    costs: tuple[ProviderCost, ...]
    pages: int  # how many pages the read that fetched this day took, all endpoints together


class ProviderClient:
    """Reads one day of the provider's usage and costs through an ``openai.OpenAI`` client."""

    def __init__(self, client: openai.OpenAI | None, *, problem: str | None = None, page_size: int = 31) -> None:
        self.client, self.problem, self.page_size = client, problem, page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderClient:
        if settings.uses_simulator:
            billing = shared_log(settings.simulator_billing_log)
            return cls(simulated_client(SimulatorConfig(billing=billing), max_retries=2, timeout=30.0))
        if not settings.openai_admin_key:
            return cls(
                None,
                problem="No admin key: set QUORUM_OPENAI_ADMIN_KEY to an OpenAI admin key to read the "
                "organization's usage and costs (the gateway's key cannot read them)",
            )
        client = openai.OpenAI(
            api_key=settings.openai_admin_key, base_url=settings.openai_base_url, max_retries=2, timeout=30.0
        )
        return cls(client)

    def day(self, day: date) -> ProviderDay:
        """Every usage result and cost line of ``day`` (UTC), or ``ProviderUnreachable``."""
        return self.days(day, day + timedelta(days=1))[day]

    def days(self, first: date, end: date) -> dict[date, ProviderDay]:
        """Each UTC day ``first`` <= day < ``end``: one read of each endpoint, every page."""
        if self.client is None:
            raise ProviderUnreachable(self.problem or "The provider is not configured")
        if end <= first:
            return {}
        params: dict[str, Any] = {"start_time": _epoch(first), "end_time": _epoch(end), "bucket_width": "1d"}
        usage: dict[date, list[ProviderUsage]] = {}
        costs: dict[date, list[ProviderCost]] = {}
        pages = 0
        for path in USAGE_PATHS.values():
            buckets, read = self._buckets(path, {**params, "group_by": ["model", "project_id", "api_key_id"]})
            pages += read
            for bucket in buckets:
                usage.setdefault(_bucket_day(bucket), []).extend(_usage(r) for r in bucket.get("results") or [])
        buckets, read = self._buckets(COSTS_PATH, {**params, "group_by": ["project_id", "line_item"]})
        pages += read
        for bucket in buckets:
            costs.setdefault(_bucket_day(bucket), []).extend(_cost(r) for r in bucket.get("results") or [])
        answer = {}
        day = first
        while day < end:
            answer[day] = ProviderDay(day, tuple(usage.get(day, [])), tuple(costs.get(day, [])), pages)
            day += timedelta(days=1)
        return answer

    def _buckets(self, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """Every bucket of every page, and how many pages that took."""
        assert self.client is not None
        page: str | None = None
        buckets: list[dict[str, Any]] = []
        for read in range(1, MAX_PAGES + 1):
            query = {**params, "limit": self.page_size, **({"page": page} if page else {})}
            body = self._get(path, query)
            data = body.get("data")
            if body.get("object") != "page" or not isinstance(data, list):
                raise ProviderUnreachable(f"The provider's answer from {path} is not a page of buckets")
            buckets += [bucket for bucket in data if isinstance(bucket, dict)]
            if not body.get("has_more"):
                return buckets, read
            page = body.get("next_page")
            if not page:
                raise ProviderUnreachable(f"The provider said {path} has more pages but gave no next_page cursor")
        raise ProviderUnreachable(f"The provider's {path} did not stop after {MAX_PAGES} pages")

    def _get(self, path: str, query: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        try:
            body = self.client.get(path, cast_to=object, options={"params": query})
        except openai.APIStatusError as error:
            raise ProviderUnreachable(
                f"The provider refused {path} (HTTP {error.status_code}): {_message(error)}"
            ) from None
        except (openai.APIError, httpx.HTTPError) as error:
            raise ProviderUnreachable(f"The provider could not be reached for {path}: {type(error).__name__}") from None
        if not isinstance(body, dict):
            raise ProviderUnreachable(f"The provider's answer from {path} is not a JSON object")
        return body


def _epoch(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())


def _bucket_day(bucket: dict[str, Any]) -> date:
    try:
        return datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
    except (KeyError, TypeError, ValueError):
        raise ProviderUnreachable("A bucket of the provider's answer has no start_time") from None


def _message(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    return str(body.get("message") or "no detail")[:200]


def _usage(result: dict[str, Any]) -> ProviderUsage:
    return ProviderUsage(
        model=str(result.get("model") or ""),
        project_id=str(result.get("project_id") or ""),
        api_key_id=str(result.get("api_key_id") or ""),
        input_tokens=int(result.get("input_tokens") or 0),
        cached_tokens=int(result.get("input_cached_tokens") or 0),
        output_tokens=int(result.get("output_tokens") or 0),
        requests=int(result.get("num_model_requests") or 0),
    )


def _cost(result: dict[str, Any]) -> ProviderCost:
    line_item = str(result.get("line_item") or "")
    model, _, item = line_item.rpartition(", ")
    amount = result.get("amount") or {}
    # The provider sends dollars as a JSON number; read it as the decimal it prints as.
    micro = int((Decimal(str(amount.get("value") or 0)) * 1_000_000).quantize(Decimal(1), ROUND_HALF_UP))
    return ProviderCost(
        project_id=str(result.get("project_id") or ""), model=model or line_item, item=item or "", micro=micro
    )
