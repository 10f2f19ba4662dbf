"""The parts of deckhand import each other in one direction only: no cycle between its
top-level packages (deckhand.serving, deckhand.monitoring, ...), counting imports inside
functions too. Read from the source (ast), so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "deckhand").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every deckhand module `module` imports, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "deckhand" or name.startswith("deckhand.")}


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])  # deckhand.serving.app -> deckhand.serving


def package_graph() -> dict[str, dict[str, set[str]]]:
    """part -> part it imports -> the module edges that make it so."""
    modules = _modules()
    graph: dict[str, dict[str, set[str]]] = {}
    for module, path in modules.items():
        for name in _imports(module, path):
            while name not in modules and "." in name:  # deckhand.x.Class -> deckhand.x
                name = name.rpartition(".")[0]
            source, target = _part(module), _part(name)
            if source != target and target != "deckhand":
                graph.setdefault(source, {}).setdefault(target, set()).add(f"{module} -> {name}")
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected groups of more than one part (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_the_parts_of_deckhand() -> None:
    graph = package_graph()
    assert "deckhand.serving" in graph and "deckhand.monitoring" in graph["deckhand.serving"]  # the check sees them
    problems = []
    for group in cycles(graph):
        edges = sorted(e for a in group for b in group if b in graph.get(a, {}) for e in graph[a][b])
        problems.append(" <-> ".join(group) + "\n    " + "\n    ".join(edges))
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_the_check_finds_a_cycle() -> None:
    graph = {"a": {"b": {"a.x -> b.y"}}, "b": {"c": {"b -> c"}}, "c": {"a": {"c -> a"}}, "d": {"a": {"d -> a"}}}
    assert cycles(graph) == [["a", "b", "c"]]
