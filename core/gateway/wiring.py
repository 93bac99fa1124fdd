"""The process's gateway, built from settings: where the real catalog and budgets plug in.

Replace `FilePromptSource` by the catalog's database source and `UnlimitedBudgetGate` by
the budgets' gate here when they land; nothing else in the gateway changes.
"""

from __future__ import annotations

import threading

from core.gateway.pipeline import Gateway
from core.gateway.ports import FilePromptSource, UnlimitedBudgetGate
from core.gateway.upstream import Upstream
from core.settings import PROJECT_ROOT, settings

_gateway: Gateway | None = None
_lock = threading.Lock()


def default_gateway() -> Gateway:
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway = Gateway(upstream=Upstream.from_settings(settings()),
                               prompts=FilePromptSource(PROJECT_ROOT / "prompts"),
                               budget=UnlimitedBudgetGate())
        return _gateway


def set_gateway(gateway: Gateway | None) -> None:
    """Use another gateway in this process (tests, the benchmark); None rebuilds from settings."""
    global _gateway
    with _lock:
        _gateway = gateway
