"""The verified-release steps with fake Terraform, AWS, sandbox and smoke checks (the fakes of
tests/test_planner.py): a failed release rolled back through a Terraform apply whose var file
pins the alias, a first release with nothing to roll back to, the promotion guard before
Terraform, `--no-smoke`, and `orch plan` saying the stage is rolled back; `orch sync`'s
records among apply's (rolled back to, passed over when they failed, counted by the guard)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orch import releases
from orch.config import load_stage
from orch.deploy import Deployer, package_stage
from orch.errors import ConfigError
from orch.executor import DisplayExecutor
from orch.planner import ROLLBACK_VARS, ReleaseOptions, plan_apply
from test_planner import FakeTerraform, World, deployed


class VersionedTerraform(FakeTerraform):
    """Each apply publishes the next version and deployment; a rollback's var file pins the
    alias (what the real module does), and is kept for the test to read."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0  # the function's newest version (an `orch sync` publishes too: VersionsAws)
        self.var_files: list[dict] = []
        self.last: dict = {}  # the outputs of the last apply: what `terraform output` answers
        self.lam: Any = None  # the VersionsAws whose alias an apply moves

    def apply(self, *, replace: Any = (), var_file: Any = None) -> Any:
        result = super().apply(replace=replace, var_file=var_file)
        if var_file is not None:
            values = json.loads(var_file.read_text())
            self.var_files.append(values)
            outputs = {**result.outputs, "function_version": values["function"]["alias_version"],
                       "published_version": str(self.version), "deployment_id": "dep-rolled-back"}
        else:
            self.version += 1
            outputs = {**result.outputs, "function_version": str(self.version),
                       "published_version": str(self.version), "deployment_id": f"dep{self.version}"}
        self.last = outputs
        if self.lam is not None:
            self.lam.alias = outputs["function_version"]
        return replace_outputs(result, outputs)

    def output(self) -> dict:
        self.calls.append(("output", None))
        return dict(self.last) or super().output()


def replace_outputs(result: Any, outputs: dict) -> Any:
    return replace(result, outputs=outputs)


class VersionsAws:
    """FakeAws plus Lambda's GetFunctionConfiguration: version -> package (hex), and what
    `orch sync` calls (GetAlias, UpdateFunctionCode, PublishVersion, UpdateAlias) on one
    function whose versions are numbered with Terraform's (`terraform.version`)."""

    def __init__(self, aws: Any, terraform: VersionedTerraform) -> None:
        self.aws = aws
        self.terraform = terraform
        self.packages: dict[str, str] = {}
        self.alias: str | None = None  # the version the stage's alias serves
        self.code = ""  # $LATEST's CodeSha256 (base64)

    def live_code(self, function_name: str, alias: str) -> Any:
        from orch.aws import LiveCode

        return LiveCode(function_name, alias, str(self.alias), _b64(self.packages[str(self.alias)]))

    def update_function_code(self, function_name: str, *, zip_file: Any = None, s3: Any = None) -> str:
        import hashlib

        self.code = _b64(hashlib.sha256(Path(zip_file).read_bytes()).hexdigest())
        return self.code

    def publish_version(self, function_name: str, code_sha256: str, description: str = "") -> str:
        assert code_sha256 == self.code
        self.terraform.version += 1
        version = str(self.terraform.version)
        self.packages[version] = base64.b64decode(code_sha256).hex()
        return version

    def update_alias(self, function_name: str, alias: str, version: str) -> None:
        self.alias = version

    def __getattr__(self, name: str) -> Any:
        return getattr(self.aws, name)

    def call(self, service: str, operation: str, what: str, **kwargs: Any) -> dict:
        assert (service, operation) == ("lambda", "get_function_configuration")
        return {"CodeSha256": _b64(self.packages[kwargs["Qualifier"]])}


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def world_for(project: Path, stage: str = "dev", **facts: Any) -> World:
    world = World(project, stage, **facts)
    world.terraform = VersionedTerraform()
    world.aws = VersionsAws(world.aws, world.terraform)
    world.terraform.lam = world.aws
    deployed(world)
    return world


def released(world: World, **apply: Any) -> Any:
    outcome = world.deployer().apply(**apply)
    latest = releases.Releases(releases.FolderStore(world.facts.workdir / "releases"),
                               releases.location_of(world.stage, "sandbox")).latest()
    if latest is not None:
        world.aws.packages.setdefault(latest.published_version or latest.function_version, latest.package_sha256)
    return outcome


def records(world: World) -> list[releases.Release]:
    return list(releases.Releases(releases.FolderStore(world.facts.workdir / "releases"),
                                  releases.location_of(world.stage, "sandbox")))


def test_a_failed_release_is_rolled_back_to_the_last_good_one(project: Path) -> None:
    world = world_for(project)
    good = released(world)
    assert good.verdict.status == "passed" and world.sandbox.marked == 1
    (project / "stages" / "dev.yaml").write_text("stage: {variables: {env: broken}}\n")
    (project / "functions" / "loopback" / "handler.py").write_text(
        (project / "functions" / "loopback" / "handler.py").read_text() + "\n# a change\n")
    world.stage = load_stage(project, "dev")
    world.verify.fail = [True, False]  # the release fails, the rolled-back stage passes
    outcome = released(world)
    verdict = outcome.verdict
    assert verdict.status == "rolled_back", verdict.message()
    assert verdict.rolled_back_to.function_version == "1" and verdict.release.function_version == "2"
    assert "rolled back to version 1" in verdict.message() and "status 502, expected 200" in verdict.message()
    pinned = world.terraform.var_files[-1]
    first, failed = records(world)[2], records(world)[1]
    assert pinned["function"] == {**failed.tfvars["function"], "alias_version": "1"}  # the function unchanged
    assert pinned["stage"]["variables"] == first.tfvars["stage"]["variables"] == {"env": "dev", "greeting":
                                                                                   "hello-from-dev"}
    assert [c for c in world.terraform.calls if len(c) == 3] == [("apply", (), ROLLBACK_VARS)]
    assert not (world.facts.workdir / ROLLBACK_VARS).exists()  # cleaned up
    assert [(r.kind, r.passed) for r in records(world)] == [("rollback", True), ("apply", False), ("apply", True)]
    rollback = records(world)[0]
    assert rollback.package_sha256 == first.package_sha256 and rollback.rolled_back_from == failed.id
    assert [purpose for _, purpose in world.verify.calls] == ["release", "release", "rollback"]
    assert world.verify.calls[-1][0].package_sha256 == first.package_sha256  # the alias must run the old package
    assert world.sandbox.marked == 3  # after each apply and after the rollback, before each check


def test_a_first_release_that_fails_has_nothing_to_roll_back_to(project: Path) -> None:
    world = world_for(project)
    world.verify.fail = [True]
    verdict = released(world).verdict
    assert verdict.status == "failed" and "no earlier release" in verdict.message()
    assert [c for c in world.terraform.calls if c[0] == "apply"] == [("apply", ())]  # no rollback apply
    assert [(r.kind, r.passed) for r in records(world)] == [("apply", False)]


def test_a_version_that_no_longer_holds_its_package_is_not_rolled_back_to(project: Path) -> None:
    world = world_for(project)
    released(world)
    world.aws.packages["1"] = "cd" * 32  # the function was recreated: version 1 is something else now
    world.verify.fail = [True]
    verdict = released(world).verdict
    assert verdict.status == "failed"
    assert any("now runs package cdcdcdcdcdcd" in note for note in world.reporter.of("note"))


def test_no_smoke_records_the_release_unchecked(project: Path) -> None:
    world = world_for(project)
    outcome = released(world, smoke=False)
    assert outcome.verdict.status == "unchecked" and world.verify.calls == []
    assert records(world)[0].passed is None


def test_promotion_is_checked_before_terraform_runs(project: Path) -> None:
    prod = world_for(project, "prod", yes=True)
    with pytest.raises(ConfigError, match="never passed the smoke checks of stage 'dev'"):
        prod.deployer().apply()
    assert prod.terraform.calls == []
    skipped = released(prod, skip_promotion_check=True)
    assert skipped.verdict.status == "passed" and records(prod)[0].promotion == "skipped"
    assert any("WARNING: --skip-promotion-check" in s for s in prod.reporter.of("summary"))
    dev = world_for(project)
    released(dev)  # dev passes this very package
    sha = package_stage(prod.stage, write=False).sha256_hex
    assert records(dev)[0].package_sha256 == sha
    promoted = released(prod)
    assert promoted.verdict.status == "passed" and records(prod)[0].promotion == "passed"


def test_plan_says_when_the_stage_is_rolled_back(project: Path) -> None:
    world = world_for(project)
    released(world)
    location = releases.location_of(world.stage, "sandbox")
    releases.Releases(releases.FolderStore(location.folder), location).write(releases.Release(
        id="29990101T000000.000000Z-rollback", stage="dev", target="sandbox", kind="rollback", time="t",
        package_sha256="ab" * 32, function_version="1", deployment_id="d", passed=True, reason="boom"))
    Deployer.plan(world.deployer())
    assert any("stage 'dev' is rolled back to version 1" in n and "orch apply dev --sandbox" in n
               for n in world.reporter.of("note"))


def test_the_dry_run_shows_the_checks_and_the_conditional_rollback(project: Path) -> None:
    world = World(project)
    text = "\n".join(DisplayExecutor(world.reporter).execute(plan_apply(world.stage, world.facts, ReleaseOptions())))
    assert "run the smoke checks" in text and "only if the smoke checks ${smoke} failed" in text
    assert "roll the stage back (terraform apply -var-file=orch-rollback.tfvars.json)" in text
    assert not (project / ".orch").exists()


def test_rollback_by_hand_goes_to_the_last_good_release_or_the_version_asked(project: Path) -> None:
    world = world_for(project)
    with pytest.raises(ConfigError, match="no release records"):
        world.deployer().rollback()
    released(world)
    (project / "functions" / "loopback" / "extra.txt").write_text("v2\n")
    released(world)
    verdict = world.deployer().rollback()
    assert verdict.status == "rolled_back" and verdict.rolled_back_to.function_version == "1"
    assert "rolled back by hand from version 2" in verdict.message()
    assert world.terraform.var_files[-1]["function"]["alias_version"] == "1"
    assert records(world)[0].kind == "rollback" and records(world)[0].reason.startswith("rolled back by hand")
    with pytest.raises(ConfigError, match=r"--to 9: no release .* served version 9 \(recorded versions: 1, 2\)"):
        world.deployer().rollback(to_version="9")
    assert world.deployer().rollback(to_version="2").rolled_back_to.function_version == "2"


# ---------------------------------------------------------------------------- orch sync's records


def edit_code(project: Path, text: str) -> None:
    handler = project / "functions" / "loopback" / "handler.py"
    handler.write_text(handler.read_text() + f"\n# {text}\n")


def test_a_bad_apply_after_a_good_sync_is_rolled_back_to_the_sync(project: Path) -> None:
    """The sync is the last good release: the rollback pins the alias to the version the sync
    published (which runs its package), with the API and stage Terraform had applied then."""
    world = world_for(project)
    first = released(world)
    assert first.verdict.status == "passed"
    edit_code(project, "synced")
    synced = world.deployer().sync()
    sync = synced.record
    assert (sync.kind, sync.function_version, sync.passed) == ("sync", "2", True)
    assert sync.package_sha256 == synced.package.sha256_hex == world.aws.packages["2"]
    assert sync.deployment_id == "dep1" and sync.tfvars == records(world)[1].tfvars  # Terraform's last run
    assert sync.package_sha256 != records(world)[1].package_sha256

    (project / "stages" / "dev.yaml").write_text("stage: {variables: {env: broken}}\n")
    edit_code(project, "broken")
    world.stage = load_stage(project, "dev")
    world.verify.fail = [True, False]  # the apply fails, the stage rolled back to the sync passes
    verdict = released(world).verdict
    assert verdict.status == "rolled_back", verdict.message()
    assert verdict.release.function_version == "3" and verdict.rolled_back_to.id == sync.id
    assert "rolled back to version 2 (package" in verdict.message() and "by orch sync" in verdict.message()
    pinned = world.terraform.var_files[-1]
    failed = records(world)[1]
    assert pinned["function"] == {**failed.tfvars["function"], "alias_version": "2"}  # nothing published
    assert pinned["stage"] == sync.tfvars["stage"] and pinned["api"] == sync.tfvars["api"]
    rollback = records(world)[0]
    assert (rollback.kind, rollback.function_version, rollback.package_sha256) == ("rollback", "2",
                                                                                 sync.package_sha256)
    assert world.verify.calls[-1][0].package_sha256 == sync.package_sha256  # the alias must run the sync's package
    assert [r.kind for r in records(world)] == ["rollback", "apply", "sync", "apply"]


def test_rollback_after_a_failed_sync_starts_from_the_release_it_went_back_to(project: Path) -> None:
    """A failed sync was moved back by sync itself: the stage serves the release before it,
    which is what a rollback by hand replaces (and the failed sync is never a target)."""
    from orch.errors import SmokeError

    world = world_for(project)
    released(world)
    edit_code(project, "good")
    good = world.deployer().sync().record
    edit_code(project, "bad")
    world.verify.fail = [True]
    with pytest.raises(SmokeError):
        world.deployer().sync()
    bad = records(world)[0]
    assert (bad.kind, bad.function_version, bad.passed) == ("sync", "3", False) and world.aws.alias == "2"
    store = releases.Releases(releases.FolderStore(world.facts.workdir / "releases"),
                              releases.location_of(world.stage, "sandbox"))
    assert store.current().id == good.id and store.latest().id == bad.id

    verdict = world.deployer().rollback()
    assert verdict.status == "rolled_back", verdict.message()
    assert verdict.release.id == good.id and verdict.rolled_back_to.kind == "apply"
    assert verdict.rolled_back_to.function_version == "1"
    assert "rolled back by hand from version 2 (package" in verdict.message()
    assert world.terraform.var_files[-1]["function"] == {**good.tfvars["function"], "alias_version": "1"}
    assert records(world)[0].rolled_back_from == good.id
    assert any("stage 'dev' serves version 2 (package" in n and "by orch sync" in n
               for n in world.reporter.of("note"))  # what the records said before the rollback


def test_the_promotion_guard_counts_a_package_that_passed_dev_through_sync(project: Path) -> None:
    dev = world_for(project)
    released(dev)
    edit_code(project, "new code")  # prod's package now is one dev has not checked
    prod = world_for(project, "prod", yes=True)
    with pytest.raises(ConfigError, match="never passed the smoke checks of stage 'dev'") as refused:
        prod.deployer().apply()
    assert "orch sync dev --sandbox" in refused.value.hint
    synced = dev.deployer().sync()
    assert synced.record.package_sha256 == package_stage(prod.stage, write=False).sha256_hex
    promoted = released(prod)
    assert promoted.verdict.status == "passed" and records(prod)[0].promotion == "passed"
    assert any(f"(release {synced.record.id}," in n for n in prod.reporter.of("note"))
    # a sync that failed dev's checks does not count
    edit_code(project, "newer code")
    dev.verify.fail = [True]
    with pytest.raises(Exception, match="failed its smoke checks"):
        dev.deployer().sync()
    with pytest.raises(ConfigError, match="never passed the smoke checks of stage 'dev'"):
        prod.deployer().apply()
