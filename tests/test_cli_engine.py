"""Functional tests of the deploy engine through the real `orch` command that need neither
Terraform nor a running sandbox: refusals, checks and dry runs happen before either."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from helpers import assert_clean_failure, orch

ABORTED, CONFIG, NOT_DEPLOYED = 130, 3, 8


def tree(project: Path) -> dict[str, tuple[int, float]]:
    """Every file and folder under .orch/ with its size and mtime."""
    root = project / ".orch"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")}


def test_protected_stage_without_a_terminal_is_refused_fast_with_nothing_done(project: Path) -> None:
    started = time.monotonic()
    result = orch("apply", "prod", "--sandbox", cwd=project)  # stdin is not a terminal here
    elapsed = time.monotonic() - started
    assert_clean_failure(result, ABORTED, "protected stage 'prod'", "--yes")
    assert elapsed < 5, f"refusal took {elapsed:.1f} s"
    assert not (project / ".orch").exists()  # nothing packaged, rendered, planned or started


def test_a_missing_handler_function_is_a_config_error_before_terraform(project: Path) -> None:
    (project / "functions" / "loopback" / "app.py").write_text("def handler(event, context):\n    return event\n")
    (project / "stages" / "dev.yaml").write_text("function: {handler: app.handlr}\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = orch("apply", "dev", "--sandbox", cwd=project)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert_clean_failure(result, CONFIG, "app.py", "'handlr'", "Did you mean 'handler'?")
    # The process's own CPU time is what it costs (about 1 s); wall time on a shared machine
    # also counts the other processes' turns, so it only guards against a hang here.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
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
