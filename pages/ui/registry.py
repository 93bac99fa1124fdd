"""Every page of the app, the section it sits in and the permission it needs.

A page a role may not use is not registered for that role, so it is not routable either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.permissions import Actor, Permission


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    section: str
    permission: Permission | None  # None: every signed-in person


PAGES: list[PageSpec] = [
    PageSpec("pages/home.py", "Home", ":material/home:", "Overview", None),
    PageSpec(
        "pages/observability.py", "Observability", ":material/monitoring:", "Overview", Permission.OBSERVABILITY_READ
    ),
    PageSpec("pages/alerts.py", "Alerts", ":material/notifications_active:", "Overview", Permission.ALERT_READ),
    PageSpec("pages/catalog.py", "Catalog", ":material/library_books:", "Prompts", Permission.CATALOG_READ),
    PageSpec("pages/prompt_editor.py", "Editor", ":material/edit_note:", "Prompts", Permission.PROMPT_WRITE),
    PageSpec("pages/playground.py", "Playground", ":material/science:", "Prompts", Permission.PLAYGROUND_RUN),
    PageSpec("pages/experiments.py", "Experiments", ":material/compare:", "Prompts", Permission.PLAYGROUND_RUN),
    PageSpec("pages/live_ab.py", "Live A/B", ":material/call_split:", "Prompts", Permission.OBSERVABILITY_READ),
    PageSpec("pages/review_queue.py", "Review queue", ":material/rule:", "Prompts", Permission.PROMPT_REVIEW),
    PageSpec("pages/spend.py", "Spend", ":material/payments:", "Finance", Permission.SPEND_READ),
    PageSpec("pages/budgets.py", "Budgets & prices", ":material/savings:", "Finance", Permission.SPEND_READ),
    PageSpec(
        "pages/reconciliation.py", "Reconciliation & close", ":material/balance:", "Finance", Permission.SPEND_READ
    ),
    PageSpec(
        "pages/held_requests.py", "Held requests", ":material/front_hand:", "Governance", Permission.REQUEST_REVIEW
    ),
    PageSpec(
        "pages/answer_review.py", "Answer review", ":material/rate_review:", "Governance", Permission.REQUEST_REVIEW
    ),
    PageSpec(
        "pages/retention.py", "Retention & privacy", ":material/auto_delete:", "Governance", Permission.RETENTION_READ
    ),
    PageSpec("pages/audit_log.py", "Audit log", ":material/history:", "Audit", Permission.AUDIT_READ),
    PageSpec("pages/audit_verify.py", "Verify audit chain", ":material/fact_check:", "Audit", Permission.AUDIT_VERIFY),
    PageSpec("pages/teams.py", "Teams & people", ":material/groups:", "Administration", Permission.DIRECTORY_READ),
    PageSpec("pages/api_keys.py", "API keys", ":material/key:", "Administration", Permission.KEY_MANAGE),
]


def pages_for(actor: Actor) -> list[PageSpec]:
    return [p for p in PAGES if p.permission is None or actor.can(p.permission)]


def allowed(actor: Actor, page_file: str) -> bool:
    """Whether `actor` may use the page script at `page_file` (an unknown page: no)."""
    name = Path(page_file).name
    spec = next((p for p in PAGES if Path(p.path).name == name), None)
    return spec is not None and (spec.permission is None or actor.can(spec.permission))
