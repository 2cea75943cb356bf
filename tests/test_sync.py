"""`orch sync` (issue 11): a code-only release without Terraform, as steps from the planner.

The planner's choices with fakes; the release itself through the real orch.aws facade
against an in-process moto server (Lambda's UpdateFunctionCode, PublishVersion and
UpdateAlias there), with a Terraform that fails the test if anything calls it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from helpers import cli
from orch import releases
from orch.aws import Aws
from orch.config import load_stage
from orch.deploy import Deployer
from orch.errors import ConfigError, NotDeployedError
from orch.executor import Collaborators, DisplayExecutor
from orch.facts import Facts, workdir_of
from orch.package import build_package
from orch.planner import plan_sync
from orch.reporter import RecordingReporter
from orch.steps import Ref
from test_planner import SANDBOX, FakeSandbox, World, deployed, names

REGION = "ap-northeast-2"


# ---------------------------------------------------------------------------- the plan


def test_sync_plans_a_release_guarded_by_a_code_change_and_tells_the_gateway(project: Path) -> None:
    world = World(project)
    deployed(world)
    plan = plan_sync(world.stage, world.facts)
    release_steps = ["CheckHandler", "UseSandbox", "BuildPackage", "ReadLiveCode", "UploadPackage",
                     "UpdateFunctionCode", "PublishVersion", "UpdateAlias"]
    checks = ["MarkSandboxChanged", "RunSyncChecks", "RevertAlias", "MarkSandboxChanged"]
    assert names(plan.steps) == release_steps + checks + ["RecordSync"]
    assert names(plan.cleanup) == ["MarkSandboxChanged"]
    release = plan.steps[len(release_steps) - 1]
    assert (release.function_name, release.alias) == ("orch-loopback-dev", "dev")
    assert release.when.describe() == "if ${package} is not the code ${live} serves"
    assert plan.steps[-3].when.describe() == "if the smoke checks ${smoke} failed"
    record = plan.steps[-1]  # recorded after the checks (and the revert), where apply's records go
    assert record.location == releases.location_of(world.stage, "sandbox") and record.smoke == Ref("smoke")
    assert record.when.describe() == "if ${release} was found"
    text = "\n".join(DisplayExecutor(world.reporter).execute(plan))  # --dry-run
    assert "orch sync dev (sandbox) would run 13 steps" in text and "Terraform" not in text.split("would run")[1]
    assert "run the smoke checks" in text and "move alias 'dev' back to the version it served before" in text
    assert "record the release" in text
    # --no-smoke, or a stage that turns its checks off: the release and its (unchecked) record
    unchecked = plan_sync(world.stage, world.facts, smoke=False)
    assert names(unchecked.steps) == [*release_steps, "RecordSync"] and unchecked.steps[-1].smoke is None
    off = replace(world.stage, config=world.stage.config.model_copy(
        update={"smoke": world.stage.config.smoke.model_copy(update={"enabled": False})}))
    assert names(plan_sync(off, world.facts).steps) == [*release_steps, "RecordSync"]


def test_sync_on_real_aws_checks_credentials_and_leaves_the_sandbox_alone(project: Path) -> None:
    stage = load_stage(project, "dev")
    plan = plan_sync(stage, Facts(target="aws", workdir=workdir_of(stage, "aws")))
    assert names(plan.steps)[:2] == ["CheckHandler", "CheckCredentials"] and plan.cleanup == ()


def test_sync_refuses_a_protected_stage_before_any_work(project: Path) -> None:
    stage = load_stage(project, "prod")
    with pytest.raises(ConfigError, match="protected") as refused:
        plan_sync(stage, Facts(target="aws", workdir=workdir_of(stage, "aws")))
    assert refused.value.exit_code == 3 and "orch apply prod" in refused.value.hint
    result = cli("sync", "prod", cwd=project)
    assert result.code == 3 and "stage 'prod' is protected" in result.stderr and "Traceback" not in result.output
    assert not (project / ".orch").exists()  # nothing built, nothing started


@pytest.mark.parametrize("situation", ["not running", "never deployed", "restarted"])
def test_sync_needs_the_stage_deployed_in_the_running_sandbox(project: Path, situation: str) -> None:
    world = World(project)
    if situation != "not running":
        deployed(world, epoch="e-old" if situation == "restarted" else SANDBOX.epoch)
    if situation == "never deployed":
        world.facts = replace(world.facts, recorded_epoch=None)
    with pytest.raises(NotDeployedError, match="stage 'dev' is not deployed in the sandbox") as refused:
        plan_sync(world.stage, world.facts)
    assert refused.value.exit_code == 8 and "Apply it first: `orch apply dev --sandbox`" in refused.value.hint
    reason = {"not running": "the sandbox is not running", "never deployed": "it was never applied there",
              "restarted": "the sandbox was restarted since it was applied"}[situation]
    assert reason in refused.value.message


# ---------------------------------------------------------------------------- the release, against moto


class NoTerraform:
    """Fails the test on any Terraform verb but `output` (read only: what the smoke checks
    compare with), which answers as a deployed stage's root outputs."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs

    def output(self) -> dict[str, Any]:
        return dict(self.outputs)

    def __getattr__(self, verb: str) -> Any:
        pytest.fail(f"orch sync ran terraform {verb}")


class Checks:
    """orch.smoke.verify's stand-in: the real alias and function-state checks against moto,
    and one check standing for the HTTP ones, failing while `failing` is set."""

    def __init__(self) -> None:
        self.failing = False
        self.deployed: list[Any] = []

    def __call__(self, stage: Any, deployed: Any, *, aws: Any, purpose: str, **_: Any) -> Any:
        from orch import smoke

        self.deployed.append(deployed)
        real = ("alias points at the released version", "function is Active, last update Successful")
        checks = [check for check in smoke.control_plane_checks(deployed) if check.name in real]
        checks.append(smoke.ControlCheck("prototype request comes back",
                                         lambda _ctx: (not self.failing, "500" if self.failing else "200")))
        return smoke.run_checks(checks, smoke.Context(deployed, aws, None), timeout=2, purpose=purpose,
                                sleep=lambda _s: None)


class Released:
    """The dev stage of `project` deployed to moto as Terraform leaves it: the function with
    its package published as version 1 and alias `dev` on it."""

    def __init__(self, project: Path, endpoint: str, target: str) -> None:
        self.project = project
        self.stage = load_stage(project, "dev")
        self.aws = Aws.for_sandbox(endpoint, REGION)
        self.sandbox = FakeSandbox()
        self.sandbox.info = replace(SANDBOX, endpoint=endpoint)  # type: ignore[attr-defined]
        self.sandbox.current = lambda _project: self.sandbox.info  # type: ignore[method-assign]
        self.reporter = RecordingReporter()
        self.target = target
        lam, iam = self.aws.client("lambda"), self.aws.client("iam")
        name = self.stage.function_name
        try:
            lam.delete_function(FunctionName=name)  # the module's moto server outlives a test
        except lam.exceptions.ResourceNotFoundException:
            pass
        try:
            role = iam.get_role(RoleName="sync-test")["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName="sync-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        package = self.package()
        created = lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
                                      Code={"ZipFile": package.path.read_bytes()}, Publish=True)
        lam.create_alias(FunctionName=name, Name="dev", FunctionVersion=created["Version"])
        self.first = package
        self.checks = Checks()
        workdir = workdir_of(self.stage, target)
        workdir.mkdir(parents=True, exist_ok=True)  # what the last apply left: its tfvars, read by the checks
        (workdir / "terraform.tfvars.json").write_text(json.dumps({"function": {}, "api": {"routes": []}, "stage": {}}))
        self.outputs = {
            "invoke_url": "http://127.0.0.1:9/restapis/x/dev/_user_request_", "rest_api_id": "x", "stage_name": "dev",
            "function_name": name, "alias_name": "dev", "function_version": created["Version"],
            "deployment_id": "d", "execution_arn": "arn:aws:execute-api:ap-northeast-2:123456789012:x",
        }

    def package(self) -> Any:
        fn = self.stage.config.function
        return build_package(self.stage.source_dir, fn.runtime, self.project / ".orch" / "packages",
                             name=self.stage.function_name)

    def deployer(self) -> Deployer:
        facts = Facts(target=self.target, workdir=workdir_of(self.stage, self.target), sandbox=self.sandbox.info,
                      recorded_epoch=SANDBOX.epoch)
        collaborators = Collaborators(lambda _workdir: NoTerraform(self.outputs), lambda _endpoint, _region: self.aws,
                                      self.sandbox, lambda _q: pytest.fail("sync asked a question"), None,
                                      verify=self.checks)
        return Deployer(self.stage, self.target, collaborators, self.reporter, facts=lambda *a, **kw: facts)

    def alias(self) -> tuple[str, str]:
        lam = self.aws.client("lambda")
        version = lam.get_alias(FunctionName=self.stage.function_name, Name="dev")["FunctionVersion"]
        config = lam.get_function_configuration(FunctionName=self.stage.function_name, Qualifier=version)
        return version, config["CodeSha256"]


    def records(self) -> list[releases.Release]:
        """The stage's release records on this target, newest first."""
        location = releases.location_of(self.stage, self.target)
        return list(releases.Releases(releases.FolderStore(location.folder), location))


def edit(project: Path, answer: str) -> None:
    """A code change: the package's hash changes (a comment is enough for Lambda)."""
    handler = project / "functions" / "loopback" / "handler.py"
    handler.write_text(handler.read_text() + f"# edit {answer}\n")


@pytest.mark.parametrize("target", ["sandbox", "aws"])
def test_sync_releases_the_new_code_and_nothing_when_it_is_already_live(
    project: Path, moto_endpoint: str, target: str
) -> None:
    world = Released(project, moto_endpoint, target)
    assert world.alias() == ("1", world.first.sha256_b64)

    unchanged = world.deployer().sync()
    assert unchanged.release is None and unchanged.live.version == "1"
    assert world.sandbox.marked == 0  # nothing changed: the gateway is not told
    assert unchanged.record is None and world.records() == []  # nothing released, nothing recorded

    edit(project, "one")
    outcome = world.deployer().sync()
    release = outcome.release
    assert (release.previous_version, release.version) == ("1", "2")
    assert world.alias() == ("2", outcome.package.sha256_b64) != ("2", world.first.sha256_b64)
    assert ("note", "alias 'dev' of orch-loopback-dev: version 1 -> 2") in world.reporter.events
    assert world.sandbox.marked == (1 if target == "sandbox" else 0)
    [record] = world.records()
    assert outcome.record.id == record.id
    assert (record.kind, record.stage, record.target, record.passed) == ("sync", "dev", target, True)
    assert (record.function_version, record.published_version) == ("2", "2")
    assert record.package_sha256 == outcome.package.sha256_hex != world.first.sha256_hex
    assert record.deployment_id == "d"  # what Terraform last applied, from its outputs
    assert record.tfvars == {"function": {}, "api": {"routes": []}, "stage": {}}  # no record before: the folder's
    assert record.smoke["passed"] is True and record.short.endswith(", by orch sync)")
    assert record.sandbox_epoch == (SANDBOX.epoch if target == "sandbox" else None)

    edit(project, "two")
    assert world.deployer().sync().release.version == "3"
    assert world.alias()[1] == world.package().sha256_b64
    # the checks ran against each release: the alias at the version the sync published, its package
    assert [(d.function_version, d.package_sha256) for d in world.checks.deployed] == [
        ("2", outcome.package.sha256_hex), ("3", world.package().sha256_hex)]
    assert [(r.kind, r.function_version, r.passed) for r in world.records()] == [("sync", "3", True),
                                                                                 ("sync", "2", True)]
    # --no-smoke: recorded unchecked, as apply does
    edit(project, "three")
    unchecked = world.deployer().sync(smoke=False)
    assert (unchecked.record.function_version, unchecked.record.passed, unchecked.record.smoke) == ("4", None, None)


@pytest.mark.parametrize("target", ["sandbox", "aws"])
def test_a_sync_that_fails_its_smoke_checks_moves_the_alias_back_and_exits_6(
    project: Path, moto_endpoint: str, target: str
) -> None:
    """The alias goes back to what it served before, through Lambda's API (no Terraform);
    the failed version stays published; the gateway is told both times."""
    from orch.errors import SmokeError

    world = Released(project, moto_endpoint, target)
    world.checks.failing = True
    edit(project, "broken")
    with pytest.raises(SmokeError, match="failed its smoke checks") as failed:
        world.deployer().sync()
    assert failed.value.exit_code == 6
    assert "version 2 of orch-loopback-dev, released by orch sync" in failed.value.message
    assert "alias 'dev' moved back to version 1" in failed.value.message
    assert "prototype request comes back" in failed.value.message
    assert world.alias() == ("1", world.first.sha256_b64)
    lam = world.aws.client("lambda")
    assert lam.get_function_configuration(FunctionName=world.stage.function_name, Qualifier="2")["Version"] == "2"
    assert world.checks.deployed[-1].function_version == "2"
    assert world.sandbox.marked == (2 if target == "sandbox" else 0)
    titles = world.reporter.of("done")
    assert "run the smoke checks" in titles and "move alias 'dev' back to the version it served before" in titles

    [failed_record] = world.records()  # recorded as failed; the alias went back at once
    assert (failed_record.kind, failed_record.function_version, failed_record.passed) == ("sync", "2", False)
    assert failed_record.package_sha256 != world.first.sha256_hex and failed_record.reverted
    assert failed_record.smoke["passed"] is False and "moved back to version 1 by orch sync" in failed_record.reason
    location = releases.location_of(world.stage, target)
    records = releases.Releases(releases.FolderStore(location.folder), location)
    assert records.current() is None  # the failed sync is not what the stage serves
    assert list(records.rollback_candidates()) == []

    world.checks.failing = False  # fixed: the next sync releases it
    assert world.deployer().sync().release.version == "3"
    assert world.alias()[0] == "3"
    assert records.current().function_version == "3"


def test_sync_of_a_stage_that_is_not_deployed_says_to_apply(project: Path, moto_endpoint: str) -> None:
    world = Released(project, moto_endpoint, "aws")
    world.aws.client("lambda").delete_function(FunctionName=world.stage.function_name)
    with pytest.raises(NotDeployedError, match="stage 'dev' is not deployed in AWS") as failed:
        world.deployer().sync()
    assert failed.value.exit_code == 8 and "has no alias 'dev'" in failed.value.message
    assert "`orch apply dev`" in failed.value.hint
    assert json.dumps(world.reporter.of("start")).count("update the code") == 0


def test_watch_releases_after_each_save_reports_a_bad_one_and_stops_when_asked(
    project: Path, moto_endpoint: str
) -> None:
    import threading
    import time

    world = Released(project, moto_endpoint, "sandbox")
    rounds: list[tuple[Any, Any]] = []
    stop, watching = threading.Event(), threading.Event()
    watcher = threading.Thread(target=world.deployer().watch_sync,
                               args=(lambda outcome, error: rounds.append((outcome, error)), stop, watching.set))
    watcher.start()
    try:
        def wait_rounds(count: int) -> None:
            deadline = time.monotonic() + 30
            while len(rounds) < count:
                assert time.monotonic() < deadline, f"round {count} did not come: {rounds}"
                stop.wait(0.02)
            assert watching.wait(30), "the watch did not resume"
            watching.clear()

        wait_rounds(1)
        assert rounds[0][0].release is None  # the first round: the code is already live
        edit(project, "watched")
        wait_rounds(2)
        assert rounds[1][0].release.version == "2"
        handler = project / "functions" / "loopback" / "handler.py"
        good = handler.read_text()
        handler.write_text(good.replace("def handler(", "def handler_gone("))
        wait_rounds(3)
        assert rounds[2][0] is None and "handler" in rounds[2][1].message  # reported, the watch goes on
        handler.write_text(good + "# fixed\n")
        wait_rounds(4)
        assert rounds[3][0].release.version == "3"
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert world.alias() == ("3", world.package().sha256_b64)


def test_orch_smoke_after_a_sync_checks_what_the_sync_released(project: Path, moto_endpoint: str) -> None:
    """Terraform's outputs still name the version before the sync; the sync's record says what
    the alias serves, so `orch smoke` expects that version and its package (a failed sync,
    moved back, is not what it expects)."""
    world = Released(project, moto_endpoint, "aws")
    (workdir_of(world.stage, "aws") / "terraform.tfstate").write_text("{}")  # applied from this project
    edit(project, "one")
    synced = world.deployer().sync()
    report = world.deployer().smoke()
    assert report.passed, report.as_dict()
    checked = world.checks.deployed[-1]
    assert (checked.function_version, checked.package_sha256) == ("2", synced.package.sha256_hex)
    assert any("serves a sync: checking version 2" in n for n in world.reporter.of("note"))
    world.checks.failing = True
    edit(project, "broken")
    with pytest.raises(Exception, match="failed its smoke checks"):
        world.deployer().sync()
    world.checks.failing = False
    world.deployer().smoke()
    assert world.checks.deployed[-1].function_version == "2"  # still the good sync's version
