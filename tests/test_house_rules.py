"""The layering rules of docs/architecture.md, checked on every file."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


CORE_FILES = sorted((ROOT / "core").rglob("*.py"))
PAGE_FILES = sorted((ROOT / "pages").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_streamlit(path):
    assert "streamlit" not in imported_modules(path)


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_never_talk_to_the_database_or_openai(path):
    assert not imported_modules(path) & {"sqlmodel", "sqlalchemy", "openai"}


def test_the_rules_see_real_files():
    # Guards the two tests above against passing vacuously on an empty glob.
    assert len(CORE_FILES) > 10 and len(PAGE_FILES) >= 2


# ---- the contexts of core/ and their order (docs/architecture.md) -----------------------


def _layering():
    # A script of docs/, not a package: loaded by path, the way `python docs/...` runs it.
    spec = importlib.util.spec_from_file_location(
        "make_architecture_graph", ROOT / "docs" / "make_architecture_graph.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


layering = _layering()


def _where(found) -> str:
    return f"{found.path.relative_to(ROOT)}:{found.line} imports {found.module}" + (
        f".{found.name}" if found.name else ""
    )


def test_every_context_of_core_is_in_the_declared_order():
    contexts = {layering.context_of(layering.module_of(path)) for path in layering.core_files()}
    assert contexts == set(layering.ORDER) | set(layering.DOORS)


def test_nothing_in_core_but_the_doors_imports_the_command_line_or_http():
    wrong = [
        _where(found)
        for mine, theirs, found in layering.context_imports()
        if theirs in layering.DOORS and mine not in layering.DOORS
    ]
    assert wrong == []


def test_a_context_imports_only_contexts_below_it():
    rank = {name: i for i, name in enumerate(layering.ORDER)}
    wrong = [
        f"{mine} -> {theirs}: {_where(found)}"
        for mine, theirs, found in layering.context_imports()
        if mine in rank and theirs in rank and rank[theirs] > rank[mine]
    ]
    assert wrong == []


def test_no_import_cycle_between_contexts():
    assert layering.cycles(layering.context_graph()) == []


@pytest.mark.parametrize("path", CORE_FILES + PAGE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_name(path):
    private = [
        _where(found)
        for found in layering.imports_in(path)
        if found.module.startswith("core")
        and found.name
        and found.name.startswith("_")
        and not found.name.startswith("__")
    ]
    assert private == []


def test_the_committed_context_graph_is_the_one_the_code_draws():
    doc = layering.DOC.read_text(encoding="utf-8")
    assert layering.with_graph(doc) == doc, "run: python docs/make_architecture_graph.py"


def test_the_layering_rules_catch_a_wrong_import(tmp_path):
    # The rules above pass on the code as it is; this shows they would fail on a wrong one.
    graph = {**layering.context_graph(), "audit": {"gateway"}, "gateway": {"audit"}}
    assert layering.cycles(graph) == [["audit", "gateway", "audit"]]
    wrong = tmp_path / "wrong.py"
    wrong.write_text("from core.gateway.pipeline import _payload\n", encoding="utf-8")
    assert [(found.module, found.name) for found in layering.imports_in(wrong)] == [
        ("core.gateway.pipeline", "_payload")
    ]
