"""What the simulated provider would bill: the usage it answered, kept per day, and its prices.

OpenAI's organization Usage and Costs APIs report what the provider counted, and Quorum
reconciles its ledger against them; the simulator serves the same endpoints from this
log, so a reconciliation against the simulator compares the ledger with what the
simulator actually answered. Two things can be added on purpose, so that a demo and the
tests can show each kind of difference:

- ``add_usage`` with another project or key: traffic that never passed through Quorum
  (a leaked or forgotten key calling the provider directly);
- ``set_price``: the provider bills a model at another price from a date on (price drift),
  where the list prices otherwise come from ``data/pricing.yaml``.

The log is aggregated per (UTC day, endpoint, model, project, key), so it stays small
however many calls it counts. With a ``path`` it is also appended to a JSON-lines file
and read back on start: the demo's gateway, the dashboard and ``quorum finance
reconcile`` are separate processes (and the demo restarts), and all of them must see
the same provider. In memory (no path) for the in-process transport of the tests.
Appends of one short line are atomic on POSIX, so several processes may share the file.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from core.settings import DATA_DIR

QUORUM_PROJECT_ID = "proj_quorum"
KINDS = ("completions", "embeddings")
_PER_1M = Decimal(1_000_000)


@dataclass(frozen=True)
class ListPrice:
    """USD micro-dollars per 1M tokens, as the provider bills them from ``effective_from``."""

    effective_from: date
    input: int
    cached_input: int | None
    output: int


@dataclass(frozen=True)
class UsageKey:
    day: date
    kind: str
    model: str
    project_id: str
    api_key_id: str


@dataclass
class UsageCount:
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


def api_key_id(api_key: str | None) -> str:
    """The provider's id for a key: a digest, so the secret is never stored or shown."""
    if not api_key:
        return "key_anonymous"
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _micro(dollars: object) -> int:
    return int(Decimal(str(dollars)) * 1_000_000)


@lru_cache(maxsize=1)
def list_prices() -> tuple[dict[str, list[ListPrice]], dict[str, str]]:
    """The provider's list prices: the shipped price file, read as the provider's own table."""
    raw = yaml.safe_load((DATA_DIR / "pricing.yaml").read_text(encoding="utf-8"))
    table: dict[str, list[ListPrice]] = defaultdict(list)
    for entry in raw.get("prices", []):
        start = entry["effective_from"]
        start = start.date() if isinstance(start, datetime) else start
        table[entry["model"]].append(
            ListPrice(
                start,
                _micro(entry["input"]),
                _micro(entry["cached_input"]) if "cached_input" in entry else None,
                _micro(entry.get("output", 0)),
            )
        )
    for prices in table.values():
        prices.sort(key=lambda p: p.effective_from)
    return dict(table), dict(raw.get("aliases") or {})


def usage_entry(
    *,
    at: datetime,
    kind: str,
    model: str,
    input_tokens: int,
    cached_tokens: int = 0,
    output_tokens: int = 0,
    requests: int = 1,
    project_id: str = QUORUM_PROJECT_ID,
    api_key: str | None = None,
    key_id: str | None = None,
) -> dict[str, Any]:
    """One usage line, counted on the UTC day of ``at``; ``key_id`` names a key without its secret."""
    if kind not in KINDS:
        raise ValueError(f"Unknown usage kind {kind!r}; expected one of {KINDS}")
    return {
        "type": "usage",
        "day": at.astimezone(UTC).date().isoformat(),
        "kind": kind,
        "model": model,
        "project_id": project_id,
        "api_key_id": key_id or api_key_id(api_key),
        "input_tokens": int(input_tokens),
        "cached_tokens": int(cached_tokens),
        "output_tokens": int(output_tokens),
        "requests": int(requests),
    }


class BillingLog:
    """Usage per (day, endpoint, model, project, key) and the provider's price changes."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._usage: dict[UsageKey, UsageCount] = defaultdict(UsageCount)
        self._prices: dict[str, list[ListPrice]] = defaultdict(list)
        self._loaded_bytes = 0
        self._header = b""
        self._refresh()

    # ---- writing -------------------------------------------------------------------------

    def add_usage(self, **usage: Any) -> None:
        """Count usage on the UTC day of ``at`` (the keywords of ``usage_entry``)."""
        self._write([usage_entry(**usage)])

    def add_usages(self, usages: Iterable[Mapping[str, Any]]) -> None:
        """Several usages in one append (each the keywords of ``usage_entry``): the demo's
        history is thousands of them, and each append reads the file back."""
        self._write([usage_entry(**usage) for usage in usages])

    def set_price(
        self, *, model: str, effective_from: date, input: str, output: str = "0", cached_input: str | None = None
    ) -> None:
        """From ``effective_from`` on, the provider bills ``model`` at these USD per 1M tokens."""
        entry = {
            "type": "price",
            "model": model,
            "effective_from": effective_from.isoformat(),
            "input": input,
            "cached_input": cached_input,
            "output": output,
        }
        self._write([entry])

    def _write(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.path is None:
                for entry in entries:
                    self._apply(entry)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.path.open("xb") as file:  # a new file: its header first, by one process only
                    file.write((json.dumps({"type": "header", "log": uuid.uuid4().hex}) + "\n").encode())
            except FileExistsError:
                pass
            with self.path.open("ab") as file:
                file.write("".join(json.dumps(entry) + "\n" for entry in entries).encode())
            # Read it back with whatever other processes appended before it, in file order.
            self._refresh_locked()

    def _apply(self, entry: dict[str, Any]) -> None:
        if entry.get("type") not in ("usage", "price"):
            return
        if entry.get("type") == "price":
            self._prices[entry["model"]].append(
                ListPrice(
                    date.fromisoformat(entry["effective_from"]),
                    _micro(entry["input"]),
                    None if entry.get("cached_input") is None else _micro(entry["cached_input"]),
                    _micro(entry.get("output") or 0),
                )
            )
            self._prices[entry["model"]].sort(key=lambda p: p.effective_from)
            return
        day = date.fromisoformat(entry["day"])
        count = self._usage[UsageKey(day, entry["kind"], entry["model"], entry["project_id"], entry["api_key_id"])]
        count.input_tokens += entry["input_tokens"]
        count.cached_tokens += entry["cached_tokens"]
        count.output_tokens += entry["output_tokens"]
        count.requests += entry["requests"]

    def _refresh(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        """Read what other processes appended since the last read.

        Each file starts with a header line naming it; another name (the demo's reset removed
        the file and a new one was started, perhaps on the same inode) is read from its start."""
        if self.path is None:
            return
        try:
            with self.path.open("rb") as file:
                header = file.readline()
                if header != self._header:
                    self._usage.clear()
                    self._prices.clear()
                    self._header, self._loaded_bytes = header, len(header)
                file.seek(self._loaded_bytes)
                data = file.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]  # a line another process is writing is read next time
        for line in complete.splitlines():
            try:
                self._apply(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line (a crash mid-write) costs that line, not the provider
        self._loaded_bytes += len(complete)

    def clear(self) -> None:
        """Forget everything (the demo's reset); removes the file."""
        with self._lock:
            self._usage.clear()
            self._prices.clear()
            self._loaded_bytes, self._header = 0, b""
            if self.path is not None and self.path.exists():
                self.path.unlink()

    # ---- reading -------------------------------------------------------------------------

    def usage(self, kind: str, first: date, end: date) -> Iterator[tuple[UsageKey, UsageCount]]:
        """Counts of ``kind`` on the days ``first`` <= day < ``end``."""
        self._refresh()
        with self._lock:
            rows = [(k, UsageCount(**vars(c))) for k, c in self._usage.items() if k.kind == kind]
        return iter(sorted(((k, c) for k, c in rows if first <= k.day < end), key=lambda kc: _sort_key(kc[0])))

    def price(self, model: str, day: date) -> ListPrice | None:
        """The price the provider bills ``model`` at on ``day`` (its own changes over the list)."""
        table, aliases = list_prices()
        name = aliases.get(model, model)
        candidates = [p for p in table.get(name, []) if p.effective_from <= day]
        with self._lock:
            for named in {model, name}:
                candidates += [p for p in self._prices.get(named, []) if p.effective_from <= day]
        if not candidates:
            return None
        return max(candidates, key=lambda p: p.effective_from)


_SHARED: dict[Path, BillingLog] = {}
_SHARED_LOCK = threading.Lock()


def shared_log(path: Path | str) -> BillingLog:
    """The one log of ``path`` in this process: the gateway's simulator and the finance
    reconciliation of the same process read and write the same object."""
    key = Path(path).resolve()
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = BillingLog(key)
        return _SHARED[key]


def _sort_key(key: UsageKey) -> tuple[date, str, str, str]:
    return (key.day, key.model, key.project_id, key.api_key_id)


def day_start(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())


def day_of(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


def next_day(day: date) -> date:
    return day + timedelta(days=1)


def cost_micro(tokens: int, price_micro_per_1m: int) -> Decimal:
    """Exact cost of ``tokens`` at a price per 1M tokens, in micro-dollars (not rounded)."""
    return Decimal(tokens) * Decimal(price_micro_per_1m) / _PER_1M
