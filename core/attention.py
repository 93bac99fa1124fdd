"""What needs a person's attention: the panels of the Home page.

Each feature contributes providers (reviews waiting, budgets near their limit, flagged
requests...). A provider `(session, actor) -> list[AttentionItem]` returns only the items
the actor may act on or should see. Providers are named by import path and loaded when
first used, because their modules import `AttentionItem` from here.

It stays on the ground floor, beside permissions, rather than in a context of its own or
on top of the others: the contexts import `AttentionItem` from it (an arrow up from them
would be a cycle), and it names the providers only as strings, so it depends on no context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module

from sqlmodel import Session

from core.permissions import Actor


@dataclass(frozen=True)
class AttentionItem:
    title: str
    detail: str = ""
    severity: str = "info"  # info | warning | error
    page: str | None = None  # the page that deals with it, e.g. "pages/review_queue.py"


# Panel name -> "module:function" providers, in display order.
PANELS: dict[str, list[str]] = {
    "Reviews waiting": ["core.catalog.views:reviews_waiting"],
    "Budgets near their limit": ["core.budgets.views:budget_attention"],
    "Flagged requests": ["core.gateway.held:pending_attention"],
    "Retention": ["core.retention.enforce:retention_attention"],
    "Gateway": ["core.gateway.attention:gateway_attention"],
}


@cache
def _load(path: str) -> Callable[[Session, Actor], list[AttentionItem]]:
    module, function = path.split(":")
    loaded: Callable[[Session, Actor], list[AttentionItem]] = getattr(import_module(module), function)
    return loaded


def attention_for(session: Session, actor: Actor) -> dict[str, list[AttentionItem]]:
    """Every panel with the items its providers return for `actor`."""
    return {
        panel: [item for path in providers for item in _load(path)(session, actor)]
        for panel, providers in PANELS.items()
    }


# Open alerts, whoever raises them: a budget past a threshold, an interrupted retention run,
# a gateway that refuses calls. The alerts context, once it exists, adds its own provider
# ("core.alerts.views:open_alerts_for") to this list; each provider filters by permission.
ALERT_PROVIDERS: list[str] = [
    "core.budgets.views:budget_attention",
    "core.retention.enforce:retention_attention",
    "core.gateway.held:pending_attention",
    "core.anomalies.alerts:behaviour_for",
]


def open_alerts(session: Session, actor: Actor) -> list[AttentionItem]:
    """The open alerts `actor` may act on, most severe first (Home's governance section)."""
    return _most_severe_first(session, actor, ALERT_PROVIDERS)


# Configuration a person setting Quorum up should fix, shown on an admin's Home.
CONFIGURATION_PROVIDERS: list[str] = [
    "core.gateway.attention:gateway_attention",
    "core.budgets.home:teams_without_budget",
    "core.audit.home:signing_warning",
    "core.gateway.attention:simulated_upstream",
]


def configuration_warnings(session: Session, actor: Actor) -> list[AttentionItem]:
    """What is set up in a way that weakens a promise (admins only), most severe first."""
    return _most_severe_first(session, actor, CONFIGURATION_PROVIDERS)


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _most_severe_first(session: Session, actor: Actor, providers: list[str]) -> list[AttentionItem]:
    found = [item for path in providers for item in _load(path)(session, actor)]
    return sorted(found, key=lambda item: _SEVERITY_ORDER.get(item.severity, 3))
