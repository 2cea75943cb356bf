"""A throwaway copy of this project for the benchmarks: its stages/ and functions/, its
modules/ linked, in a fresh temporary folder the caller removes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def throwaway_project() -> tuple[Path, Path]:
    """(the temporary folder to remove afterwards, the project inside it)."""
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    project = tmp / "proj"
    project.mkdir()
    shutil.copytree(REPO / "stages", project / "stages")
    shutil.copytree(REPO / "functions", project / "functions", ignore=shutil.ignore_patterns("node_modules"))
    (project / "modules").symlink_to(REPO / "modules")
    return tmp, project
