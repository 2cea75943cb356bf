"""A throwaway copy of this repository's project for the benchmarks: its stages/ and
functions/ copied, its modules/ linked (what tests/helpers.make_project makes for tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def throwaway_project(parent: Path) -> Path:
    """`parent/proj`: stages/ and functions/ (without node_modules) copied, modules/ linked."""
    project = parent / "proj"
    project.mkdir()
    shutil.copytree(REPO / "stages", project / "stages")
    shutil.copytree(REPO / "functions", project / "functions", ignore=shutil.ignore_patterns("node_modules"))
    (project / "modules").symlink_to(REPO / "modules")
    return project
