"""`quorum prompts import|export DIR`: the catalog as YAML files, for review in git."""

from __future__ import annotations

from core import db, identity, migrate
from core.catalog import sync
from core.errors import NotFound
from core.permissions import Actor

CLI_ACTOR = Actor.system("cli")


def register(commands) -> None:
    prompts = commands.add_parser("prompts", help="Import and export the prompt catalog as YAML files.",
                                  description="Import and export the prompt catalog as prompts/<name>.yaml files.")
    sub = prompts.add_subparsers(title="prompts commands", metavar="COMMAND", required=True)

    imp = sub.add_parser(
        "import", help="Import every prompt file of a directory (all or nothing).",
        description="Validate every *.yaml file in DIR, then create new prompts and a new draft version for each "
        "changed file; a file whose content equals a stored version changes nothing. A bad file refuses the "
        "whole import. Audited as 'system:cli' unless --as names a prompt engineer.")
    imp.add_argument("directory", metavar="DIR", help="The directory holding <name>.yaml prompt files.")
    imp.add_argument("--as", dest="as_email", metavar="EMAIL",
                     help="Import as this person (a prompt engineer of each prompt's team), not as system:cli.")
    imp.set_defaults(func=_import)

    exp = sub.add_parser(
        "export", help="Write one YAML file per prompt into a directory.",
        description="Write DIR/<name>.yaml for every prompt: its latest approved version, or its latest version "
        "when none is approved yet. Importing the directory into an empty catalog gives the same content hashes.")
    exp.add_argument("directory", metavar="DIR", help="The directory to write (created if missing).")
    exp.set_defaults(func=_export)


def _import(args) -> int:
    migrate.upgrade()
    with db.session_scope(write=True) as session:
        actor = CLI_ACTOR
        if args.as_email:
            actor = identity.actor_for_email(session, args.as_email)
            if actor is None:
                raise NotFound(f"No active person with e-mail {args.as_email!r}")
        report = sync.import_directory(session=session, actor=actor, directory=args.directory)
    print(f"imported: {report.summary()}")
    for line in report.new_versions:
        print(f"  new draft: {line}")
    return 0


def _export(args) -> int:
    migrate.upgrade()
    with db.session_scope() as session:
        paths = sync.export_directory(session=session, actor=CLI_ACTOR, directory=args.directory)
    print(f"exported {len(paths)} prompts to {args.directory}")
    return 0
