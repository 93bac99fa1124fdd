"""Entry point of `quorum`: one sub-command module per concern."""

from __future__ import annotations

import argparse
import sys

from core.cli import (
    alerts_cmd,
    audit_cmd,
    backup_cmd,
    db_cmd,
    demo_cmd,
    export_cmd,
    finance_cmd,
    gateway_cmd,
    keys_cmd,
    limits_cmd,
    people_cmd,
    prompts_cmd,
    retention_cmd,
    rollups_cmd,
    run_cmd,
    simulator_cmd,
)
from core.errors import QuorumError
from core.ops import logs

# Each module adds its commands with `register(subparsers)`.
COMMAND_MODULES = [
    run_cmd,
    gateway_cmd,
    db_cmd,
    demo_cmd,
    people_cmd,
    prompts_cmd,
    keys_cmd,
    limits_cmd,
    audit_cmd,
    backup_cmd,
    export_cmd,
    retention_cmd,
    rollups_cmd,
    finance_cmd,
    alerts_cmd,
    simulator_cmd,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quorum",
        description="Quorum: governance dashboard and gateway for a company's use of the OpenAI API.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
