"""Demo data: four teams and a person for every role, so the app tells a story at once.

Seeding goes through the same audited services as the app, so the demo's audit log
starts with real events. Each context contributes its `demo_seed` step (``steps``). The
demo sits above every context it seeds, below only the command line.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, SQLModel, func, select

from core.audit import checkpoints as audit_checkpoints
from core.demo.steps import STEPS
from core.errors import ValidationError
from core.identity import people as identity
from core.models.identity import Person
from core.permissions import Actor, Role
from core.settings import settings

SEED_ACTOR = Actor.system("demo-seed")

TEAMS = [
    ("Support", "Customer support: answers, ticket triage and escalations"),
    ("Marketing", "Campaign copy, brand voice and product announcements"),
    ("Legal", "Contract review, policy summaries and compliance questions"),
    ("Data", "Analytics, SQL help and internal reporting"),
]

# (name, e-mail, roles, teams) — every role has at least one person; two governance leads
# so that high-risk prompts can get their two distinct approvals.
PEOPLE = [
    ("Amara Okafor", "amara.okafor@example.com", [Role.ADMIN], ["Data"]),
    ("Lena Fischer", "lena.fischer@example.com", [Role.GOVERNANCE_LEAD], ["Legal"]),
    ("Rafael Gómez", "rafael.gomez@example.com", [Role.GOVERNANCE_LEAD], ["Support"]),
    ("Priya Raman", "priya.raman@example.com", [Role.FINANCE], []),
    ("Tom Becker", "tom.becker@example.com", [Role.PROMPT_ENGINEER], ["Support"]),
    ("Mei Chen", "mei.chen@example.com", [Role.PROMPT_ENGINEER], ["Marketing"]),
    ("Sofia Rossi", "sofia.rossi@example.com", [Role.PROMPT_ENGINEER], ["Legal"]),
    ("Jonas Berg", "jonas.berg@example.com", [Role.PROMPT_ENGINEER], ["Data"]),
    ("Daniel Kim", "daniel.kim@example.com", [Role.AUDITOR], []),
]


def is_empty(session: Session) -> bool:
    return session.exec(select(func.count()).select_from(Person)).one() == 0


def seed(session: Session, *, reset: bool = False) -> dict[str, int]:
    """Fill an empty database with the demo data; with `reset`, wipe it first (demo mode only)."""
    if reset:
        if not settings().demo_mode:
            raise ValidationError("demo seed --reset wipes every table; it runs only with QUORUM_DEMO=1")
        wipe(session)
    if not is_empty(session):
        raise ValidationError("The database already has people; use --reset to start over (demo mode only)")

    seed_directory(session)
    for step in STEPS:
        step(session)
    return {"teams": len(TEAMS), "people": len(PEOPLE), "feature steps": len(STEPS)}


def seed_directory(session: Session) -> None:
    """The demo teams and people alone (tests use this without the features' data)."""
    team_ids: dict[str, int] = {}
    for name, description in TEAMS:
        team = identity.create_team(session=session, actor=SEED_ACTOR, name=name, description=description)
        assert team.id is not None  # flushed by create_team
        team_ids[name] = team.id
    for name, email, roles, teams in PEOPLE:
        identity.add_person(
            session=session,
            actor=SEED_ACTOR,
            email=email,
            display_name=name,
            roles=[r.value for r in roles],
            team_ids=[team_ids[t] for t in teams],
        )


def wipe(session: Session) -> None:
    """Delete every row of every table (children first), keeping the schema.

    The audit chain starts again, so the old chain's checkpoint file is moved aside first.
    """
    audit_checkpoints.retire_file(session=session, actor=SEED_ACTOR)
    for table in reversed(SQLModel.metadata.sorted_tables):
        session.execute(text(f'DELETE FROM "{table.name}"'))
    session.commit()
