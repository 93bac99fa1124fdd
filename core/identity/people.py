"""Teams, people, memberships and roles: the directory every permission rests on."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.audit.record import committing, record
from core.db import get_or_not_found, saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.guardrails.saved_text import refuse_secrets_in
from core.models.identity import Membership, Person, RoleGrant, Team
from core.permissions import Actor, Permission, Role, parse_role, require

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TEAM_NAME = 80
# Names people type in `--team`, in prompt files and in filters: no markup, quotes or control
# characters, starting with a letter or digit.
_TEAM_NAME = re.compile(r"[^\W_][\w .,&'()/+-]*")


@dataclass(frozen=True)
class PersonView:
    id: int
    email: str
    display_name: str
    active: bool
    roles: tuple[Role, ...]
    team_ids: tuple[int, ...]


# ---- reading ---------------------------------------------------------------------------


def list_teams(session: Session) -> list[Team]:
    return list(session.exec(select(Team).order_by(Team.name)))


def list_people(session: Session) -> list[PersonView]:
    people = list(session.exec(select(Person).order_by(Person.display_name)))
    roles = _roles_by_person(session)
    teams = _teams_by_person(session)
    return [_view(p, roles.get(saved_id(p), ()), teams.get(saved_id(p), ())) for p in people]


def get_team(session: Session, team_id: int) -> Team:
    return get_or_not_found(session, Team, team_id, "team")


def team_by_name(session: Session, name: str) -> Team:
    team = session.exec(select(Team).where(Team.name_key == name.strip().lower())).first()
    if team is None:
        known = ", ".join(t.name for t in list_teams(session)) or "none yet"
        raise NotFound(f"No team named {name!r} (teams: {known})")
    return team


def person_by_email(session: Session, email: str) -> Person:
    person = session.exec(select(Person).where(Person.email == _normalize_email(email))).first()
    if person is None:
        raise NotFound(f"No person with e-mail {email!r}")
    return person


def actor_for_person(session: Session, person_id: int) -> Actor:
    return _actor(session, _person(session, person_id))


def actor_for_email(session: Session, email: str) -> Actor | None:
    """The actor for a signed-in e-mail, or None when Quorum does not know it (no access)."""
    person = session.exec(select(Person).where(Person.email == _normalize_email(email))).first()
    if person is None or not person.active:
        return None
    return _actor(session, person)


# ---- changing --------------------------------------------------------------------------


def create_team(*, session: Session, actor: Actor, name: str, description: str = "") -> Team:
    require(actor, Permission.TEAM_MANAGE)
    name = _clean_team_name(name)
    refuse_secrets_in({"the team name": name, "the team description": description})
    if session.exec(select(Team).where(Team.name_key == name.lower())).first():
        raise Conflict(f"A team named {name!r} already exists")
    team = Team(name=name, name_key=name.lower(), description=description.strip()[:500])
    with _committing_unique(session, f"A team named {name!r} already exists"):
        session.add(team)
        session.flush()
        record(
            session,
            actor=actor,
            action="team.create",
            target_type="team",
            target_id=saved_id(team),
            team_id=team.id,
            after={"name": team.name, "description": team.description},
        )
    return team


def add_person(
    *,
    session: Session,
    actor: Actor,
    email: str,
    display_name: str,
    roles: Iterable[str] = (),
    team_ids: Iterable[int] = (),
) -> Person:
    """Create a person with their roles and teams in one audited change."""
    require(actor, Permission.PERSON_MANAGE)
    email = _normalize_email(email)
    if not _EMAIL.match(email):
        raise ValidationError(f"{email!r} is not an e-mail address")
    display_name = display_name.strip()
    if not display_name:
        raise ValidationError("A person needs a name")
    refuse_secrets_in({"the e-mail address": email, "the person's name": display_name})
    parsed_roles = sorted({parse_role(r) for r in roles})
    if parsed_roles:
        require(actor, Permission.ROLE_GRANT)
    team_ids = sorted(set(team_ids))
    for team_id in team_ids:
        get_team(session, team_id)
    if session.exec(select(Person).where(Person.email == email)).first():
        raise Conflict(f"A person with e-mail {email!r} already exists")

    person = Person(email=email, display_name=display_name[:120])
    with _committing_unique(session, f"A person with e-mail {email!r} already exists"):
        session.add(person)
        session.flush()
        session.add_all(RoleGrant(person_id=saved_id(person), role=r.value) for r in parsed_roles)
        session.add_all(Membership(person_id=saved_id(person), team_id=t) for t in team_ids)
        # Personal data stays out of the event: it names the person by id only.
        record(
            session,
            actor=actor,
            action="person.create",
            target_type="person",
            target_id=saved_id(person),
            after={"roles": [r.value for r in parsed_roles], "team_ids": team_ids},
        )
    return person


def grant_role(*, session: Session, actor: Actor, person_id: int, role: str) -> None:
    require(actor, Permission.ROLE_GRANT)
    parsed = parse_role(role)
    before = _current_roles(session, saved_id(_person(session, person_id)))
    if parsed in before:
        raise Conflict(f"The person already has the role {parsed.value}")
    with committing(session):
        session.add(RoleGrant(person_id=person_id, role=parsed.value))
        record(
            session,
            actor=actor,
            action="person.role.grant",
            target_type="person",
            target_id=person_id,
            before={"roles": sorted(before)},
            after={"roles": sorted(before | {parsed.value})},
        )


def revoke_role(*, session: Session, actor: Actor, person_id: int, role: str) -> None:
    require(actor, Permission.ROLE_GRANT)
    parsed = parse_role(role)
    before = _current_roles(session, saved_id(_person(session, person_id)))
    if parsed not in before:
        raise Conflict(f"The person does not have the role {parsed.value}")
    if parsed is Role.ADMIN and _admin_count(session) <= 1:
        raise Conflict("This is the last admin; grant the role to someone else first")
    grant = session.get(RoleGrant, (person_id, parsed.value))
    with committing(session):
        session.delete(grant)
        record(
            session,
            actor=actor,
            action="person.role.revoke",
            target_type="person",
            target_id=person_id,
            before={"roles": sorted(before)},
            after={"roles": sorted(before - {parsed.value})},
        )


def add_member(*, session: Session, actor: Actor, team_id: int, person_id: int) -> None:
    require(actor, Permission.TEAM_MANAGE)
    get_team(session, team_id)
    _person(session, person_id)
    if session.get(Membership, (person_id, team_id)):
        raise Conflict("The person is already a member of this team")
    with committing(session):
        session.add(Membership(person_id=person_id, team_id=team_id))
        record(
            session,
            actor=actor,
            action="team.member.add",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            after={"person_id": person_id},
        )


def remove_member(*, session: Session, actor: Actor, team_id: int, person_id: int) -> None:
    require(actor, Permission.TEAM_MANAGE)
    membership = session.get(Membership, (person_id, team_id))
    if membership is None:
        raise NotFound("The person is not a member of this team")
    with committing(session):
        session.delete(membership)
        record(
            session,
            actor=actor,
            action="team.member.remove",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before={"person_id": person_id},
        )


# ---- helpers ---------------------------------------------------------------------------


@contextmanager
def _committing_unique(session: Session, message: str) -> Iterator[Session]:
    """Like `committing`, but a unique-constraint race becomes the same Conflict as the pre-check."""
    try:
        yield session
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict(message) from error
    except BaseException:
        session.rollback()
        raise


def _normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def _clean_team_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("A team needs a name")
    if len(name) > _MAX_TEAM_NAME:
        raise ValidationError(f"A team name can have at most {_MAX_TEAM_NAME} characters")
    if not _TEAM_NAME.fullmatch(name):
        raise ValidationError(
            f"A team name is letters, digits, spaces and - _ . , & ' ( ) / + (got {name!r}); "
            "it is typed on command lines and in prompt files, and shown everywhere"
        )
    return name


def _person(session: Session, person_id: int) -> Person:
    return get_or_not_found(session, Person, person_id, "person")


def _current_roles(session: Session, person_id: int) -> set[str]:
    return set(session.exec(select(RoleGrant.role).where(RoleGrant.person_id == person_id)))


def _admin_count(session: Session) -> int:
    return len(list(session.exec(select(RoleGrant.person_id).where(RoleGrant.role == Role.ADMIN.value))))


def _roles_by_person(session: Session) -> dict[int, tuple[Role, ...]]:
    result: dict[int, list[Role]] = {}
    for grant in session.exec(select(RoleGrant).order_by(col(RoleGrant.role))):
        result.setdefault(grant.person_id, []).append(Role(grant.role))
    return {k: tuple(v) for k, v in result.items()}


def _teams_by_person(session: Session) -> dict[int, tuple[int, ...]]:
    result: dict[int, list[int]] = {}
    for m in session.exec(select(Membership).order_by(col(Membership.team_id))):
        result.setdefault(m.person_id, []).append(m.team_id)
    return {k: tuple(v) for k, v in result.items()}


def _view(person: Person, roles: tuple[Role, ...], team_ids: tuple[int, ...]) -> PersonView:
    return PersonView(saved_id(person), person.email, person.display_name, person.active, roles, team_ids)


def _actor(session: Session, person: Person) -> Actor:
    roles = frozenset(Role(r) for r in _current_roles(session, saved_id(person)))
    teams = frozenset(session.exec(select(Membership.team_id).where(Membership.person_id == person.id)))
    return Actor(
        ref=f"person:{person.id}",
        display_name=person.display_name,
        roles=roles,
        team_ids=teams,
        person_id=person.id,
        email=person.email,
    )
