"""What needs a person's attention: the panels of the Home page.

Each feature contributes a provider (reviews waiting, budgets near their limit,
flagged requests...). A provider returns the items the actor may act on or should see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from core.permissions import Actor


@dataclass(frozen=True)
class AttentionItem:
    title: str
    detail: str = ""
    severity: str = "info"  # info | warning | error
    page: str | None = None  # the page that deals with it, e.g. "pages/review_queue.py"


# Panel name -> providers, in display order. Features append to these lists.
PANELS: dict[str, list[Callable[[Session, Actor], list[AttentionItem]]]] = {
    "Reviews waiting": [],
    "Budgets near their limit": [],
    "Flagged requests": [],
}


def attention_for(session: Session, actor: Actor) -> dict[str, list[AttentionItem]]:
    """Every panel with the items its providers return for `actor`."""
    return {panel: [item for provider in providers for item in provider(session, actor)]
            for panel, providers in PANELS.items()}


# Feature providers (imported last: they import AttentionItem from here).
from core.budgets.views import budget_attention  # noqa: E402

PANELS["Budgets near their limit"].append(budget_attention)
