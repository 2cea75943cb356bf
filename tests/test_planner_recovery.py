"""The deploy engine after an interrupted run (issue 12, kind 1): which steps the planner adds
when an earlier orch left a Terraform run unfinished, still running, or its providers
behind, and what the executor does with them. Fakes as in test_planner; the real thing
(kills of real applies) is in bench/faults.py and tests/integration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orch import adopt, tfruns
from orch.executor import DisplayExecutor
from orch.planner import plan_apply, plan_destroy, plan_plan
from test_adopt import FakeAws as FakeLookup
from test_planner import FakeAws, World, deployed, names

DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: never a live process


class AwsWithLookups(FakeLookup, FakeAws):
    def __init__(self) -> None:
        FakeLookup.__init__(self)
        FakeAws.__init__(self)


def record(workdir: Path, verb: str = "apply", pid: int = DEAD_PID, exit_code: int | None = None) -> tfruns.RunRecord:
    found = tfruns.RunRecord(f"20260101T000000-1-1-{verb}", verb, pid, 0.0, 0.0, 1, exit_code)
    found.write(workdir)
    return found


def interrupted(world: World) -> tfruns.RunRecord:
    """The stage was deployed, then an apply was killed: its record is left behind."""
    deployed(world)
    run = record(world.facts.workdir)
    world.facts = replace(world.facts, runs=tfruns.Leftovers(unfinished=(run,)))
    world.aws = AwsWithLookups()
    world.terraform.show_state = lambda: world.terraform.calls.append(("show_state", None)) or {}  # type: ignore
    return run


def test_after_an_interrupted_apply_orch_adopts_before_it_applies(project: Path) -> None:
    world = World(project)
    interrupted(world)
    plan, executor = world.run_apply()
    steps = names(plan.steps)
    # adopt first (a targeted apply of the imports), then the stage's own apply; then the
    # release steps of orch.planner._verify_release, which this test leaves to test_planner
    assert steps[steps.index("RenderFiles"):steps.index("TerraformApply") + 2] == [
        "RenderFiles", "FindOrphans", "WriteImports", "TerraformApply", "TerraformApply"]
    assert names(plan.cleanup)[-1] == "SettleRuns"
    assert world.terraform.calls[:2] == [("show_state", None), ("apply", ())]
    adoption = executor.values["adoption"]
    assert adoption.imports and any("adopting 16 resource(s)" in n for n in world.reporter.of("note"))
    # the apply succeeded: what was adopted is in the state, so the import blocks and the record go
    assert not (world.facts.workdir / adopt.ADOPT_FILE).exists()
    assert tfruns.records(world.facts.workdir) == []


def test_a_creation_the_interruption_cut_short_is_untainted_not_replaced(project: Path) -> None:
    """SIGTERM during the function's creation leaves it tainted in the state (seen in
    bench/faults.py: replacing it waited for minutes on a second function of the same name)."""
    world = World(project)
    interrupted(world)
    function = "module.stack.module.lambda.aws_lambda_function.this"
    state = {"values": {"root_module": {"child_modules": [{"resources": [
        {"address": function, "mode": "managed", "values": {"id": "orch-loopback-dev"}, "tainted": True},
        {"address": "module.stack.module.lambda.aws_iam_role.this", "mode": "managed", "values": {"id": "r"}},
    ]}]}}}
    world.terraform.show_state = lambda: state  # type: ignore[method-assign]
    untainted: list[str] = []
    world.terraform.untaint = untainted.append  # type: ignore[attr-defined]
    world.run_apply()
    assert untainted == [function]
    assert any("creation was interrupted" in n for n in world.reporter.of("note"))


def test_a_failed_apply_keeps_the_import_blocks_and_the_record(project: Path) -> None:
    from orch.errors import TerraformError

    world = World(project)
    interrupted(world)

    def failing(*, replace: Any = ()) -> Any:
        raise TerraformError("terraform apply failed (exit 1)")

    world.terraform.apply = failing  # type: ignore[method-assign]
    with pytest.raises(TerraformError):
        world.run_apply()
    assert (world.facts.workdir / adopt.ADOPT_FILE).is_file()
    assert len(tfruns.records(world.facts.workdir)) == 1  # the next run looks again


def test_plan_says_what_it_will_adopt_before_it_happens(project: Path) -> None:
    world = World(project)
    interrupted(world)
    plan = plan_plan(world.stage, world.facts)
    steps = names(plan.steps)
    assert steps.index("WriteImports") < steps.index("TerraformPlan")
    assert "SettleRuns" not in names(plan.cleanup)  # a plan changes nothing: the record stays
    lines = "\n".join(DisplayExecutor(world.reporter).execute(plan))
    assert "look for resources an interrupted run left in AWS outside Terraform's state" in lines


def test_a_terraform_still_running_is_waited_for_first(project: Path) -> None:
    world = World(project)
    deployed(world)
    running = replace(record(world.facts.workdir), pid=1)
    world.facts = replace(world.facts, runs=tfruns.Leftovers(running=(running,)))
    steps = names(plan_apply(world.stage, world.facts).steps)
    assert steps[:3] == ["CheckHandler", "UseSandbox", "WaitForRun"]
    assert "FindOrphans" in steps  # what it leaves is looked at once it ends


def test_providers_a_killed_terraform_left_are_ended(project: Path) -> None:
    world = World(project)
    deployed(world)
    stray = record(world.facts.workdir, verb="plan")
    world.facts = replace(world.facts, runs=tfruns.Leftovers(stray=(stray,)))
    steps = names(plan_apply(world.stage, world.facts).steps)
    assert steps[2] == "EndLeftovers" and "FindOrphans" not in steps  # a plan changes nothing in AWS


def test_a_restarted_sandbox_has_nothing_to_adopt(project: Path) -> None:
    world = World(project)
    interrupted(world)
    world.facts = replace(world.facts, recorded_epoch="e-before")
    assert "FindOrphans" not in names(plan_apply(world.stage, world.facts).steps)


def test_destroy_adopts_with_a_targeted_apply_first(project: Path) -> None:
    world = World(project, yes=True)
    interrupted(world)
    targets: list[list[str]] = []

    def apply(*, replace: Any = (), target: Any = ()) -> Any:
        targets.append(list(target))
        return world.terraform.destroy()

    world.terraform.apply = apply  # type: ignore[method-assign]
    plan = plan_destroy(world.stage, world.facts)
    assert names(plan.steps)[-4:] == ["FindOrphans", "WriteImports", "TerraformApply", "TerraformDestroy"]
    world.deployer().destroy()
    assert len(targets) == 1 and adopt.FUNCTION in targets[0] and len(targets[0]) == 16
    assert tfruns.records(world.facts.workdir) == [] and world.sandbox.marked == 1


def test_nothing_changes_for_a_stage_without_leftovers(project: Path) -> None:
    world = World(project)
    deployed(world)
    plan = plan_apply(world.stage, world.facts)
    assert not {"FindOrphans", "WriteImports", "WaitForRun", "EndLeftovers"} & set(names(plan.steps))
    assert "SettleRuns" not in names(plan.cleanup)
