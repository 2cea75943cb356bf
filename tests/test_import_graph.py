"""orch's modules import each other without cycles (issue 6 item 9): every import in
src/orch, at module level or inside a function, read from the syntax tree."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = SRC / "orch") -> dict[str, set[str]]:
    """Module -> the orch modules it imports (``from orch.x import y`` counts ``orch.x``,
    and ``orch.x.y`` when that is a module)."""
    files = {_module_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_src_orch_has_no_import_cycle():
    graph = import_graph()
    assert "orch.gateway.app" in graph and "orch.gateway.server" in graph["orch.gateway.app"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_http_server_knows_nothing_of_the_parts_it_serves():
    graph = import_graph()
    assert not graph["orch.gateway.server"] & {
        "orch.gateway.app",
        "orch.gateway.multi",
        "orch.gateway.model",
        "orch.gateway.workers",
        "orch.gateway.pipeline",
    }


def test_the_cycle_finder_finds_a_function_level_cycle(tmp_path: Path):
    pkg = tmp_path / "orch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from orch.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("import orch.a\n")
    global SRC
    saved, SRC = SRC, tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        SRC = saved
    assert graph["orch.c"] == {"orch.a"}
    assert find_cycle(graph) == ["orch.a", "orch.b", "orch.a"]
