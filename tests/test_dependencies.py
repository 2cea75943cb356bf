"""What orch imports is what it declares (issue 11's pins): every third-party import in
src/orch belongs to a distribution in `dependencies` (or, for the daemon, the `sandbox`
extra), and what only the tests use stays out of them."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from helpers import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SANDBOX_ONLY = {"orch/sandboxd.py", "orch/sandbox_ext.py"}  # run in the daemon, which needs the extra


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"orch"}


def distributions(module: str) -> set[str]:
    return {d.lower().replace("_", "-") for d in importlib.metadata.packages_distributions().get(module, [])}


def test_every_import_in_src_is_declared() -> None:
    base = names(PYPROJECT["project"]["dependencies"])
    sandbox = names(PYPROJECT["project"]["optional-dependencies"]["sandbox"])
    undeclared = []
    for path in sorted((REPO / "src" / "orch").rglob("*.py")):
        rel = path.relative_to(REPO / "src").as_posix()
        allowed = base | (sandbox if rel in SANDBOX_ONLY else set())
        for module in imports(path):
            if not distributions(module) & allowed:
                undeclared.append(f"{rel}: {module} ({', '.join(sorted(distributions(module))) or 'not installed'})")
    assert undeclared == []


def test_requests_is_for_the_tests_only() -> None:
    assert "requests" not in names(PYPROJECT["project"]["dependencies"])
    assert "requests" in names(PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert not any("requests" in imports(p) for p in (REPO / "src").rglob("*.py"))


def test_pins() -> None:
    deps = {names([r]).pop(): r for r in PYPROJECT["project"]["dependencies"]}
    sandbox = {names([r]).pop(): r for r in PYPROJECT["project"]["optional-dependencies"]["sandbox"]}
    assert re.search(r"==\d", deps["airspeed-ext"]) and re.search(r"==\d", deps["python-terraform"])
    assert "<" in sandbox["moto"]  # capped: sandbox_ext patches moto internals
    assert re.search(r">=0\.(1[6-9]|[2-9]\d)", deps["typer"])  # typer 0.12-0.15 break under click 8.2+
    assert "moto" not in deps and "airspeed" not in deps  # the extra; never the fork's look-alike
    assert "orch[sandbox]" in PYPROJECT["project"]["optional-dependencies"]["dev"]
