"""The import graph of src/orch has no cycles (each layer imports only the ones below it).

Every `import orch.x` / `from orch.x import y` / relative import anywhere in a module counts,
also inside functions: a lazy import still couples the two modules both ways."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
# The gateway's server <-> multi cycle is being removed on another branch (the gateway's
# composition root); until that lands it is the one cycle known here.
KNOWN_EDGE = frozenset({"orch.gateway.server", "orch.gateway.multi"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / "orch").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target != "orch":
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_real_edges() -> None:
    graph = import_graph()
    assert "orch.terraform" in graph["orch.deploy"] and "orch.errors" in graph["orch.terraform"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_cycles_besides_the_known_gateway_edge() -> None:
    graph = import_graph()
    for a, b in (tuple(KNOWN_EDGE), tuple(reversed(tuple(KNOWN_EDGE)))):
        graph[a].discard(b)
    assert cycles(graph) == []


@pytest.mark.xfail(reason="gateway/server.py and gateway/multi.py import each other until the gateway's "
                   "composition root lands (branch gwhttp); strict: this fails once the cycle is gone",
                   strict=True)
def test_no_import_cycles_at_all() -> None:
    assert cycles(import_graph()) == []
