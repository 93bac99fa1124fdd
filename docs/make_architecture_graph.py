"""The contexts of core/ and the imports between them, read from the code.

`python docs/make_architecture_graph.py` rewrites the Mermaid graph in
docs/architecture.md between its markers; tests/test_house_rules.py checks the layering
with the same functions and that the committed graph is the one the code draws now.
Standard library only, so it runs without the project installed.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- context graph: begin (generated) -->", "<!-- context graph: end -->"

# The ground floor: modules every context may use, that use no context.
GROUND = {
    "errors",
    "clock",
    "settings",
    "db",
    "sqlite_engine",
    "postgres_engine",
    "permissions",
    "attention",
    "exports",
    "paging",
    "formatting",
    "background",
    "prebuilt",
    "together",
}
# Lowest first: a context may import only contexts before it in this list.
ORDER = [
    "ground",
    "models",
    "simulator",
    "guardrails",
    "audit",
    "migrations",
    "identity",
    "catalog",
    "budgets",
    "retention",
    "ops",
    "gateway",
    "finance",
    "anomalies",
    "experiments",
    "demo",
]
# The outer doors: they may import anything; nothing else in core imports them.
DOORS = ["cli", "http"]


@dataclass(frozen=True)
class Import:
    path: Path  # the importing file
    line: int
    module: str  # the imported module, dotted
    name: str | None  # the imported name, for `from module import name`


def context_of(module: str) -> str | None:
    """The context a dotted module name of core belongs to; None outside core."""
    parts = module.split(".")
    if parts[0] != "core":
        return None
    if len(parts) == 1 or parts[1] in GROUND or parts[1] == "__init__":
        return "ground"
    if parts[1] in ("migrate", "migrations"):
        return "migrations"
    return parts[1]


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(path: Path) -> list[Import]:
    """Every absolute import in a file, function-local ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(path, node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from core.audit import chain` names a module: count it as core.audit.chain.
                submodule = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*submodule.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*submodule.split(".")) / "__init__.py"
                ).exists()
                found.append(
                    Import(
                        path, node.lineno, submodule if is_module else node.module, None if is_module else alias.name
                    )
                )
    return found


def core_files() -> list[Path]:
    return sorted((ROOT / "core").rglob("*.py"))


def context_imports() -> list[tuple[str, str, Import]]:
    """(importing context, imported context, the import) for every import across contexts."""
    edges = []
    for path in core_files():
        mine = context_of(module_of(path))
        for found in imports_in(path):
            theirs = context_of(found.module)
            if theirs is not None and theirs != mine:
                edges.append((mine, theirs, found))
    return edges


def context_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for mine, theirs, _ in context_imports():
        graph[mine].add(theirs)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk, each as the path that closes it."""
    found, state = [], {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return found


def mermaid() -> str:
    """The context graph as a Mermaid block: one arrow per importing -> imported context.

    Arrows to the ground floor are left out (every context has one)."""
    graph = context_graph()
    rank = {name: i for i, name in enumerate(ORDER + DOORS)}
    lines = ["```mermaid", "graph TD"]
    for mine in sorted(graph, key=lambda c: rank.get(c, len(rank))):
        for theirs in sorted(graph[mine], key=lambda c: rank.get(c, len(rank))):
            if theirs != "ground":
                lines.append(f"    {mine} --> {theirs}")
    lines.append("```")
    return "\n".join(lines)


def with_graph(doc: str) -> str:
    """The document with the generated block between the markers replaced."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{mermaid()}\n{END}{tail}"


if __name__ == "__main__":
    DOC.write_text(with_graph(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    sys.stdout.write(f"wrote the context graph into {DOC.relative_to(ROOT)}\n")
