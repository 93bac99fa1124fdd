"""Demo data for retention: one legal hold, so the page shows how holds look."""

from __future__ import annotations

from sqlmodel import Session

from core.db import saved_id
from core.identity import people as identity
from core.permissions import Actor
from core.retention.holds import add_hold

SEED_ACTOR = Actor.system("seed")


def seed_retention(session: Session) -> None:
    owner = identity.person_by_email(session, "lena.fischer@example.com")
    legal = identity.team_by_name(session, "Legal")
    add_hold(
        session=session,
        actor=SEED_ACTOR,
        case_name="Contract dispute 2026 (demo)",
        owner_person_id=saved_id(owner),
        team_id=legal.id,
    )
