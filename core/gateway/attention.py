"""Home's "Gateway" panel for admins: an upstream without moderation, and teams whose calls
are not moderated at all."""

from __future__ import annotations

from sqlmodel import Session

from core.attention import AttentionItem
from core.gateway import moderation, policies
from core.identity.people import list_teams
from core.permissions import Actor, Permission

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
