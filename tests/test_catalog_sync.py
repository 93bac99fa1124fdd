"""Import and export of prompts/*.yaml: idempotent, all or nothing, hashes preserved."""

from __future__ import annotations

import shutil

import pytest
from sqlmodel import func, select

from core import demo
from core.catalog import sync
from core.catalog.files import CatalogValidationError
from core.cli.main import main
from core.models.audit import AuditEvent
from core.models.catalog import Prompt, PromptVersion
from core.permissions import Actor
from tests.conftest import PROMPTS_DIR

CLI = Actor.system("cli")


def hashes(session) -> dict[str, list[tuple[int, str, str]]]:
    session.rollback()
    result: dict[str, list] = {}
    for prompt in session.exec(select(Prompt).order_by(Prompt.name)):
        result[prompt.name] = [
            (v.number, v.state, v.content_hash)
            for v in session.exec(
                select(PromptVersion).where(PromptVersion.prompt_id == prompt.id).order_by(PromptVersion.number)
            )
        ]
    return result


def count(session, table) -> int:
    return session.exec(select(func.count()).select_from(table)).one()


def test_import_creates_drafts_and_is_idempotent(session, directory, tmp_path):
    report = sync.import_directory(session=session, actor=CLI, directory=PROMPTS_DIR)
    assert len(report.created) == 6 and not report.new_versions
    first = hashes(session)
    assert all(v == [(1, "draft", v[0][2])] for v in first.values())
    events = count(session, AuditEvent)
    again = sync.import_directory(session=session, actor=CLI, directory=PROMPTS_DIR)
    assert sorted(again.unchanged) == sorted(first) and not again.created and not again.new_versions
    assert hashes(session) == first and count(session, AuditEvent) == events

    # A changed file becomes the next draft version of that prompt only.
    copy = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, copy)
    path = copy / "sql-explain.yaml"
    path.write_text(path.read_text().replace("model: gpt-4.1-mini", "model: gpt-4o", 1))
    report = sync.import_directory(session=session, actor=CLI, directory=copy)
    assert report.new_versions == ["sql-explain v2"]
    assert [n for n, s, _h in hashes(session)["sql-explain"]] == [1, 2]


def test_a_bad_file_refuses_the_whole_import_naming_file_and_reason(session, directory, tmp_path):
    copy = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, copy)
    (copy / "zz-broken.yaml").write_text("name: zz-broken\nteam: [unclosed\n")
    (copy / "aa-wrong.yaml").write_text(
        (copy / "sql-explain.yaml").read_text().replace("risk_tier: low", "risk_tier: extreme")
    )
    events = count(session, AuditEvent)
    with pytest.raises(CatalogValidationError) as caught:
        sync.import_directory(session=session, actor=CLI, directory=copy)
    message = str(caught.value)
    assert "zz-broken.yaml: line 3" in message and "YAML syntax error" in message
    assert "aa-wrong.yaml" in message and "extreme" in message
    session.rollback()
    assert count(session, Prompt) == 0 and count(session, AuditEvent) == events


def test_a_refused_permission_imports_nothing(session, directory):
    tom = directory.by_email("tom.becker@example.com")  # Support only; the seed prompts span four teams
    with pytest.raises(Exception, match="for a team they do not belong to"):
        sync.import_directory(session=session, actor=tom, directory=PROMPTS_DIR)
    session.rollback()
    assert count(session, Prompt) == 0


def test_export_then_import_into_an_empty_catalog_keeps_the_hashes(session, directory, tmp_path):
    from core.catalog.demo_seed import seed_catalog

    seed_catalog(session)
    exported = sync.export_directory(session=session, actor=CLI, directory=tmp_path / "out")
    assert len(exported) == 6
    # The file holds the latest approved version, or the latest one when none is approved.
    chosen = {}
    for name, versions in hashes(session).items():
        approved = [h for _n, s, h in versions if s == "approved"]
        chosen[name] = approved[-1] if approved else versions[-1][2]
    # Re-importing into the same catalog changes nothing.
    assert sync.import_directory(session=session, actor=CLI, directory=tmp_path / "out").new_versions == []

    demo.wipe(session)
    demo.seed_directory(session)
    sync.import_directory(session=session, actor=CLI, directory=tmp_path / "out")
    assert {name: versions[0][2] for name, versions in hashes(session).items()} == chosen


def test_cli_import_export_and_errors(session, directory, tmp_path, capsys):
    assert main(["prompts", "import", str(PROMPTS_DIR), "--as", "tom.becker@example.com"]) == 1
    assert "for a team they do not belong to" in capsys.readouterr().err
    assert main(["prompts", "import", str(PROMPTS_DIR)]) == 0
    assert "6 new prompts" in capsys.readouterr().out
    assert main(["prompts", "export", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in PROMPTS_DIR.glob("*.yaml"))
    assert main(["prompts", "import", str(tmp_path / "missing")]) == 1
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("number", [".nan", ".inf", "-.Inf", "1.0e+999"])
def test_a_number_no_json_can_hold_is_refused_by_line_not_a_traceback(session, directory, tmp_path, capsys, number):
    """A hostile (or careless) prompt file: YAML reads `.nan` and `.inf` as floats, which no
    JSON can hold, and the import failed with a traceback while hashing the version."""
    copy = tmp_path / "prompts"
    copy.mkdir()
    lines = (PROMPTS_DIR / "support-answer.yaml").read_text().splitlines(keepends=True)
    (line,) = [n for n, text in enumerate(lines, start=1) if text.strip().startswith("temperature:")]
    lines[line - 1] = f"  temperature: {number}\n"
    (copy / "support-answer.yaml").write_text("".join(lines))
    events = count(session, AuditEvent)
    assert main(["prompts", "import", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"support-answer.yaml: line {line}" in err and f"{number} is not a number JSON can hold" in err
    assert "Traceback" not in err
    session.rollback()
    assert count(session, Prompt) == 0 and count(session, AuditEvent) == events
