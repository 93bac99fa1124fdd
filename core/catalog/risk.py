"""A prompt's risk tier: how many approvals its versions need, and who may change it.

The tier decides how many distinct reviewers approve a version (data/review_policy.yaml),
so changing it is a governance decision, audited as ``prompt.risk_tier.change`` with the
tier before and after:

- lowering a tier (high -> medium -> low) is for governance leads only;
- raising it is also open to the prompt's own engineers: it only asks for more review;
- neither ever weakens a version already in review: a version needs what the stricter of
  its tier at submission and its prompt's current tier requires
  (core.catalog.workflow.required_approvals).
"""

from __future__ import annotations

from sqlmodel import Session

from core.audit.record import committing, record
from core.catalog.spec import RISK_TIERS
from core.catalog.store import get_prompt
from core.db import saved_id
from core.errors import Conflict, PermissionDenied, ValidationError
from core.models.catalog import Prompt
from core.permissions import Actor, Permission, require

CHANGE_EVENT = "prompt.risk_tier.change"


def is_lower(new_tier: str, old_tier: str) -> bool:
    return RISK_TIERS.index(new_tier) < RISK_TIERS.index(old_tier)


def refusal(actor: Actor, prompt: Prompt, new_tier: str) -> str | None:
    """Why `actor` may not move the prompt to `new_tier`, or None when they may."""
    if new_tier == prompt.risk_tier or actor.can(Permission.PROMPT_REVIEW):
        return None
    if is_lower(new_tier, prompt.risk_tier):
        return (
            f"{actor.display_name} may not lower the risk tier of '{prompt.name}' from {prompt.risk_tier} "
            f"to {new_tier}: only a governance lead may lower a risk tier"
        )
    if not actor.can(Permission.PROMPT_WRITE, team_id=prompt.team_id):
        return (
            f"{actor.display_name} may not raise the risk tier of '{prompt.name}' from {prompt.risk_tier} "
            f"to {new_tier}: it needs a governance lead or a prompt engineer of the prompt's team"
        )
    return None


def tiers_open_to(session: Session, *, actor: Actor, prompt_id: int) -> list[str]:
    """The tiers `actor` may move the prompt to (for a page to offer), its current one left out."""
    require(actor, Permission.CATALOG_READ)
    prompt = get_prompt(session, prompt_id)
    return [t for t in RISK_TIERS if t != prompt.risk_tier and refusal(actor, prompt, t) is None]


def change_risk_tier(*, session: Session, actor: Actor, prompt_id: int, risk_tier: str) -> Prompt:
    """Set a prompt's risk tier (see the module note for who may); one audited change."""
    require(actor, Permission.CATALOG_READ)
    prompt = get_prompt(session, prompt_id)
    risk_tier = (risk_tier or "").strip().lower()
    if risk_tier not in RISK_TIERS:
        raise ValidationError(f"Risk tier must be one of {', '.join(RISK_TIERS)}, not {risk_tier!r}")
    if risk_tier == prompt.risk_tier:
        raise Conflict(f"'{prompt.name}' is already {risk_tier} risk")
    reason = refusal(actor, prompt, risk_tier)
    if reason:
        raise PermissionDenied(reason)
    with committing(session):
        apply_change(session, actor, prompt, risk_tier)
    return prompt


def apply_change(session: Session, actor: Actor, prompt: Prompt, risk_tier: str) -> None:
    """The change and its audit event, inside the caller's transaction (checked by the caller)."""
    before = prompt.risk_tier
    prompt.risk_tier = risk_tier
    session.add(prompt)
    record(
        session,
        actor=actor,
        action=CHANGE_EVENT,
        target_type="prompt",
        target_id=saved_id(prompt),
        team_id=prompt.team_id,
        before={"risk_tier": before},
        after={"risk_tier": risk_tier},
    )
