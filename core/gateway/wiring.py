"""The process's gateway, built from settings, on the prompt catalog and budgets."""

from __future__ import annotations

import threading

from core.gateway.adapters import BudgetsGate, CatalogPromptSource
from core.gateway.pipeline import Gateway
from core.gateway.upstream import Upstream
from core.settings import settings

_gateway: Gateway | None = None
_lock = threading.Lock()


def default_gateway() -> Gateway:
    global _gateway
    with _lock:
        if _gateway is None:
            _gateway = Gateway(
                upstream=Upstream.from_settings(settings()), prompts=CatalogPromptSource(), budget=BudgetsGate()
            )
        return _gateway


def set_gateway(gateway: Gateway | None) -> None:
    """Use another gateway in this process (tests, the benchmark); None rebuilds from settings."""
    global _gateway
    with _lock:
        _gateway = gateway
