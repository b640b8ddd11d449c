"""The test ground's modules (hack/) import each other one way: no cycle.

Every import between hack/ modules counts, those read only by the type checker
too: a cycle there is a knot in the design, whatever runs first.
"""

from __future__ import annotations

import ast
from pathlib import Path

HACK = Path(__file__).resolve().parents[2] / "hack"


def _module(path: Path) -> str:
    parts = path.relative_to(HACK).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The hack/ modules `path` imports: a name imported from a package counts as
    its submodule when it is one, else as the package."""
    found: set[str] = set()
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            )
    return {name for name in found if name in modules} - {_module(path)}


def import_graph() -> dict[str, set[str]]:
    """Each hack/ module with the hack/ modules it imports."""
    paths = {_module(path): path for path in HACK.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, as the modules along it; None when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for imported in sorted(graph.get(name, ())):
            if found := visit(imported):
                return found
        path.pop()
        done.add(name)
        return None

    return next((found for name in sorted(graph) if (found := visit(name))), None)


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_hack_has_no_import_cycle() -> None:
    graph = import_graph()
    assert graph.get("testground.controlplane")
    assert cycle(graph) is None, " -> ".join(cycle(graph) or [])
