"""Entry point of `quorum`: one sub-command module per concern, imported when it is run."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core.errors import QuorumError
from core.ops import logs

# Each module adds its commands with `register(subparsers)`. Only the module of the command
# being run is imported: the others pull in pandas, numpy and the OpenAI SDK, over 100 MB
# that `quorum audit export` (which streams a file in a few MB) would otherwise carry
# (bench/exports.py). tests/test_cli.py checks that this table names what each module registers.
COMMANDS = {
    "run": "run_cmd",
    "gateway": "gateway_cmd",
    "db": "db_cmd",
    "demo": "demo_cmd",
    "people": "people_cmd",
    "prompts": "prompts_cmd",
    "keys": "keys_cmd",
    "limits": "limits_cmd",
    "audit": "audit_cmd",
    "backup": "backup_cmd",
    "spend": "export_cmd",
    "calls": "export_cmd",
    "retention": "retention_cmd",
    "privacy": "retention_cmd",
    "rollups": "rollups_cmd",
    "finance": "finance_cmd",
    "alerts": "alerts_cmd",
    "simulator": "simulator_cmd",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given the arguments of a known command, of that one
    (an unknown one gets every command, so argparse can list them)."""
    parser = argparse.ArgumentParser(
        prog="quorum",
        description="Quorum: governance dashboard and gateway for a company's use of the OpenAI API.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    named = next((a for a in argv or () if not a.startswith("-")), None)
    wanted = [COMMANDS[named]] if named in COMMANDS else COMMAND_MODULES
    for name in wanted:
        importlib.import_module(f"core.cli.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    try:
        logs.configure()  # QUORUM_LOG_FORMAT=json: cron jobs' governance actions as JSON lines too
        return args.func(args) or 0
    except QuorumError as error:
        # One line, so a script or cron mail shows the reason and nothing else.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
