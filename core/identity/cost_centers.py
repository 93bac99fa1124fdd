"""A team's cost center: the code finance charges its spend to on chargeback statements."""

from __future__ import annotations

import re

from sqlmodel import Session

from core.audit.record import committing, record
from core.db import get_or_not_found
from core.errors import ValidationError
from core.models.identity import Team
from core.permissions import Actor, Permission, require

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,39}$")


def set_cost_center(*, session: Session, actor: Actor, team_id: int, code: str) -> Team:
    """Set (or with an empty ``code`` clear) a team's cost-center code; admins only, audited."""
    require(actor, Permission.TEAM_MANAGE)
    code = (code or "").strip()
    if code and not _CODE.match(code):
        raise ValidationError(
            "A cost-center code is up to 40 letters, digits, spaces and . _ / - (e.g. CC-4100), starting with "
            "a letter or digit"
        )
    team = get_or_not_found(session, Team, team_id, "team")
    before = team.cost_center
    if before == code:
        return team
    with committing(session):
        team.cost_center = code
        session.add(team)
        record(
            session,
            actor=actor,
            action="team.cost_center",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before={"cost_center": before},
            after={"cost_center": code},
        )
    return team
