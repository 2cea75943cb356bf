"""The test harness itself (tests/conftest.py) under pytest-xdist: each module stays on one
worker, and the `deploy` modules are handed out first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

INNER = '''
import pytest

{mark}


def test_one():
    pass


def test_two():
    pass
'''


def inner_pytest(tmp_path: Path, *args: str, modules: dict[str, str]) -> subprocess.CompletedProcess:
    """pytest with this repo's conftest on `modules` (name -> the module's pytestmark line)."""
    for name, mark in modules.items():
        (tmp_path / f"{name}.py").write_text(INNER.format(mark=mark))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-v",
         f"--basetemp={tmp_path / 'inner-tmp'}", "--rootdir", str(tmp_path), *args,
         *(str(tmp_path / f"{name}.py") for name in modules)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_xdist_modes_that_split_a_module_are_refused(tmp_path: Path) -> None:
    """`pytest -n 2` alone is xdist's `--dist load`, which would spread the deploy module's
    tests (one deployment, in order) over both workers: refused at once, naming the command."""
    result = inner_pytest(tmp_path, "-n", "2", modules={"test_alone": ""})
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert "--dist load would split a module's tests" in result.stderr
    assert "pytest -n 2 --dist loadfile --no-loadscope-reorder" in result.stderr


MODULES = {"test_a_first": "", "test_b_second": "", "test_z_deploy": "pytestmark = pytest.mark.deploy"}
README_DIST = ("--dist", "loadfile", "--no-loadscope-reorder")


def passed(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(worker or "", module file) of each PASSED line, in the order pytest reported them."""
    found = []
    for line in result.stdout.splitlines():
        if " PASSED" in line:
            worker = line.split("]")[0].strip("[") if line.startswith("[gw") else ""
            found.append((worker, line.split("::")[0].split()[-1]))
    return found


def test_the_readme_command_keeps_each_module_on_one_worker(tmp_path: Path) -> None:
    result = inner_pytest(tmp_path, "-n", "2", *README_DIST, modules=MODULES)
    assert result.returncode == 0, result.stdout + result.stderr
    workers: dict[str, set[str]] = {}
    for worker, module in passed(result):
        workers.setdefault(module, set()).add(worker)
    assert sorted(workers) == [f"{name}.py" for name in MODULES], result.stdout
    assert all(len(on) == 1 for on in workers.values()), workers


def test_under_xdist_the_deploy_modules_are_handed_out_first(tmp_path: Path) -> None:
    """One worker runs its modules in the order they are handed out: the deploy module first.
    Without xdist the order stays pytest's own (the deploy module last, by name here)."""
    result = inner_pytest(tmp_path, "-n", "1", *README_DIST, modules=MODULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [module for _, module in passed(result)] == ["test_z_deploy.py"] * 2 + ["test_a_first.py"] * 2 + [
        "test_b_second.py"] * 2, result.stdout
    serial = inner_pytest(tmp_path, modules=MODULES)
    assert serial.returncode == 0, serial.stdout + serial.stderr
    assert [module for _, module in passed(serial)] == [
        "test_a_first.py"] * 2 + ["test_b_second.py"] * 2 + ["test_z_deploy.py"] * 2, serial.stdout
