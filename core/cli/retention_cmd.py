"""`quorum retention ...` and `quorum privacy ...`: enforcement for cron, legal holds, subject requests."""

from __future__ import annotations

import argparse
import sys
from argparse import Namespace

from core import db, exports
from core.audit.query import parse_time
from core.catalog.store import prompt_by_name
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.identity import people as identity
from core.retention import enforce, holds, privacy, rules
from core.retention import preview as retention_preview


def register(commands: Commands) -> None:
    retention = commands.add_parser(
        "retention",
        help="Enforce retention rules and manage legal holds.",
        description="Delete or anonymize records past their retention class; "
        "legal holds keep records whatever their class says.",
    )
    sub = retention.add_subparsers(title="retention commands", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "enforce",
        help="Delete or anonymize what is past its time (for cron).",
        description="Run retention enforcement in bounded batches; an interrupted run resumes "
        "where it stopped, and only one run happens at a time across servers.",
    )
    run.add_argument("--dry-run", action="store_true", help="Show counts per class and sample records; change nothing.")
    run.add_argument(
        "--batch-size",
        type=int,
        default=enforce.BATCH_SIZE,
        help=f"Rows per transaction (default {enforce.BATCH_SIZE}).",
    )
    run.set_defaults(func=_enforce)

    classes = sub.add_parser(
        "classes",
        help="Show each retention class's rule, basis and team overrides.",
        description="Show the rules in force: data/retention.yaml with the app's overrides.",
    )
    classes.set_defaults(func=_classes)

    payloads = sub.add_parser(
        "payloads",
        help="Set what a team's gateway calls store: full, redacted or none.",
        description="Data minimization: what request and response text is stored for a "
        "team. Usage and cost are always kept.",
    )
    payloads.add_argument("--team", required=True, help="Team name.")
    payloads.add_argument("--mode", required=True, choices=("full", "redacted", "none"), help="What to store.")
    payloads.set_defaults(func=_payloads)

    hold = sub.add_parser(
        "hold",
        help="Add, release or list legal holds.",
        description="Legal holds keep matching records past their retention.",
    )
    hold_sub = hold.add_subparsers(title="hold commands", metavar="COMMAND", required=True)
    add = hold_sub.add_parser(
        "add", help="Place a legal hold.", description="Hold every record matching all the given conditions."
    )
    add.add_argument("--case", required=True, help="Case name, e.g. 'Acme v. Example'.")
    add.add_argument("--owner-email", required=True, help="E-mail of the person who owns the hold.")
    add.add_argument("--team", help="Hold a team's records (team name).")
    add.add_argument("--person-email", help="Hold a person's records.")
    add.add_argument("--prompt", help="Hold a prompt's records (prompt name).")
    add.add_argument("--since", help="Hold records from this UTC time (2026-03-01 or 2026-03-01T14:30).")
    add.add_argument("--until", help="Hold records before this UTC time.")
    add.set_defaults(func=_hold_add)
    release = hold_sub.add_parser(
        "release",
        help="Release a legal hold by id.",
        description="Release a hold: its records become eligible on the next run.",
    )
    release.add_argument("hold_id", type=int, help="The hold's id (see `quorum retention hold list`).")
    release.set_defaults(func=_hold_release)
    listing = hold_sub.add_parser("list", help="List legal holds, newest first.", description="List legal holds.")
    listing.set_defaults(func=_hold_list)

    privacy_parser = commands.add_parser(
        "privacy",
        help="Answer data-subject requests: access and erasure.",
        description="Export or erase what Quorum holds about a person (by e-mail) "
        "or an application's end user (the request's `user` field).",
    )
    psub = privacy_parser.add_subparsers(title="privacy commands", metavar="COMMAND", required=True)
    export = psub.add_parser(
        "export",
        help="Write everything held about a subject to one JSON file.",
        description="Access request: one JSON file of everything held about the subject.",
    )
    _subject_arguments(export)
    export.add_argument("--output", required=True, help="The JSON file to write.")
    export.set_defaults(func=_export)
    erase = psub.add_parser(
        "erase",
        help="Erase a subject's personal data.",
        description="Erasure request: the person's name and e-mail are anonymized, payloads "
        "mentioning them deleted; audit events keep the pseudonymous id and still verify.",
    )
    _subject_arguments(erase)
    erase.set_defaults(func=_erase)


def _subject_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--email", help="The person's e-mail address.")
    group.add_argument("--user", help="An end-user id, as applications send it in the request's `user` field.")


def _enforce(args: Namespace) -> int:
    if args.batch_size < 1:
        from core.errors import ValidationError

        raise ValidationError("--batch-size must be at least 1")
    if args.dry_run:
        with db.session_scope() as session:
            rows = retention_preview.preview(session=session, actor=CLI_ACTOR)
        for row in rows:
            team = "default" if row.team_id is None else f"team {row.team_id}"
            print(f"{row.class_key:<18} {row.kind:<15} {team:<8} {row.period:>5} {row.action:<9} {row.count:>9}")
            for sample in row.samples:
                print(f"    e.g. {sample['id']} ({sample['time']:%Y-%m-%d %H:%M} UTC)")
        print(f"dry run: {sum(r.count for r in rows)} records would be deleted or anonymized")
        return 0
    result = enforce.enforce(actor=CLI_ACTOR, batch_size=args.batch_size)
    for kind, counts in result.counts.items():
        for verb, n in counts.items():
            print(f"{kind:<15} {verb:<10} {n:>9}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"run {result.run_id}{' (resumed)' if result.resumed else ''}: {result.total} records handled"
        + (f", audit log pruned before {result.pruned_before}" if result.pruned_before else "")
    )
    return 0


def _classes(_args: Namespace) -> int:
    with db.session_scope() as session:
        current = rules.current_rules(session)
    for key, klass in current.classes.items():
        rule = current.defaults[key]
        print(f"{key:<18} {str(rule.period):>5} {rule.action:<9} {', '.join(klass.basis):<14} ({rule.source})")
    for (key, team), rule in sorted(current.teams.items(), key=lambda item: (item[0][0], item[0][1])):
        print(f"{key:<18} {str(rule.period):>5} {rule.action:<9} team {team}")
    return 0


def _payloads(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        team = identity.team_by_name(session, args.team)
        rules.set_payload_storage_mode(session=session, actor=CLI_ACTOR, team_id=saved_id(team), mode=args.mode)
    print(f"{args.team}: payloads stored {args.mode}")
    return 0


def _hold_add(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        owner = identity.person_by_email(session, args.owner_email)
        team = identity.team_by_name(session, args.team).id if args.team else None
        person = identity.person_by_email(session, args.person_email).id if args.person_email else None
        prompt = prompt_by_name(session, args.prompt).id if args.prompt else None
        hold = holds.add_hold(
            session=session,
            actor=CLI_ACTOR,
            case_name=args.case,
            owner_person_id=saved_id(owner),
            team_id=team,
            person_id=person,
            prompt_id=prompt,
            starts_at=parse_time(args.since, field="--since"),
            ends_at=parse_time(args.until, field="--until"),
        )
    print(f"legal hold {hold.id} placed ({hold.case_name})")
    return 0


def _hold_release(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        hold = holds.release_hold(session=session, actor=CLI_ACTOR, hold_id=args.hold_id)
    print(f"legal hold {hold.id} released ({hold.case_name})")
    return 0


def _hold_list(_args: Namespace) -> int:
    with db.session_scope() as session:
        for hold in holds.all_holds(session, actor=CLI_ACTOR):
            state = "released" if hold.released_at else "active"
            scope = ", ".join(
                f"{k}={v}"
                for k, v in (
                    ("team", hold.team_id),
                    ("person", hold.person_id),
                    ("prompt", hold.prompt_id),
                    ("from", hold.starts_at),
                    ("until", hold.ends_at),
                )
                if v is not None
            )
            print(f"{hold.id:>4} {state:<8} {hold.case_name} [{scope}]")
    return 0


def _export(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        export = privacy.access_stream(session=session, actor=CLI_ACTOR, email=args.email, end_user=args.user)
    progress = exports.TerminalProgress("records")
    exports.write_file(export, args.output, progress=progress)
    progress.done()
    print(f"wrote {args.output}: " + ", ".join(f"{k} {v}" for k, v in export.summary.items()))
    return 0


def _erase(args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        result = privacy.erase(session=session, actor=CLI_ACTOR, email=args.email, end_user=args.user)
    print(
        f"erased {result.subject}: "
        + (", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "nothing held")
    )
    for line in result.kept_lines():
        print(line)
    return 0
