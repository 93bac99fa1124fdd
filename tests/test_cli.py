"""The `quorum` command line: help for every command, one-line errors, non-zero exits."""

from __future__ import annotations

import argparse
import re

import pytest

from core.cli.main import build_parser, main
from core.identity import people as identity


def all_commands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from all_commands(sub, (*prefix, name))


def test_every_command_has_help_text():
    commands = list(all_commands(build_parser()))
    assert {("db", "upgrade"), ("demo", "seed"), ("people", "add"), ("people", "grant"), ("run",)} <= {
        c for c, _ in commands
    }
    for command, parser in commands:
        assert parser.description, f"quorum {' '.join(command)} has no description"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"quorum {' '.join(command)} {action.option_strings[0]} has no help"


def test_each_command_loads_only_its_own_module_and_the_table_says_which():
    """`quorum audit export` (a stream of a few MB) must not carry pandas, numpy and the OpenAI
    SDK that the dashboard's commands import; the table of which module registers which
    command is checked against the modules themselves."""
    import importlib
    import subprocess
    import sys

    from core.cli.main import COMMAND_MODULES, COMMANDS

    registered = {}
    for name in COMMAND_MODULES:
        commands = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"core.cli.{name}").register(commands)
        registered |= dict.fromkeys(commands.choices, name)
    assert registered == COMMANDS
    for command in ("audit", "spend", "calls"):
        probe = (
            "import sys; from core.cli.main import build_parser; "
            f"build_parser([{command!r}, '--help']); "
            "print(sorted(m for m in ('pandas', 'numpy', 'openai', 'plotly', 'streamlit') if m in sys.modules))"
        )
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        assert loaded.strip() == "[]", f"quorum {command} loads {loaded}"


def test_demo_seed_fills_an_empty_database_and_refuses_a_full_one(db_url, capsys, session):
    assert main(["demo", "seed"]) == 0
    assert "seeded 4 teams, 9 people" in capsys.readouterr().out
    assert main(["demo", "seed"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: The database already has people; use --reset to start over (demo mode only)"
    )
    assert main(["demo", "seed", "--reset"]) == 0
    assert len(identity.list_people(session)) == 9


def test_reset_is_refused_outside_demo_mode(db_url, capsys, monkeypatch):
    from core.settings import reset_settings

    monkeypatch.delenv("QUORUM_DEMO")
    reset_settings()
    assert main(["demo", "seed", "--reset"]) == 1
    assert "QUORUM_DEMO=1" in capsys.readouterr().err


def test_people_add_and_grant(db_url, capsys, session, directory):  # the demo's teams and people
    assert (
        main(
            [
                "people",
                "add",
                "--email",
                "Noor.Haddad@example.com",
                "--name",
                "Noor Haddad",
                "--team",
                "legal",
                "--role",
                "prompt_engineer",
            ]
        )
        == 0
    )
    assert main(["people", "grant", "--email", "noor.haddad@example.com", "--role", "auditor"]) == 0
    actor = identity.actor_for_email(session, "noor.haddad@example.com")
    assert {r.value for r in actor.roles} == {"prompt_engineer", "auditor"}
    assert actor.ref.startswith("person:")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["people", "add", "--email", "x@example.com", "--name", "  "], "error: A person needs a name"),
        (
            ["people", "add", "--email", "tom.becker@example.com", "--name", "Tom"],
            "error: A person with e-mail 'tom.becker@example.com' already exists",
        ),
        (
            ["people", "grant", "--email", "tom.becker@example.com", "--role", "wizard"],
            "error: Unknown role 'wizard'; valid roles are: admin, governance_lead, finance, prompt_engineer, auditor",
        ),
        (
            ["people", "grant", "--email", "nobody@example.com", "--role", "admin"],
            "error: No person with e-mail 'nobody@example.com'",
        ),
        (
            ["people", "add", "--email", "y@example.com", "--name", "Y", "--team", "Nowhere"],
            "error: No team named 'Nowhere' (teams: Data, Legal, Marketing, Support)",
        ),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(db_url, capsys, argv, message, session, directory):
    people_before = len(identity.list_people(session))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == message and err.count("\n") == 1
    assert len(identity.list_people(session)) == people_before


def test_unknown_role_choice_is_an_argument_error(db_url, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["people", "add", "--email", "a@example.com", "--name", "A", "--role", "wizard"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'wizard'" in capsys.readouterr().err


def test_db_upgrade_is_idempotent(db_url, capsys):
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert "database at revision" in capsys.readouterr().out


def test_run_refuses_unsafe_settings_before_starting_anything(db_url, capsys, monkeypatch):
    from core.settings import reset_settings

    monkeypatch.delenv("QUORUM_DEMO")
    reset_settings()
    assert main(["run", "--port", "8599"]) == 1
    assert capsys.readouterr().err.startswith("error: Unsafe configuration: no [auth] section")


def test_a_key_name_holding_a_token_is_refused_with_exit_1_and_the_token_is_not_echoed(
    db_url, capsys, session, directory
):
    token = "ghp_" + "Zq9w" * 9  # built at run time: no key-shaped literal in the repository
    assert main(["keys", "create", "--team", "Support", "--name", f"ci {token}"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == "error: The key's name contains a GitHub token; remove it before saving"
    assert token not in captured.out + captured.err


def test_keys_are_shown_by_team_name_and_their_secret_once_and_never_stored(db_url, capsys, session, directory):
    from sqlalchemy import text

    assert main(["keys", "create", "--team", "Legal", "--name", "contracts bot"]) == 0
    out = capsys.readouterr().out
    heading, secret, warning = out.splitlines()
    assert heading.endswith("for team Legal:") and "team id" not in heading
    assert secret.startswith("qk_live_") and re.search(r"\bqk_\S+", out).group(0) == secret  # as scripts take it
    assert "cannot show it again" in warning
    assert main(["keys", "list"]) == 0
    [line] = [row for row in capsys.readouterr().out.splitlines() if "contracts bot" in row]
    assert " Legal " in line and "active" in line and secret not in line
    key_id = line.split()[0]
    assert main(["keys", "rotate", "--id", key_id]) == 0
    rotated = capsys.readouterr().out.splitlines()[1]
    assert rotated.startswith("qk_live_") and rotated != secret
    session.rollback()
    stored = " ".join(str(value) for row in session.execute(text("SELECT * FROM api_key")) for value in row)
    assert secret not in stored and rotated not in stored
