"""The README is tested against the code: every command, option and setting is documented,
and every `quorum` line in its shell examples parses."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from core.cli.main import build_parser
from core.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("quorum",)):
    """(path, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _commands(sub, path + (name,))


LEAVES = list(_commands(build_parser()))


def _table_rows(section: str) -> list[str]:
    # A Markdown table ends at its first blank line: rows after one would not render.
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_the_command_table_is_one_table():
    rows = _table_rows(_section("Command line"))
    rest = _section("Command line").split("\n".join(rows))[1]
    assert "| `quorum" not in rest, "a row of the command table is cut off by a blank line"


@pytest.mark.parametrize("path, parser", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_command_and_option_is_in_the_readme_table(path, parser):
    command = " ".join(path)
    rows = [r for r in _table_rows(_section("Command line")) if re.match(rf"\| `{re.escape(command)}( |`)", r)]
    assert rows, f"`{command}` has no row in the README's command table"
    row = rows[0]
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert option in row, f"`{command}` row does not mention {option}"
    assert parser.description or parser.format_help(), f"`{command}` has no help text"


def test_every_command_has_help_text():
    for path, parser in LEAVES:
        assert parser.description, f"`{' '.join(path)}` has no description for --help"
        for action in parser._actions:
            if action.option_strings and action.option_strings != ["-h", "--help"]:
                assert action.help, f"`{' '.join(path)} {action.option_strings[0]}` has no help"


def _setting_names() -> set[str]:
    """Names of settings read by the code: string literals that name an environment variable."""
    pattern = re.compile(r"[\"'](QUORUM_[A-Z0-9_]+|OPENAI_[A-Z_]+|DATABASE_URL|OTEL_[A-Z_]+)[\"']")
    names: set[str] = set()
    for path in list((PROJECT_ROOT / "core").rglob("*.py")) + list((PROJECT_ROOT / "pages").rglob("*.py")):
        names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return names


def test_every_setting_is_in_the_configuration_table():
    table = "\n".join(_table_rows(_section("Configuration")))
    names = _setting_names()
    assert {"DATABASE_URL", "QUORUM_TIMEZONE", "OPENAI_API_KEY"} <= names  # the scan finds them
    missing = sorted(n for n in names if f"`{n}`" not in table)
    assert not missing, f"settings missing from the README's Configuration table: {missing}"


def _readme_quorum_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&", line):
                part = part.strip()
                if part.startswith((".venv/bin/quorum ", "quorum ")):
                    lines.append(part.removeprefix(".venv/bin/"))
    return lines


@pytest.mark.parametrize("line", _readme_quorum_lines())
def test_every_quorum_example_in_the_readme_parses(line):
    argv = shlex.split(line)[1:]
    build_parser().parse_args(argv)  # argparse exits (SystemExit) on anything it does not accept


def test_every_page_is_described_in_the_readme():
    from pages.ui.registry import PAGES

    missing = [page.title for page in PAGES if f"**{page.title}**" not in README]
    assert not missing, f"pages the README never describes (as **Title**): {missing}"
