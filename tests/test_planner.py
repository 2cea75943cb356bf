"""The deploy engine with fake Terraform, AWS and sandbox collaborators: the steps the pure
planner chooses, and what the executor then runs, in the six situations that matter
(first deploy, no-op, a removed route, a protected stage, a saved plan, a restarted
sandbox). Terraform's answers are JSON saved from the real binary (tests/data/)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orch.config import load_stage
from orch.deploy import Deployer
from orch.errors import Aborted, PackageError
from orch.executor import Collaborators, DisplayExecutor, Executor
from orch.facts import EPOCH_FILE, Facts, workdir_of
from orch.planner import DEPLOYMENT_ADDRESS, plan_apply, plan_destroy, plan_plan
from orch.reporter import RecordingReporter
from orch.sandbox import SandboxInfo
from orch.smoke import CheckResult, SmokeReport
from orch.terraform import PlanFile, RunResult, _apply_result
from orch.tfplan import JsonStream, PlanView

DATA = Path(__file__).resolve().parent / "data"
RUN = RunResult(("terraform",), 0, "", "", 0.1)
SANDBOX = SandboxInfo(pid=1, endpoint="http://127.0.0.1:1", gateway_endpoint="http://127.0.0.1:2", epoch="e-now",
                      started_at=0.0, project_dir="/x")


def applied(name: str):
    return _apply_result(RUN, JsonStream.from_lines((DATA / name).read_text().splitlines()), "apply")


def saved_plan(name: str) -> PlanView:
    return PlanView.from_show_json(json.loads((DATA / name).read_text()))


class FakeTerraform:
    """Terraform's verbs, answering with saved JSON; every call is recorded."""

    def __init__(self, apply: str = "apply-first-deploy.jsonl", plan: str = "plan-first-deploy.json",
                 redeploy: str = "apply-no-op.jsonl") -> None:
        self.calls: list[tuple[str, Any]] = []
        self.apply_file, self.plan_file, self.redeploy_file = apply, plan, redeploy

    def init(self, fingerprint: str) -> RunResult:
        self.calls.append(("init", None))
        return RUN

    def plan(self, out: Path) -> PlanFile:
        self.calls.append(("plan", out.name))
        out.write_text("saved plan")
        return PlanFile(out, True, RUN)

    def show_plan(self, plan_file: Path) -> PlanView:
        self.calls.append(("show", plan_file.name))
        return saved_plan(self.plan_file)

    def apply(self, *, replace: Any = (), var_file: Any = None) -> Any:
        self.calls.append(("apply", tuple(replace)) if var_file is None else ("apply", tuple(replace), var_file.name))
        return applied(self.redeploy_file if replace else self.apply_file)

    def apply_saved(self, plan_file: Path) -> Any:
        self.calls.append(("apply_saved", plan_file.name))
        return applied(self.apply_file)

    def destroy(self) -> Any:
        self.calls.append(("destroy", None))
        return applied(self.apply_file)

    def output(self) -> dict:
        self.calls.append(("output", None))
        return {"rest_api_id": "abc", "stage_name": "dev"}


class FakeSandbox:
    def __init__(self) -> None:
        self.started = 0
        self.marked = 0

    def start(self, project_dir: Path, region: str) -> SandboxInfo:
        self.started += 1
        return SANDBOX

    def current(self, project_dir: Path) -> SandboxInfo:
        return SANDBOX

    def mark_changed(self, project_dir: Path) -> str:
        self.marked += 1
        return "token"


class FakeAws:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def check_credentials(self) -> None:
        self.calls.append("credentials")

    def ensure_bucket(self, bucket: str, region: str | None = None) -> bool:
        self.calls.append(f"bucket {bucket}")
        return True

    def ensure_hosted_zone(self, zone: str) -> bool:
        self.calls.append(f"zone {zone}")
        return True

    def upload_package(self, package: Any, bucket: Any, *, key_prefix: str) -> tuple[str, str]:
        self.calls.append(f"upload {bucket}")
        return bucket, key_prefix + package.sha256_hex + ".zip"


class FakeVerify:
    """orch.smoke.verify: answers with a passing report, or the failing ones queued in `fail`."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.fail: list[bool] = []

    def __call__(self, stage: Any, deployed: Any, *, aws: Any, settings: Any = None, purpose: str = "release",
                 **_: Any) -> SmokeReport:
        self.calls.append((deployed, purpose))
        failed = self.fail.pop(0) if self.fail else False
        check = CheckResult("prototype request comes back", "http", not failed,
                            "status 502, expected 200" if failed else "200 in 3 ms", 1, 0.01)
        return SmokeReport(deployed.stage, deployed.target, deployed.invoke_url, (check,), 0.01, 10.0, "t", purpose)


class World:
    """A project, its fakes, and a Deployer wired to them with the facts a test chooses."""

    def __init__(self, project: Path, stage: str = "dev", **facts: Any) -> None:
        self.stage = load_stage(project, stage)
        self.terraform = FakeTerraform()
        self.sandbox = FakeSandbox()
        self.aws = FakeAws()
        self.verify = FakeVerify()
        self.answers: list[bool] = []
        self.questions: list[str] = []
        self.reporter = RecordingReporter()
        self.facts = Facts(target="sandbox", workdir=workdir_of(self.stage, "sandbox"), **facts)

    def ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answers.pop(0)

    def collaborators(self) -> Collaborators:
        return Collaborators(lambda workdir: self.terraform, lambda endpoint, region: self.aws, self.sandbox,
                             self.ask, None, verify=self.verify)

    def deployer(self) -> Deployer:
        return Deployer(self.stage, "sandbox", self.collaborators(), self.reporter,
                        facts=lambda stage, target, **kw: replace(self.facts, **{
                            k: v for k, v in kw.items() if k in ("saved_plan", "plan_out")}),
                        interactive=self.facts.interactive, yes=self.facts.yes)

    def run_apply(self, **kw: Any) -> tuple[Any, Executor]:
        plan = plan_apply(self.stage, replace(self.facts, **kw))
        executor = Executor(self.stage, self.collaborators(), self.reporter)
        executor.execute(plan)
        return plan, executor


def names(steps) -> list[str]:
    return [type(step).__name__ for step in steps]


# After every apply: tell the gateway, check, record; when the checks fail, roll back and check again.
ROLLBACK = ["FindRollbackTarget", "WriteRollbackVars", "TerraformApply", "TerraformApply", "MarkSandboxChanged",
            "RunSmokeChecks", "RecordRelease"]
VERIFY = ["MarkSandboxChanged", "RunSmokeChecks", "RecordRelease", *ROLLBACK, "ConcludeRelease"]
VERIFIED = ["MarkSandboxChanged", "RunSmokeChecks", "RecordRelease", "ConcludeRelease"]  # what runs when they pass


def deployed(world: World, epoch: str = SANDBOX.epoch) -> None:
    """The working folder of a stage already deployed into the sandbox run `epoch`."""
    workdir = world.facts.workdir
    workdir.mkdir(parents=True)
    (workdir / "terraform.tfstate").write_text("{}")
    (workdir / "main.tf").write_text("# rendered\n")
    (workdir / EPOCH_FILE).write_text(epoch + "\n")
    world.facts = replace(world.facts, sandbox=SANDBOX, recorded_epoch=epoch, state_present=True, init_reason=None)


# ---------------------------------------------------------------------------- the six situations


def test_first_deploy(project: Path) -> None:
    world = World(project)
    plan, executor = world.run_apply()
    assert names(plan.steps) == [
        "CheckHandler", "StartSandbox", "RecordSandboxEpoch", "BuildPackage", "UploadPackage", "RenderFiles",
        "Init", "TerraformApply", "TerraformApply", *VERIFY,
    ]
    assert names(plan.cleanup) == ["RemoveFile", "MarkSandboxChanged"]
    assert names(executor.ran) == [
        "CheckHandler", "StartSandbox", "RecordSandboxEpoch", "BuildPackage", "RenderFiles", "Init",
        "TerraformApply", *VERIFIED,
    ]
    assert world.terraform.calls == [("init", None), ("apply", ())]  # ONE run plans and applies
    assert world.sandbox.started == 1 and world.sandbox.marked == 1
    tfvars = json.loads((world.facts.workdir / "terraform.tfvars.json").read_text())
    assert tfvars["function"]["package"]["source_code_hash"] == executor.values["package"].sha256_b64
    assert (world.facts.workdir / EPOCH_FILE).read_text().strip() == SANDBOX.epoch
    assert 'endpoint' not in tfvars and SANDBOX.endpoint in (world.facts.workdir / "main.tf").read_text()


def test_no_op(project: Path) -> None:
    world = World(project)
    deployed(world)
    world.terraform.apply_file = "apply-no-op.jsonl"
    outcome = world.deployer().apply()
    plan = plan_apply(world.stage, world.facts)
    assert names(plan.steps) == [
        "CheckHandler", "UseSandbox", "BuildPackage", "UploadPackage", "RenderFiles",
        "TerraformApply", "TerraformApply", *VERIFY,
    ]
    assert world.terraform.calls == [("apply", ())]  # no init, no second run
    assert world.sandbox.started == 0 and world.sandbox.marked == 0  # nothing changed: the gateway is not told
    assert not outcome.applied and not outcome.plan.has_changes
    assert outcome.outputs["invoke_url"].startswith(SANDBOX.gateway_endpoint + "/restapis/")
    skipped = [event[1] for event in world.reporter.events if event[0] == "skip"]
    # the upload, the redeploy, the mark; the rollback; the cleanup's mark (cleanup steps are numbered too)
    assert len(skipped) == 3 + len(ROLLBACK) + 1
    reasons = [event[2] for event in world.reporter.events if event[0] == "skip"]
    assert "the package is under 50 MB" in reasons and "no route was removed" in reasons
    assert not [why for why in reasons if "${" in why]  # a person's words, not the data-flow names
    assert outcome.verdict.status == "passed"  # the checks ran on the unchanged stage all the same


def test_removed_route_redeploys(project: Path) -> None:
    world = World(project)
    deployed(world)
    world.terraform.apply_file = "apply-remove-route.jsonl"
    plan, executor = world.run_apply()
    assert world.terraform.calls == [("apply", ()), ("apply", (DEPLOYMENT_ADDRESS,))]
    assert "redeploy" in executor.values and world.sandbox.marked == 1
    assert names(executor.ran)[-6:] == ["TerraformApply", "TerraformApply", *VERIFIED]


def test_protected_stage_plans_asks_with_terraforms_counts_and_applies_that_plan(project: Path) -> None:
    world = World(project, "prod", interactive=True)
    world.answers = [True]
    plan, executor = world.run_apply()
    assert names(plan.steps) == [
        "CheckHandler", "StartSandbox", "RecordSandboxEpoch", "EnsureHostedZone", "BuildPackage", "UploadPackage",
        "RenderFiles", "Init", "TerraformPlan", "ReadPlan", "RefuseDestroying", "Confirm", "ApplySavedPlan",
        "TerraformApply", *VERIFY,
    ]
    assert "zone orch.example.com" in world.aws.calls  # prod's custom domain: its zone exists in the sandbox
    counts = saved_plan("plan-first-deploy.json").counts.text()
    assert world.questions == [f"Apply {counts} to protected stage 'prod'?"]
    assert [c[0] for c in world.terraform.calls] == ["init", "plan", "show", "apply_saved"]
    assert names(plan.cleanup) == ["RemoveFile", "RemoveFile", "MarkSandboxChanged"]
    assert not plan.cleanup[0].path.exists()


def test_protected_stage_declined_applies_nothing(project: Path) -> None:
    world = World(project, "prod", interactive=True)
    world.answers = [False]
    with pytest.raises(Aborted, match="nothing applied to stage 'prod'"):
        world.run_apply()
    assert [c[0] for c in world.terraform.calls] == ["init", "plan", "show"]
    assert not list(world.facts.workdir.glob("*.tfplan"))  # the temporary plan is removed anyway


def test_protected_stage_without_a_terminal_is_refused_before_any_work(project: Path) -> None:
    world = World(project, "prod", interactive=False)
    with pytest.raises(Aborted, match="--yes"):
        world.deployer().apply()
    assert world.terraform.calls == [] and world.sandbox.started == 0
    assert not (project / ".orch").exists()  # nothing packaged, rendered or started
    yes = World(project, "prod", interactive=False, yes=True)
    steps = names(plan_apply(yes.stage, yes.facts).steps)
    assert "Confirm" not in steps  # --yes: no question, but the plan is still read before it is applied
    applied = steps[:steps.index("TerraformApply") + 1]
    assert applied[-4:] == ["ReadPlan", "RefuseDestroying", "ApplySavedPlan", "TerraformApply"]
    allowed = replace(yes.facts, allow_destroy=True)  # --yes --allow-destroy: one run plans and applies
    assert "TerraformPlan" not in names(plan_apply(yes.stage, allowed).steps)


def test_saved_plan_applies_exactly_that_file(project: Path, tmp_path: Path) -> None:
    world = World(project)
    deployed(world)
    saved = tmp_path / "reviewed.tfplan"
    saved.write_text("plan")
    world.terraform.plan_file = "plan-remove-route.json"
    plan, executor = world.run_apply(saved_plan=saved)
    assert names(plan.steps) == ["UseSandbox", "ReadPlan", "ApplySavedPlan", "TerraformApply", *VERIFY]
    assert world.terraform.calls == [("show", "reviewed.tfplan"), ("apply_saved", "reviewed.tfplan"),
                                     ("apply", (DEPLOYMENT_ADDRESS,))]  # the plan removed a route
    assert "package" not in executor.values  # the saved plan is applied as it is
    # the release record holds the values the saved plan applied, read from the plan itself
    assert executor.values["release"].tfvars == dict(saved_plan("plan-remove-route.json").variables)


def test_saved_plan_needs_a_working_folder(project: Path, tmp_path: Path) -> None:
    world = World(project)
    with pytest.raises(Exception, match="has no working folder yet"):
        plan_apply(world.stage, replace(world.facts, saved_plan=tmp_path / "x.tfplan"))


def test_restarted_sandbox_starts_the_stage_clean(project: Path) -> None:
    world = World(project)
    deployed(world, epoch="e-before")
    plan, executor = world.run_apply()
    assert names(plan.steps)[:4] == ["CheckHandler", "UseSandbox", "ForgetLostState", "RecordSandboxEpoch"]
    workdir = world.facts.workdir
    assert not (workdir / "terraform.tfstate").exists() and (workdir / "terraform.tfstate.lost").exists()
    assert (workdir / EPOCH_FILE).read_text().strip() == SANDBOX.epoch
    stopped = replace(world.facts, sandbox=None)
    assert names(plan_apply(world.stage, stopped).steps)[1:3] == ["StartSandbox", "ForgetLostState"]


# ---------------------------------------------------------------------------- more of the same engine


def test_handler_error_stops_before_the_sandbox_starts(project: Path) -> None:
    (project / "stages" / "dev.yaml").write_text("function: {handler: handler.handlr}\n")
    world = World(project)
    with pytest.raises(PackageError, match="handlr"):
        world.run_apply()
    assert world.sandbox.started == 0 and world.terraform.calls == [] and world.sandbox.marked == 0


def test_an_apply_that_fails_half_way_still_tells_the_gateway(project: Path) -> None:
    from orch.errors import TerraformError

    world = World(project)
    deployed(world)

    def failing_apply(*, replace=()):
        world.terraform.calls.append(("apply", tuple(replace)))
        raise TerraformError("terraform apply failed (exit 1)")

    world.terraform.apply = failing_apply  # type: ignore[method-assign]
    with pytest.raises(TerraformError):
        world.run_apply()
    assert world.sandbox.marked == 1  # some resources may have changed before it failed


def test_real_aws_checks_credentials_instead_of_a_sandbox(project: Path) -> None:
    world = World(project)
    facts = replace(world.facts, target="aws", workdir=workdir_of(world.stage, "aws"))
    steps = names(plan_apply(world.stage, facts).steps)
    assert steps[:2] == ["CheckHandler", "CheckCredentials"] and "MarkSandboxChanged" not in steps


def test_plan_saves_to_a_temporary_file_and_reads_it_back(project: Path) -> None:
    world = World(project)
    deployed(world)
    outcome = world.deployer().plan()
    assert [c[0] for c in world.terraform.calls] == ["plan", "show"]
    assert outcome.plan.counts == saved_plan("plan-first-deploy.json").counts and outcome.saved_to is None
    assert not list(world.facts.workdir.glob("*.tfplan"))
    assert names(plan_plan(world.stage, world.facts).cleanup) == ["RemoveFile"]


def test_destroy_asks_first_and_a_gone_sandbox_destroys_nothing(project: Path) -> None:
    world = World(project, interactive=True)
    deployed(world)
    assert names(plan_destroy(world.stage, world.facts).steps)[:2] == ["Confirm", "UseSandbox"]
    world.answers = [False]
    with pytest.raises(Aborted):
        world.deployer().destroy()
    assert world.terraform.calls == []
    gone = replace(world.facts, sandbox=None)
    plan = plan_destroy(world.stage, gone)
    assert names(plan.steps) == ["Confirm", "ForgetLostState"] and "nothing to destroy" in plan.notes[0]
    with pytest.raises(Aborted, match="--yes"):
        plan_destroy(world.stage, replace(world.facts, interactive=False))


def test_the_display_executor_prints_every_step_and_runs_nothing(project: Path) -> None:
    world = World(project)
    lines = DisplayExecutor(world.reporter).execute(plan_apply(world.stage, world.facts))
    text = "\n".join(lines)
    assert "1. check the handler handler.handler" in text and "only if ${apply} removes a route" in text
    assert text.endswith("nothing was changed (--dry-run)")
    assert world.terraform.calls == [] and world.sandbox.started == 0 and not (project / ".orch").exists()


def test_a_failing_step_runs_its_recovery_steps_then_fails(project: Path) -> None:
    """The hook rollback will use: a step's on_failure steps run before its error propagates."""
    from dataclasses import dataclass

    from orch.steps import RemoveFile, Step

    marker = project / "rolled-back"
    marker.write_text("x")

    @dataclass(frozen=True)
    class Boom(Step):
        on_failure: tuple = (RemoveFile(marker),)

        def title(self) -> str:
            return "boom"

    world = World(project)
    executor = Executor(world.stage, world.collaborators(), world.reporter)
    executor._do_Boom = lambda step: 1 / 0  # type: ignore[attr-defined]
    from orch.steps import DeployPlan

    with pytest.raises(ZeroDivisionError):
        executor.execute(DeployPlan("x", "dev", "sandbox", (Boom(),)))
    assert not marker.exists()


# ---------------------------------------------------------------------------- destroying a protected stage


def destroying(tmp_path: Path, *addresses: str) -> str:
    """plan-remove-route.json (saved from Terraform) with these resources' actions turned into a
    replace: a plan that would destroy them; returns the new file's name under DATA's sibling."""
    data = json.loads((DATA / "plan-remove-route.json").read_text())
    for item in data["resource_changes"]:
        if item["address"] in addresses:
            item["change"]["actions"] = ["delete", "create"]
    path = tmp_path / "destroying.json"
    path.write_text(json.dumps(data))
    return str(path)


FUNCTION = "module.stack.module.lambda.aws_lambda_function.this"
API = "module.stack.module.rest_api.aws_api_gateway_rest_api.this"


def test_a_plan_replacing_a_protected_stages_function_is_refused_before_apply(project: Path, tmp_path: Path) -> None:
    from orch.errors import Refused

    world = World(project, "prod", interactive=False, yes=True)
    world.terraform.plan_file = destroying(tmp_path, FUNCTION, API)
    with pytest.raises(Refused, match="--allow-destroy") as caught:
        world.run_apply()
    assert FUNCTION in caught.value.message and API in caught.value.message
    assert [c[0] for c in world.terraform.calls] == ["init", "plan", "show"]  # never applied
    assert not list(world.facts.workdir.glob("*.tfplan"))
    assert world.sandbox.marked == 0  # nothing changed, so the gateway is not told


def test_allow_destroy_applies_it_and_other_replacements_are_not_guarded(project: Path, tmp_path: Path) -> None:
    world = World(project, "prod", interactive=False, yes=True, allow_destroy=True)
    world.terraform.plan_file = destroying(tmp_path, FUNCTION)
    world.run_apply()
    assert [c[0] for c in world.terraform.calls] == ["init", "apply"]
    # the API deployment is replaced on every API change: that is not "destroying the API"
    other = World(project, "prod", interactive=False, yes=True)
    other.terraform.plan_file = str(DATA / "plan-remove-route.json")
    other.run_apply()
    assert [c[0] for c in other.terraform.calls] == ["init", "plan", "show", "apply_saved", "apply"]


def test_unprotected_stages_are_not_guarded(project: Path) -> None:
    world = World(project, "dev")
    assert "RefuseDestroying" not in names(plan_apply(world.stage, world.facts).steps)
