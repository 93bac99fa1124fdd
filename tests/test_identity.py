"""The directory's services: permissions, validation, and one audit event per change."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlmodel import func, select

from core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.identity import people as identity
from core.models.audit import AuditEvent
from core.models.identity import Person, Team
from core.permissions import Actor, Role


def audit_count(session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()


def last_event(session) -> AuditEvent:
    return session.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()


def person_id(session, email):
    return identity.person_by_email(session, email).id


# Each state-changing function, called as `actor` on the seeded directory.
CHANGES = {
    "create_team": lambda s, a: identity.create_team(session=s, actor=a, name="Finance Ops"),
    "add_person": lambda s, a: identity.add_person(
        session=s, actor=a, email="new.hire@example.com", display_name="New Hire"
    ),
    "grant_role": lambda s, a: identity.grant_role(
        session=s, actor=a, role="auditor", person_id=person_id(s, "tom.becker@example.com")
    ),
    "revoke_role": lambda s, a: identity.revoke_role(
        session=s, actor=a, role="prompt_engineer", person_id=person_id(s, "tom.becker@example.com")
    ),
    "add_member": lambda s, a: identity.add_member(
        session=s,
        actor=a,
        person_id=person_id(s, "daniel.kim@example.com"),
        team_id=identity.team_by_name(s, "Legal").id,
    ),
    "remove_member": lambda s, a: identity.remove_member(
        session=s,
        actor=a,
        person_id=person_id(s, "tom.becker@example.com"),
        team_id=identity.team_by_name(s, "Support").id,
    ),
}
ACTIONS = {
    "create_team": "team.create",
    "add_person": "person.create",
    "grant_role": "person.role.grant",
    "revoke_role": "person.role.revoke",
    "add_member": "team.member.add",
    "remove_member": "team.member.remove",
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("role", [Role.GOVERNANCE_LEAD, Role.FINANCE, Role.PROMPT_ENGINEER, Role.AUDITOR])
def test_roles_without_the_permission_are_refused_and_nothing_is_audited(session, directory, change, role):
    before = audit_count(session)
    with pytest.raises(PermissionDenied, match="may not"):
        CHANGES[change](session, directory.with_role(role))
    session.rollback()
    assert audit_count(session) == before


@pytest.mark.parametrize("change", CHANGES)
def test_an_admin_change_writes_exactly_one_audit_event(session, directory, change):
    admin = directory.admin
    before = audit_count(session)
    CHANGES[change](session, admin)
    assert audit_count(session) == before + 1
    event_row = last_event(session)
    assert event_row.action == ACTIONS[change]
    assert event_row.actor == admin.ref
    assert event_row.occurred_at.tzinfo is not None


@pytest.mark.parametrize("change", CHANGES)
def test_a_failing_audit_write_fails_the_change(session, directory, change):
    admin = directory.admin
    tables_before = _snapshot(session)

    def refuse(*_args):
        raise RuntimeError("audit store unavailable")

    event.listen(AuditEvent, "before_insert", refuse)
    try:
        with pytest.raises(RuntimeError, match="audit store unavailable"):
            CHANGES[change](session, admin)
    finally:
        event.remove(AuditEvent, "before_insert", refuse)
    session.rollback()
    assert _snapshot(session) == tables_before


def _snapshot(session):
    people = [(p.id, p.email) for p in identity.list_people(session)]
    roles_and_teams = [(p.roles, p.team_ids) for p in identity.list_people(session)]
    teams = [t.name for t in identity.list_teams(session)]
    return people, roles_and_teams, teams, audit_count(session)


def test_audit_events_name_people_by_id_only(session, directory):
    person = identity.add_person(
        session=session,
        actor=directory.admin,
        email="Ada.Lovelace@Example.com",
        display_name="Ada Lovelace",
        roles=["auditor"],
    )
    row = last_event(session)
    assert row.target_id == str(person.id)
    text = (row.before_json or "") + (row.after_json or "")
    assert "ada" not in text.lower() and "lovelace" not in text.lower()
    assert person.email == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 81, "<script>alert(1)</script>", "**Support**", "[Ops](http://evil.example)", "Ops\x00", "-rm"],
)
def test_bad_team_names_are_refused_with_nothing_written(session, directory, name):
    before = (len(identity.list_teams(session)), audit_count(session))
    with pytest.raises(ValidationError, match="team"):
        identity.create_team(session=session, actor=directory.admin, name=name)
    assert (len(identity.list_teams(session)), audit_count(session)) == before


@pytest.mark.parametrize("name", ["R&D", "Data (EU)", "Müller-Team", "Customer Support 2", "Ops/Infra", "O'Neil's"])
def test_ordinary_team_names_are_accepted(session, directory, name):
    assert identity.create_team(session=session, actor=directory.admin, name=name).name == name


def test_team_names_are_unique_regardless_of_case(session, directory):
    with pytest.raises(Conflict, match="already exists"):
        identity.create_team(session=session, actor=directory.admin, name="  support ")


def test_duplicate_email_is_refused_whatever_its_case(session, directory):
    before = audit_count(session)
    with pytest.raises(Conflict, match="already exists"):
        identity.add_person(
            session=session, actor=directory.admin, email=" TOM.Becker@example.com", display_name="Another Tom"
        )
    assert audit_count(session) == before
    assert session.exec(select(func.count()).select_from(Person)).one() == 9


def test_unknown_role_is_refused_and_no_person_is_half_created(session, directory):
    with pytest.raises(ValidationError, match="Unknown role 'wizard'.*admin, governance_lead"):
        identity.add_person(
            session=session, actor=directory.admin, email="w@example.com", display_name="W", roles=["auditor", "wizard"]
        )
    with pytest.raises(NotFound):
        identity.person_by_email(session, "w@example.com")


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", "two@@example.com"])
def test_malformed_emails_are_refused(session, directory, email):
    with pytest.raises(ValidationError, match="e-mail"):
        identity.add_person(session=session, actor=directory.admin, email=email, display_name="X")


def test_unknown_team_is_refused(session, directory):
    with pytest.raises(NotFound, match="team"):
        identity.add_person(
            session=session, actor=directory.admin, email="z@example.com", display_name="Z", team_ids=[999]
        )


def test_the_last_admin_cannot_lose_the_role(session, directory):
    admin = directory.admin
    with pytest.raises(Conflict, match="last admin"):
        identity.revoke_role(session=session, actor=admin, person_id=admin.person_id, role="admin")


def test_granting_a_held_role_is_a_conflict(session, directory):
    tom = person_id(session, "tom.becker@example.com")
    with pytest.raises(Conflict, match="already has"):
        identity.grant_role(session=session, actor=directory.admin, person_id=tom, role="prompt_engineer")


def test_grant_records_before_and_after(session, directory):
    tom = person_id(session, "tom.becker@example.com")
    identity.grant_role(session=session, actor=directory.admin, person_id=tom, role="auditor")
    row = last_event(session)
    assert row.before_json == '{"roles":["prompt_engineer"]}'
    assert row.after_json == '{"roles":["auditor","prompt_engineer"]}'


def test_unknown_email_has_no_actor(session, directory):
    assert identity.actor_for_email(session, "stranger@example.com") is None
    assert identity.actor_for_email(session, "LENA.fischer@example.com").roles == {Role.GOVERNANCE_LEAD}


def test_prompt_engineers_write_only_for_their_own_team(session, directory):
    from core.permissions import Permission

    tom = directory.by_email("tom.becker@example.com")
    support = identity.team_by_name(session, "Support").id
    legal = identity.team_by_name(session, "Legal").id
    assert tom.can(Permission.PROMPT_WRITE, team_id=support)
    assert not tom.can(Permission.PROMPT_WRITE, team_id=legal)


def test_the_system_actor_is_audited_under_its_own_name(session, directory):
    identity.create_team(session=session, actor=Actor.system("cli"), name="Research")
    assert last_event(session).actor == "system:cli"
    assert session.exec(select(func.count()).select_from(Team)).one() == 5
