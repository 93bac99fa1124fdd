"""Every `quorum` command the README shows as an example runs, in the README's order, on the
demo's database, and succeeds: a reader who copies one gets what the README says.

Synopses (with placeholders such as `NAME`, `--team T` or `a|b`) are checked by
tests/test_docs.py against the parser instead. The two commands that start a server (`run`,
`simulator serve`) are started by tests/test_server_socket.py and tests/test_simulator.py.
"""

from __future__ import annotations

import re
import shlex

import pytest

from core.cli.main import main
from core.settings import PROJECT_ROOT, reset_settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
SERVERS = (("run",), ("simulator", "serve"))
# A synopsis rather than an example: an upper-case placeholder word, alternatives, a bare `N`.
PLACEHOLDER = re.compile(r"(^|\s)(?:--\S+\s+)?[A-Z][A-Z_]*(\s|$)|\||\.\.\.|…")


def readme_examples() -> list[str]:
    """The README's runnable examples in reading order: lines of ```bash blocks, and inline
    `quorum …` code with no placeholder (optional parts in brackets are taken as written)."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"```bash\n(.*?)```", README, flags=re.S):
        offset = block.start(1)
        for line in block.group(1).splitlines(keepends=True):
            command = line.split("#", 1)[0].strip()
            for part in command.split("&&"):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("quorum "):
                    found.append((offset, part))
            offset += len(line)
    for inline in re.finditer(r"`(quorum [^`]+)`", README):
        text = inline.group(1).replace("[", "").replace("]", "")
        if not PLACEHOLDER.search(text.removeprefix("quorum ")):
            found.append((inline.start(), text))
    examples: list[str] = []
    for _, example in sorted(found):
        argv = shlex.split(example)[1:]
        if tuple(argv[: len(SERVERS[1])]) in SERVERS or tuple(argv[:1]) in SERVERS:
            continue
        if example not in examples:
            examples.append(example)
    return examples


def test_the_readme_shows_examples_of_the_main_commands():
    commands = {" ".join(shlex.split(e)[1:3]) for e in readme_examples()}
    assert {"audit verify", "retention enforce", "privacy export", "keys create"} <= commands


def test_every_readme_example_runs_on_the_demo_database(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples that write a file write it here
    assert main(["demo", "seed"]) == 0
    # Checkpoints are signed: set the key `quorum audit keygen` prints, as the README says.
    assert main(["audit", "keygen"]) == 0
    for line in capsys.readouterr().out.splitlines():
        name, _, value = line.partition("=")
        if name.startswith("QUORUM_AUDIT_"):
            monkeypatch.setenv(name, value)
    reset_settings()
    failures = []
    for example in readme_examples():
        code = main(shlex.split(example)[1:])
        output = capsys.readouterr()
        if code != 0:
            failures.append(f"{example}\n  exit {code}: {(output.err or output.out).strip()[:300]}")
    assert not failures, "README examples that fail on the demo database:\n" + "\n".join(failures)


@pytest.mark.parametrize(
    ("text", "runnable"),
    [
        ("quorum keys list", True),
        ("quorum keys revoke --id N", False),
        ("quorum prompts risk-tier NAME TIER --as EMAIL", False),
        ("quorum payloads --team T --mode full|redacted|none", False),
        ("quorum keys create --team Support --name my-app --expires-days 90", True),
    ],
)
def test_a_synopsis_is_not_taken_for_an_example(text, runnable):
    assert (not PLACEHOLDER.search(text.removeprefix("quorum "))) is runnable
