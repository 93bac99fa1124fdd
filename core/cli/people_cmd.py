"""`quorum people ...`: add people and grant roles from the shell (e.g. the first admin)."""

from __future__ import annotations

from argparse import Namespace

from core import db
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.identity import people as identity
from core.permissions import Role


def register(commands: Commands) -> None:
    people = commands.add_parser(
        "people",
        help="Manage people and their roles.",
        description="Manage people and their roles. Changes are audited as 'system:cli'.",
    )
    sub = people.add_subparsers(title="people commands", metavar="COMMAND", required=True)

    add = sub.add_parser("add", help="Add a person.", description="Add a person, optionally with roles and teams.")
    add.add_argument("--email", required=True, help="The person's e-mail (their sign-in identity).")
    add.add_argument("--name", required=True, help="The person's display name.")
    add.add_argument(
        "--role", action="append", default=[], choices=[r.value for r in Role], help="A role to grant (repeatable)."
    )
    add.add_argument("--team", action="append", default=[], help="A team to join, by name (repeatable).")
    add.set_defaults(func=_add)

    grant = sub.add_parser("grant", help="Grant a role to a person.", description="Grant a role to a person.")
    grant.add_argument("--email", required=True, help="The person's e-mail.")
    grant.add_argument("--role", required=True, help="The role: " + ", ".join(r.value for r in Role) + ".")
    grant.set_defaults(func=_grant)


def _add(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        team_ids = [saved_id(identity.team_by_name(session, name)) for name in args.team]
        person = identity.add_person(
            session=session,
            actor=CLI_ACTOR,
            email=args.email,
            display_name=args.name,
            roles=args.role,
            team_ids=team_ids,
        )
        print(f"added {person.email} (id {person.id})")
    return 0


def _grant(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        person = identity.person_by_email(session, args.email)
        identity.grant_role(session=session, actor=CLI_ACTOR, person_id=saved_id(person), role=args.role)
        print(f"granted {args.role} to {person.email}")
    return 0
