"""Functional tests of the deploy engine through the real `orch` command that need neither
Terraform nor a running sandbox: refusals, checks and dry runs happen before either."""

from __future__ import annotations

import json
import re
import resource
import time
from pathlib import Path

import pytest

from helpers import Result, assert_clean_failure, cli, orch

ABORTED, CONFIG, NOT_DEPLOYED = 130, 3, 8


def tree(project: Path) -> dict[str, tuple[int, float]]:
    """Every file and folder under .orch/ with its size and mtime."""
    root = project / ".orch"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


def timed_orch(*args: str, cwd: Path) -> tuple[Result, float, float]:
    """`orch(*args)` with the CPU seconds its process used (user + system) and the wall seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = orch(*args, cwd=cwd)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), elapsed


def test_protected_stage_without_a_terminal_is_refused_fast_with_nothing_done(project: Path) -> None:
    result, cpu, elapsed = timed_orch("apply", "prod", "--sandbox", cwd=project)  # stdin is not a terminal here
    assert_clean_failure(result, ABORTED, "protected stage 'prod'", "--yes")
    # Fast means little work (CPU time); wall time also counts other processes' turns.
    assert cpu < 3, f"the refusal used {cpu:.1f} s of CPU"
    assert elapsed < 30, f"refusal took {elapsed:.1f} s"
    assert not (project / ".orch").exists()  # nothing packaged, rendered, planned or started


def test_a_missing_handler_function_is_a_config_error_before_terraform(project: Path) -> None:
    (project / "functions" / "loopback" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (project / "stages" / "dev.yaml").write_text("function: {handler: app.handlr}\n")
    result, cpu, elapsed = timed_orch("apply", "dev", "--sandbox", cwd=project)
    assert_clean_failure(result, CONFIG, "app.py", "'handlr'", "Did you mean 'handler'?")
    # The process's own CPU time is what it costs (about 1 s); wall time on a shared machine
    # also counts the other processes' turns, so it only guards against a hang here.
    assert cpu < 3, f"the handler check used {cpu:.1f} s of CPU"
    assert elapsed < 30, f"the handler check took {elapsed:.1f} s"
    assert not (project / ".orch").exists()  # no sandbox started, nothing written


def test_dry_run_prints_the_steps_and_writes_nothing(project: Path) -> None:
    result = orch("apply", "dev", "--sandbox", "--dry-run", cwd=project)
    assert result.code == 0, result.output
    assert "start the sandbox" in result.stdout and "terraform apply (plan and apply in one run)" in result.stdout
    assert "only if ${apply} removes a route" in result.stdout
    assert "nothing was changed (--dry-run)" in result.stdout
    assert not (project / ".orch").exists()  # not even a folder or terraformrc
    destroy = orch("destroy", "dev", "--sandbox", "--dry-run", "--yes", cwd=project)
    assert destroy.code == 0 and "nothing to destroy" in destroy.stdout
    assert not (project / ".orch").exists()


@pytest.mark.parametrize("args", [["apply", "dev", "--sandbox"], ["apply", "prod", "--yes"], ["sync", "dev"],
                                  ["unlock", "dev", "abc", "--yes"]])
def test_a_dry_run_is_one_plain_line_per_step(project: Path, args: list[str]) -> None:
    """--dry-run is for people: each step on one numbered line, in words, with no unset or empty
    inputs and no dataclass fields (`name: value` lines), paths relative to the project."""
    result = cli(*args, "--dry-run", cwd=project)
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    count = int(re.search(r"would run (\d+) steps:", lines[0]).group(1))
    numbered = [line for line in lines if re.match(r"^ *\d+\. ", line)]
    assert [int(line.split(".")[0]) for line in numbered] == list(range(1, count + 1))
    assert count > 0 and len(lines) == 1 + count + sum(line.startswith("  and always: ") for line in lines) + 1
    assert lines[-1] == "nothing was changed (--dry-run)"
    assert not re.search(r"\bNone\b|\bFalse\b|\(none\)|\w: *$|\w: ,", result.stdout), result.stdout
    assert not any(re.match(r"^ {4,}\w+: ", line) for line in lines), result.stdout  # no field-per-line dump
    assert str(project) not in result.stdout  # relative paths: `in .orch/work/...`
    assert not (project / ".orch").exists()


def test_render_writes_nothing_not_even_the_package(project: Path) -> None:
    result = orch("render", "dev", "--sandbox", cwd=project)
    assert result.code == 0, result.output
    assert "# ----- terraform.tfvars.json" in result.stdout and "endpoints" in result.stdout
    assert not (project / ".orch").exists()
    # ... and it names the same package `orch package` then builds
    values = json.loads(orch("render", "dev", "--file", "terraform.tfvars.json", cwd=project).stdout)
    built = orch("package", "dev", cwd=project).stdout.split()
    assert values["function"]["package"]["filename"] == built[0]
    assert f"sha256:{Path(built[0]).stem}" == built[1]


def test_render_checks_file_before_any_work(project: Path) -> None:
    (project / "stages" / "dev.yaml").write_text("function: {memory_size: lots}\n")  # would fail if loaded
    result = orch("render", "dev", "--file", "x.tf", cwd=project)
    assert_clean_failure(result, CONFIG, "--file x.tf", "terraform.tfvars.json")
    assert "memory_size" not in result.output


def test_output_after_the_sandbox_stopped_says_to_apply_again(project: Path) -> None:
    workdir = project / ".orch" / "work" / "sandbox" / "dev"
    workdir.mkdir(parents=True)
    (workdir / "terraform.tfstate").write_text("{}")
    (workdir / ".sandbox-epoch").write_text("a-run-that-is-gone\n")
    before = tree(project)
    result = orch("output", "dev", "--sandbox", cwd=project)
    assert_clean_failure(result, NOT_DEPLOYED, "stage 'dev' is not deployed in the sandbox: the sandbox is not running",
                         "Apply it first: `orch apply dev --sandbox`")
    assert result.stdout == "" and tree(project) == before
