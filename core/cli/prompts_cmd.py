"""`quorum prompts import|export DIR`: the catalog as YAML files, for review in git;
`quorum prompts risk-tier NAME TIER`: a governance decision on how much review a prompt needs."""

from __future__ import annotations

from argparse import Namespace

from sqlmodel import Session

from core import db, migrate
from core.catalog import risk, sync
from core.catalog.spec import RISK_TIERS
from core.catalog.store import prompt_by_name
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.errors import NotFound
from core.identity import people as identity
from core.permissions import Actor


def register(commands: Commands) -> None:
    prompts = commands.add_parser(
        "prompts",
        help="Import and export the prompt catalog as YAML files.",
        description="Import and export the prompt catalog as prompts/<name>.yaml files.",
    )
    sub = prompts.add_subparsers(title="prompts commands", metavar="COMMAND", required=True)

    imp = sub.add_parser(
        "import",
        help="Import every prompt file of a directory (all or nothing).",
        description="Validate every *.yaml file in DIR, then create new prompts and a new draft version for each "
        "changed file; a file whose content equals a stored version changes nothing. A bad file refuses the "
        "whole import. Audited as 'system:cli' unless --as names a prompt engineer.",
    )
    imp.add_argument("directory", metavar="DIR", help="The directory holding <name>.yaml prompt files.")
    imp.add_argument(
        "--as",
        dest="as_email",
        metavar="EMAIL",
        help="Import as this person (a prompt engineer of each prompt's team), not as system:cli.",
    )
    imp.set_defaults(func=_import)

    exp = sub.add_parser(
        "export",
        help="Write one YAML file per prompt into a directory.",
        description="Write DIR/<name>.yaml for every prompt: its latest approved version, or its latest version "
        "when none is approved yet. Importing the directory into an empty catalog gives the same content hashes.",
    )
    exp.add_argument("directory", metavar="DIR", help="The directory to write (created if missing).")
    exp.set_defaults(func=_export)

    tier = sub.add_parser(
        "risk-tier",
        help="Change a prompt's risk tier (lowering it is for governance leads).",
        description="Set how much review a prompt's versions need. Lowering a tier is for governance leads only; "
        "raising it is also open to the prompt's engineers. A version already in review keeps needing what its "
        "tier at submission required. Audited as 'prompt.risk_tier.change'.",
    )
    tier.add_argument("name", metavar="NAME", help="The prompt's name, e.g. ticket-triage.")
    tier.add_argument("tier", metavar="TIER", choices=RISK_TIERS, help=f"The new tier: {', '.join(RISK_TIERS)}.")
    tier.add_argument(
        "--as",
        dest="as_email",
        metavar="EMAIL",
        help="Act as this person (a governance lead to lower a tier), not as system:cli.",
    )
    tier.set_defaults(func=_risk_tier)


def _acting(session: Session, as_email: str | None) -> Actor:
    if not as_email:
        return CLI_ACTOR
    actor = identity.actor_for_email(session, as_email)
    if actor is None:
        raise NotFound(f"No active person with e-mail {as_email!r}")
    return actor


def _import(args: Namespace) -> int:
    migrate.upgrade()
    with db.session_scope(write=True) as session:
        actor = _acting(session, args.as_email)
        report = sync.import_directory(session=session, actor=actor, directory=args.directory)
    print(f"imported: {report.summary()}")
    for line in report.new_versions:
        print(f"  new draft: {line}")
    return 0


def _risk_tier(args: Namespace) -> int:
    migrate.upgrade()
    with db.session_scope(write=True) as session:
        prompt = prompt_by_name(session, args.name)
        before = prompt.risk_tier
        risk.change_risk_tier(
            session=session, actor=_acting(session, args.as_email), prompt_id=saved_id(prompt), risk_tier=args.tier
        )
    print(f"{args.name}: risk tier {before} -> {args.tier}")
    return 0


def _export(args: Namespace) -> int:
    migrate.upgrade()
    with db.session_scope() as session:
        paths = sync.export_directory(session=session, actor=CLI_ACTOR, directory=args.directory)
    print(f"exported {len(paths)} prompts to {args.directory}")
    return 0
