"""`quorum keys ...`: team API keys from the shell. A new key is printed once, never again."""

from __future__ import annotations

from argparse import Namespace

from sqlmodel import Session

from core import db
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.identity import keys
from core.identity import people as identity


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "keys",
        help="Manage the teams' gateway API keys.",
        description="Create, list, rotate and revoke team API keys. Audited as 'system:cli'.",
    )
    sub = parser.add_subparsers(title="keys commands", metavar="COMMAND", required=True)

    create = sub.add_parser(
        "create",
        help="Create a key for a team (printed once).",
        description="Create an API key for a team; the key is printed once and only its hash is kept.",
    )
    create.add_argument("--team", required=True, help="The owning team, by name.")
    create.add_argument("--name", default="", help="A label to recognise the key (e.g. the application).")
    create.add_argument("--expires-days", type=int, default=None, help="Expire the key after this many days.")
    create.add_argument("--allow-ip", default="", help="Comma-separated CIDRs the key may be used from (default any).")
    create.set_defaults(func=_create)

    listing = sub.add_parser("list", help="List keys with their status and age.", description="List every key.")
    listing.set_defaults(func=_list)

    revoke = sub.add_parser(
        "revoke", help="Revoke a key at once.", description="Revoke a key; refused from the next call."
    )
    revoke.add_argument("--id", type=int, required=True, help="The key's id (see 'keys list').")
    revoke.set_defaults(func=_revoke)

    rotate = sub.add_parser(
        "rotate",
        help="Replace a key; the old one works during a grace period.",
        description="Issue a new key (printed once); the old key keeps working for the grace period.",
    )
    rotate.add_argument("--id", type=int, required=True, help="The key's id.")
    rotate.add_argument("--grace-hours", type=int, default=24, help="Hours the old key keeps working (default 24).")
    rotate.set_defaults(func=_rotate)


def _print_secret(session: Session, created: keys.CreatedKey) -> None:
    team = identity.get_team(session, created.team_id).name
    # Nothing key-shaped on this line: scripts take the first qk_… word of the output.
    print(f"key {created.key_id} for team {team}:")
    print(created.secret)
    print("Store it now: Quorum keeps only its hash and cannot show it again.")


def _create(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        team = identity.team_by_name(session, args.team)
        _print_secret(
            session,
            keys.create_key(
                session=session,
                actor=CLI_ACTOR,
                team_id=saved_id(team),
                label=args.name,
                expires_days=args.expires_days,
                allowed_cidrs=args.allow_ip,
            ),
        )
    return 0


def _list(_args: Namespace) -> int:
    with db.session_scope() as session:
        teams = {saved_id(team): team.name for team in identity.list_teams(session)}
        for k in keys.list_keys(session, actor=CLI_ACTOR):
            warning = f"  ! {k.age_warning}" if k.age_warning else ""
            print(f"{k.id:>4}  {k.prefix}…  {teams.get(k.team_id, k.team_id):<12} {k.status:<8} {k.label}{warning}")
    return 0


def _revoke(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        keys.revoke_key(session=session, actor=CLI_ACTOR, key_id=args.id)
    print(f"key {args.id} revoked")
    return 0


def _rotate(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        _print_secret(
            session, keys.rotate_key(session=session, actor=CLI_ACTOR, key_id=args.id, grace_hours=args.grace_hours)
        )
    return 0
