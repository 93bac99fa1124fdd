"""The gateway's parts of Home: for admins, an upstream without moderation, teams whose calls
are not moderated at all, and a simulated upstream; for governance leads, the held requests
waiting for a decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, func, select

from core.attention import AttentionItem
from core.gateway import held, moderation, policies
from core.identity.people import list_teams
from core.models.gateway import HeldRequest
from core.permissions import Actor, Permission, require

PAGE = "pages/budgets.py"


def gateway_attention(session: Session, actor: Actor) -> list[AttentionItem]:
    if not actor.can(Permission.TEAM_MANAGE):
        return []
    from core.gateway.wiring import default_gateway

    try:
        endpoint = default_gateway().upstream.moderation_endpoint
    except Exception:  # noqa: BLE001 - a misconfigured upstream shows elsewhere; Home still renders
        endpoint = moderation.UNKNOWN
    items: list[AttentionItem] = []
    teams = list_teams(session)
    setting = {t.id: (policies.team_policy(session, t.id), policies.team_settings(t.id, session)) for t in teams}
    if endpoint == moderation.MISSING:
        refused = [
            t.name
            for t in teams
            if setting[t.id][0].moderation != "off" and setting[t.id][1].moderation_provider == "upstream"
        ]
        items.append(
            AttentionItem(
                "The upstream has no moderation endpoint",
                f"Calls of {', '.join(refused)} are refused (503) while their policy uses the upstream's moderation; "
                "choose the local keyword check or turn moderation off in Team policies."
                if refused
                else "No team depends on it: every team uses the local keyword check or has moderation off.",
                severity="error" if refused else "info",
                page=PAGE,
            )
        )
    for team in teams:
        guardrails, settings = setting[team.id]
        if guardrails.moderation == "off":
            items.append(
                AttentionItem(
                    f"Moderation is off for {team.name}",
                    "Its calls reach the model without any moderation check.",
                    severity="warning",
                    page=PAGE,
                )
            )
        elif settings.moderation_provider == "local":
            items.append(
                AttentionItem(
                    f"{team.name} uses the local keyword moderation",
                    "It catches explicit phrasings only; it is not a classifier.",
                    page=PAGE,
                )
            )
    return items


def simulated_upstream(session: Session, actor: Actor) -> list[AttentionItem]:
    """Admins: no OpenAI key is configured, so the built-in simulator answers every call."""
    from core.settings import settings

    if not actor.can(Permission.TEAM_MANAGE) or not settings().uses_simulator:
        return []
    return [
        AttentionItem(
            "Model calls are answered by the built-in simulator",
            "No OPENAI_API_KEY is configured: answers, costs and latencies are simulated, not OpenAI's.",
            severity="warning",
        )
    ]


@dataclass(frozen=True)
class HeldWaiting:
    count: int
    oldest_since: datetime | None


def held_waiting(session: Session, *, actor: Actor) -> HeldWaiting:
    """How many held requests wait for a decision, and since when the oldest has waited."""
    require(actor, Permission.REQUEST_REVIEW)
    pending = HeldRequest.status == held.PENDING
    count, oldest = session.exec(
        select(func.count(), func.min(HeldRequest.created_at)).select_from(HeldRequest).where(pending)
    ).one()
    return HeldWaiting(int(count), oldest)
