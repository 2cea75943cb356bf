"""Carry out a DeployPlan (Executor) or only print it (DisplayExecutor, for --dry-run).

The executor dispatches on each step's type, resolves `Ref`s from the values earlier steps
stored, checks each step's `when`, reports every start and end through the reporter, runs a
step's `on_failure` steps when it fails and the plan's cleanup steps whatever happens. It
reaches Terraform, AWS, the sandbox and the person at the terminal only through the
collaborators it is given (so tests use fakes); it holds no module-level state, so several
stages can run in threads, each with its own executor and reporter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orch import adopt as adopt_mod
from orch import facts as facts_mod
from orch import package as package_mod
from orch import releases as releases_mod
from orch import render as render_mod
from orch import smoke as smoke_mod
from orch import statelock, tfruns
from orch.config import SmokeSettings, Stage
from orch.errors import Aborted, AwsError, ConfigError, NotDeployedError, Refused, TerraformError
from orch.reporter import Reporter
from orch.steps import (
    FAILED,
    ApplySavedPlan,
    BuildPackage,
    CheckCredentials,
    CheckHandler,
    CheckPromotion,
    ConcludeRelease,
    Confirm,
    DeployPlan,
    EndLeftovers,
    EnsureBucket,
    EnsureHostedZone,
    FindOrphans,
    FindRollbackTarget,
    ForceUnlock,
    ForgetLostState,
    Init,
    MarkSandboxChanged,
    PublishVersion,
    ReadLiveCode,
    ReadLock,
    ReadPlan,
    ReadReleases,
    RecordRelease,
    RecordSandboxEpoch,
    RecordSync,
    Ref,
    RefuseDestroying,
    Release,
    RemoveFile,
    RenderFiles,
    RevertAlias,
    RunSmokeChecks,
    RunSyncChecks,
    SettleRuns,
    StartSandbox,
    Step,
    TerraformApply,
    TerraformDestroy,
    TerraformPlan,
    UpdateAlias,
    UpdateFunctionCode,
    UploadPackage,
    UseSandbox,
    WaitForRun,
    WriteImports,
    WriteProviderConfig,
    WriteRollbackVars,
)

LOCKING_STEPS = (Init, TerraformApply, TerraformPlan, ApplySavedPlan, TerraformDestroy)
"""Steps whose Terraform run takes the state lock (and may fail waiting for it)."""


class SandboxControl(Protocol):
    """What the executor needs of the sandbox (orch.sandbox in real life)."""

    def start(self, project_dir: Path, region: str) -> Any: ...
    def current(self, project_dir: Path) -> Any: ...
    def mark_changed(self, project_dir: Path) -> str: ...


@dataclass
class Collaborators:
    """The outside world, injected: real ones from orch.deploy.create_deployer, fakes in tests.

    `terraform(workdir)` returns an orch.terraform.Terraform (or a fake with its verbs);
    `aws(endpoint, region)` an orch.aws.Aws (endpoint None: real AWS); `ask(question)` the
    person's yes/no; `cli_config_file` the TF_CLI_CONFIG_FILE Terraform will read.
    """

    terraform: Callable[[Path], Any]
    aws: Callable[[str | None, str], Any]
    sandbox: SandboxControl
    ask: Callable[[str], bool]
    cli_config_file: str | None = None
    preflight: Callable[[], None] = lambda: None  # checks before a real run (terraform installed)
    load_secrets: Callable[[], None] = lambda: None  # read the stage's secrets for Terraform's environment
    verify: Callable[..., Any] = smoke_mod.verify  # runs a stage's smoke checks (orch.smoke.verify)


class Executor:
    """Runs the steps of one stage's DeployPlan; `values` holds what the steps stored."""

    def __init__(self, stage: Stage, collaborators: Collaborators, reporter: Reporter) -> None:
        self.stage = stage
        self.tools = collaborators
        self.reporter = reporter
        self.values: dict[str, Any] = {}
        self.ran: list[Step] = []  # the steps that ran (skipped ones excluded), in order
        self.account: str | None = None  # the AWS account the credentials check found (names it in errors)
        self._outputs: dict[Path, dict[str, Any]] = {}  # `terraform output` per working folder (sync reads it twice)

    def execute(self, plan: DeployPlan) -> dict[str, Any]:
        """Run every step in order (cleanup steps always, numbered after them: one count from
        start to end); return the stored values."""
        total = len(plan.steps) + len(plan.cleanup)
        try:
            for index, step in enumerate(plan.steps, 1):
                self._run(step, index, total)
        finally:
            for index, step in enumerate(plan.cleanup, len(plan.steps) + 1):
                self._run(step, index, total, cleanup=True)
        for note in plan.notes:
            self.reporter.note(note)
        return self.values

    def _run(self, step: Step, index: int, total: int, *, cleanup: bool = False) -> None:
        when = getattr(step, "when", None)
        if when is not None and not when.holds(self.values):
            self.reporter.step_skipped(index, total, step.title(), when.skipped_because(self.values))
            return
        self.reporter.step_started(index, total, step.title())
        started = time.monotonic()
        try:
            try:
                result = self._dispatch(step)
            except TerraformError as exc:
                if not isinstance(step, LOCKING_STEPS) or isinstance(exc, statelock.StateLocked):
                    raise
                locked = self._locked(step.workdir)  # type: ignore[attr-defined]
                if locked is None:
                    raise
                raise locked from None
        except BaseException:
            self.reporter.step_failed(index, total, step.title(), time.monotonic() - started)
            if cleanup:
                raise
            self.values[FAILED] = step
            for recovery in getattr(step, "on_failure", ()):
                self._dispatch(recovery)
            raise
        self.reporter.step_finished(index, total, step.title(), time.monotonic() - started)
        if cleanup:
            return
        self.ran.append(step)
        output = getattr(step, "output", None)
        if output:
            self.values[output] = result

    def _dispatch(self, step: Step) -> Any:
        handler = getattr(self, f"_do_{type(step).__name__}", None)
        if handler is None:
            raise RuntimeError(f"the executor has no handler for step {type(step).__name__}")
        return handler(step)

    def _get(self, ref: Ref | None) -> Any:
        return None if ref is None else self.values.get(ref.name)

    def _aws(self, sandbox_ref: Ref | None, region: str) -> Any:
        info = self._get(sandbox_ref)
        return self.tools.aws(info.endpoint if info is not None else None, region)

    # ------------------------------------------------------------------ steps

    def _do_CheckHandler(self, step: CheckHandler) -> None:
        package_mod.check_handler(step.source_dir, step.runtime, step.handler)

    def _do_Confirm(self, step: Confirm) -> bool:
        question = step.question
        if step.plan is not None:
            plan = self._get(step.plan)
            question = question.replace("{changes}", plan.text())
        if step.about is not None:
            question = question.replace("{about}", self._get(step.about).text())
        if not self.tools.ask(question):
            raise Aborted(step.refusal)
        return True

    def _do_CheckCredentials(self, step: CheckCredentials) -> None:
        self.account = self.tools.aws(None, step.region).check_credentials()

    def _do_StartSandbox(self, step: StartSandbox) -> Any:
        return self.tools.sandbox.start(step.project_dir, step.region)

    def _do_UseSandbox(self, step: UseSandbox) -> Any:
        return self.tools.sandbox.current(step.project_dir)

    def _do_ForgetLostState(self, step: ForgetLostState) -> None:
        state = step.workdir / "terraform.tfstate"
        if state.exists():
            state.replace(step.workdir / ("terraform.tfstate" + facts_mod.LOST_STATE_SUFFIX))
        (step.workdir / "terraform.tfstate.backup").unlink(missing_ok=True)
        self.reporter.note(
            f"{step.reason}: stage {self.stage.name!r} lost its resources there, so orch starts it clean"
        )

    def _do_RecordSandboxEpoch(self, step: RecordSandboxEpoch) -> None:
        info = self._get(step.sandbox)
        step.workdir.mkdir(parents=True, exist_ok=True)
        (step.workdir / facts_mod.EPOCH_FILE).write_text(info.epoch + "\n")

    def _do_EnsureBucket(self, step: EnsureBucket) -> bool:
        return self._aws(step.sandbox, step.region).ensure_bucket(step.bucket, step.region)

    def _do_EnsureHostedZone(self, step: EnsureHostedZone) -> bool:
        return self._aws(step.sandbox, self.stage.config.region).ensure_hosted_zone(step.zone)

    def _do_WriteProviderConfig(self, step: WriteProviderConfig) -> None:
        from orch.terraform import ProviderConfig

        ProviderConfig(step.path, step.text, step.mirror).write()

    def _do_BuildPackage(self, step: BuildPackage) -> Any:
        result = package_mod.build_package(step.source_dir, step.runtime, step.store_dir, name=step.function_name)
        self.reporter.note(f"{result.path.name}: {result.size / 1e6:.2f} MB, sha256 {result.sha256_hex[:16]}…")
        return result

    def _do_UploadPackage(self, step: UploadPackage) -> tuple[str, str]:
        package = self._get(step.package)
        aws = self._aws(step.sandbox, self.stage.config.region)
        if step.bucket and step.target == "sandbox":
            aws.ensure_bucket(step.bucket, self.stage.config.region)
        self.reporter.note(f"over the 50 MB direct-upload limit: uploading through s3://{step.bucket}")
        return aws.upload_package(package, step.bucket, key_prefix=step.prefix)

    def _do_RenderFiles(self, step: RenderFiles) -> list[str]:
        package = self._get(step.package)
        upload = self._get(step.upload)
        if upload is not None:
            ref = render_mod.PackageRef(package.sha256_b64, s3_bucket=upload[0], s3_key=upload[1])
        else:
            ref = render_mod.PackageRef(package.sha256_b64, filename=str(package.path))
        info = self._get(step.sandbox)
        target = render_mod.Target("sandbox", info.endpoint) if step.sandbox is not None else render_mod.Target("aws")
        changed = render_mod.write(render_mod.render(self.stage, target, ref), step.workdir)
        if changed:
            self.reporter.note(f"wrote {', '.join(changed)}")
        return changed

    def _do_Init(self, step: Init) -> Any:
        fingerprint = facts_mod.fingerprint_for(step.workdir, self.tools.cli_config_file, self.stage.project_dir)
        return self.tools.terraform(step.workdir).init(fingerprint)

    def _do_TerraformApply(self, step: TerraformApply) -> Any:
        options: dict[str, Any] = {"replace": step.replace}
        adoption = self._get(step.targets_from)
        if adoption is not None:
            options["target"] = [item.address for item in adoption.imports]
        if step.var_file is not None:
            options["var_file"] = step.var_file
        return self.tools.terraform(step.workdir).apply(**options)

    def _do_TerraformPlan(self, step: TerraformPlan) -> Any:
        return self.tools.terraform(step.workdir).plan(step.plan_file)

    def _do_ReadPlan(self, step: ReadPlan) -> Any:
        return self.tools.terraform(step.workdir).show_plan(step.plan_file)

    def _do_ApplySavedPlan(self, step: ApplySavedPlan) -> Any:
        return self.tools.terraform(step.workdir).apply_saved(step.plan_file)

    def _do_TerraformDestroy(self, step: TerraformDestroy) -> Any:
        return self.tools.terraform(step.workdir).destroy()

    def _do_ReadLiveCode(self, step: ReadLiveCode) -> Any:
        """What the stage's alias serves. NotDeployedError when the function or its alias is missing."""
        from orch.aws import FunctionNotFound

        try:
            return self._aws(step.sandbox, step.region).live_code(step.function_name, step.alias)
        except FunctionNotFound:
            raise self._not_deployed(step.sandbox is not None, step.region,
                                     f"the function {step.function_name} has no alias {step.alias!r} there",
                                     then="orch sync then releases code changes to the deployed function") from None

    def _not_deployed(self, sandbox: bool, region: str, why: str | None, then: str | None = None) -> NotDeployedError:
        return NotDeployedError(self.stage.name, sandbox=sandbox, why=why, region=region, account=self.account,
                                then=then)

    def _do_UpdateFunctionCode(self, step: UpdateFunctionCode) -> str:
        package = self._get(step.package)
        upload = self._get(step.upload)
        aws = self._aws(step.sandbox, step.region)
        if upload is not None:
            return aws.update_function_code(step.function_name, s3=upload)
        return aws.update_function_code(step.function_name, zip_file=package.path)

    def _do_PublishVersion(self, step: PublishVersion) -> str:
        code = self._get(step.code)
        return self._aws(step.sandbox, step.region).publish_version(
            step.function_name, code, description=f"orch sync: package sha256 {_hex(code)[:16]}"
        )

    def _do_UpdateAlias(self, step: UpdateAlias) -> Release:
        version, live = self._get(step.version), self._get(step.live)
        self._aws(step.sandbox, step.region).update_alias(step.function_name, step.alias, version)
        self.reporter.note(f"alias {step.alias!r} of {step.function_name}: version {live.version} -> {version}")
        return Release(step.function_name, step.alias, version, live.version, self._get(step.code))

    def _do_RefuseDestroying(self, step: RefuseDestroying) -> None:
        doomed = self._get(step.plan).destroys(step.types)
        if doomed:
            raise Refused(
                f"the plan for protected stage {step.stage!r} destroys or replaces {', '.join(doomed)}; "
                "nothing was applied.",
                hint=f"Read the plan (`orch plan {step.stage}`). If losing them is intended, run the apply again "
                f"with {step.override}.",
            )

    def _do_MarkSandboxChanged(self, step: MarkSandboxChanged) -> str:
        return self.tools.sandbox.mark_changed(step.project_dir)

    def _do_RemoveFile(self, step: RemoveFile) -> None:
        step.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the state lock

    def _read_lock(self, workdir: Path) -> statelock.LockInfo | None:
        backend = render_mod.state_backend(self.stage)
        if backend["type"] != "s3":
            return statelock.read_local(workdir)
        sandbox = self.values.get("sandbox")
        aws = self.tools.aws(sandbox.endpoint if sandbox is not None else None, backend["region"])
        return statelock.read_s3(aws, backend["bucket"], backend["key"])

    def _unlock_command(self, lock_id: str) -> str:
        where = " --sandbox" if self.values.get("sandbox") is not None else ""
        return f"orch unlock {self.stage.name} {lock_id}{where}"

    def _locked(self, workdir: Path) -> statelock.StateLocked | None:
        """After a Terraform run failed: the error naming the lock's holder when someone
        holds the lock now (a run that failed for another reason has released its own)."""
        try:
            lock = self._read_lock(workdir)
        except Exception:  # noqa: BLE001 - the original error says more than a failed look
            return None
        if lock is None:
            return None
        waited = getattr(self.tools.terraform(workdir), "lock_timeout", "the -lock-timeout")
        return statelock.locked_error(self.stage.name, lock, statelock.local_holders(workdir),
                                      self._unlock_command(lock.id or "LOCK_ID"), waited)

    def _do_ReadLock(self, step: ReadLock) -> statelock.LockInfo:
        lock = self._read_lock(step.workdir)
        if lock is None:
            raise statelock.NotLocked(f"the state of stage {self.stage.name!r} is not locked: nothing to unlock.")
        if lock.id != step.lock_id:
            raise ConfigError(f"the state of stage {self.stage.name!r} is locked as {lock.id!r}, not "
                              f"{step.lock_id!r}: {lock.text()}.",
                              hint=f"Check who holds it before you run `{self._unlock_command(lock.id)}`.")
        holders = statelock.local_holders(step.workdir)
        if lock.holder_pid is not None:
            holders.append(f"process {lock.holder_pid}")
        if holders:
            raise statelock.StateLocked(
                f"refusing to force open the state lock of stage {self.stage.name!r}: {lock.text()}, and "
                f"{'; '.join(holders)} of this project still runs.",
                hint="Wait for it to end, or stop it gracefully (`kill -INT PID`): Terraform then saves "
                "the state and releases the lock itself.",
            )
        self.reporter.note(lock.text())
        return lock

    def _do_ForceUnlock(self, step: ForceUnlock) -> None:
        self.tools.terraform(step.workdir).force_unlock(step.lock_id)
        tfruns.record_unlock(step.workdir, step.lock_id)
        self.reporter.note("the next `orch plan` or `orch apply` of this stage looks for what the interrupted run "
                           "left in AWS outside the state, and adopts it")

    def _record(self, workdir: Path, run_id: str) -> tfruns.RunRecord | None:
        return next((r for r in tfruns.records(workdir) if r.run_id == run_id), None)

    def _do_WaitForRun(self, step: WaitForRun) -> None:
        record = self._record(step.workdir, step.run_id)
        if record is None or not record.alive:
            return
        self.reporter.note(f"{step.description} is still going in {step.workdir}; its output follows")
        if not self.tools.terraform(step.workdir).follow(record, step.timeout):
            raise TerraformError(
                f"the {step.description} is still running after {step.timeout / 60:.0f} minutes.",
                hint=f"It holds the stage's state lock. Wait for it, or stop it gracefully with "
                f"`kill -INT {record.pid}` and run the command again.",
            )

    def _do_EndLeftovers(self, step: EndLeftovers) -> None:
        for run_id in step.run_ids:
            record = self._record(step.workdir, run_id)
            if record is not None:
                ended = tfruns.end_leftovers(record)
                if ended:
                    self.reporter.note(f"ended {len(ended)} process(es) that {record.describe()} left behind "
                                       f"(pid {', '.join(map(str, ended))})")

    def _do_FindOrphans(self, step: FindOrphans) -> Any:
        from orch.resources import modules_dir

        terraform = self.tools.terraform(step.workdir)
        state = terraform.show_state()
        # A creation interrupted half-way leaves its object tainted. Replacing it cannot work:
        # names are fixed and the API deployment's create_before_destroy reaches the function,
        # so Terraform would create a second function of the same name and wait for minutes.
        # The object exists: untainted, Terraform updates it in place to the configuration.
        for address in adopt_mod.tainted_resources(state):
            terraform.untaint(address)
            self.reporter.note(f"{address}: its creation was interrupted; kept and updated in place, not replaced")
        managed = adopt_mod.state_resources(state)
        aws = self._aws(step.sandbox, self.stage.config.region)
        adoption = adopt_mod.find_orphans(self.stage, managed, aws, modules_dir=modules_dir(self.stage.project_dir))
        for line in adoption.notes() or ["nothing to adopt: AWS holds nothing of this stage outside its state"]:
            self.reporter.note(line)
        return adoption

    def _do_WriteImports(self, step: WriteImports) -> Any:
        return adopt_mod.write_imports(self._get(step.adoption), step.workdir)

    def _do_SettleRuns(self, step: SettleRuns) -> None:
        tfruns.settle(step.workdir)
        (step.workdir / adopt_mod.ADOPT_FILE).unlink(missing_ok=True)

    # ------------------------------------------------------------------ verified releases

    def _releases(self, location: Any, sandbox_ref: Ref | None) -> releases_mod.Releases:
        region = self.stage.config.region
        store = releases_mod.open_store(location, lambda where: self._aws(sandbox_ref, where or region))
        return releases_mod.Releases(store, location)

    def _applied(self, refs: tuple[Ref, ...]) -> Any:
        """The first stored Terraform result among `refs` with outputs (ApplyResult or PlanView)."""
        for ref in refs:
            value = self._get(ref)
            if value is not None and getattr(value, "outputs", None):
                return value
        raise RuntimeError(f"no Terraform outputs stored under {', '.join(r.name for r in refs)}")

    def _tfvars(self, workdir: Path, applied: Any) -> dict[str, Any]:
        """The values Terraform applied: a saved plan's variables, else the working folder's tfvars."""
        variables = getattr(applied, "variables", None) or getattr(self.values.get("plan"), "variables", None)
        if variables:
            return dict(variables)
        return json.loads((workdir / render_mod.TFVARS_FILE).read_text(encoding="utf-8"))

    def _deployed(self, workdir: Path, applied: Any, sandbox_ref: Ref | None, tfvars: dict[str, Any],
                  package_sha256: str | None = None) -> smoke_mod.Deployed:
        outputs = dict(applied.outputs)
        info = self._get(sandbox_ref)
        url = domain = None
        if info is not None and info.gateway_endpoint:
            from orch.sandbox import custom_domain_request, invoke_url

            url = invoke_url(info.gateway_endpoint, outputs["rest_api_id"], outputs["stage_name"])
            if outputs.get("custom_domain_url"):
                domain = custom_domain_request(info.gateway_endpoint, outputs["custom_domain_url"])
        return smoke_mod.Deployed.from_terraform(self.stage.name, "sandbox" if info is not None else "aws", outputs,
                                                 tfvars, invoke_url=url, package_sha256=package_sha256,
                                                 custom_domain=domain)

    def _show_smoke(self, report: smoke_mod.SmokeReport) -> None:
        show = getattr(self.reporter, "smoke_report", None)
        if callable(show):
            show(report)
            return
        for line in smoke_mod.table_lines(report):
            self.reporter.note(line)

    def _do_ReadReleases(self, step: ReadReleases) -> releases_mod.Release | None:
        try:
            latest = self._releases(step.location, step.sandbox).current()
        except AwsError as exc:  # what the records say is information; a plan must not fail on it
            self.reporter.note(f"could not read the release records in {step.location.describe()}: {exc.message}")
            return None
        line = releases_mod.status_line(self.stage.name, latest, step.apply_hint)
        if line:
            self.reporter.note(line)
        return latest

    def _do_CheckPromotion(self, step: CheckPromotion) -> str:
        value = self._get(step.package)
        if hasattr(value, "sha256_hex"):
            sha = value.sha256_hex
        else:
            package = ((getattr(value, "variables", None) or {}).get("function") or {}).get("package") or {}
            sha = smoke_mod.sha256_hex_of(package.get("source_code_hash")) or ""
        source = step.source
        passed = self._releases(source, step.sandbox).passed_package(sha) if sha else None
        if passed is not None:
            self.reporter.note(f"package {sha[:12]}… passed stage {source.stage!r}'s smoke checks "
                               f"(release {passed.id}, {passed.time})")
            return "passed"
        where = f"stage {source.stage!r} ({source.target}, records in {source.describe()})"
        if step.skip:
            self.reporter.summary(f"WARNING: --skip-promotion-check: package {sha[:12]}… never passed the smoke "
                                  f"checks of {where}; releasing it to stage {self.stage.name!r} anyway")
            return "skipped"
        sandbox = " --sandbox" if source.target == "sandbox" else ""
        raise ConfigError(
            f"stage {self.stage.name!r} promotes from {source.stage!r} (promote_from), and package {sha[:12]}… "
            f"never passed the smoke checks of {where}: refusing to apply it.",
            hint=f"Release it to {source.stage!r} first (`orch apply {source.stage}{sandbox}`, or `orch sync "
            f"{source.stage}{sandbox}`), or override with --skip-promotion-check (recorded in the release).",
        )

    def _do_RunSmokeChecks(self, step: RunSmokeChecks) -> smoke_mod.SmokeReport:
        applied = self._applied(step.applied)
        settings = self.stage.config.smoke
        target = self._get(step.rollback_to)
        if target is not None:  # after a rollback: that release's own checks, its package
            tfvars = json.loads(self._rollback_vars_text(step.workdir))
            deployed = self._deployed(step.workdir, applied, step.sandbox, tfvars, target.package_sha256)
            if target.smoke_settings:
                settings = SmokeSettings.model_validate(target.smoke_settings)
        else:
            deployed = self._deployed(step.workdir, applied, step.sandbox, self._tfvars(step.workdir, applied))
        aws = self._aws(step.sandbox, self.stage.config.region)
        bounded = getattr(aws, "with_config", None)
        if callable(bounded):
            aws = bounded(smoke_mod.CONTROL_CLIENT_CONFIG)
        report = self.tools.verify(self.stage, deployed, aws=aws, settings=settings, purpose=step.purpose)
        self._show_smoke(report)
        return report

    def _do_RunSyncChecks(self, step: RunSyncChecks) -> smoke_mod.SmokeReport:
        release, package = self._get(step.release), self._get(step.package)
        outputs = self._terraform_outputs(step.workdir)
        if not outputs:  # the function exists, but was not applied by Terraform from this project
            raise self._not_deployed(step.sandbox is not None, self.stage.config.region,
                                     f"no Terraform outputs in {step.workdir} to check the release against "
                                     "(never applied from this project)",
                                     then="orch sync then checks each release")
        applied = _Outputs({**outputs, "function_version": release.version})
        deployed = self._deployed(step.workdir, applied, step.sandbox, self._tfvars(step.workdir, applied),
                                  package_sha256=package.sha256_hex)
        aws = self._aws(step.sandbox, self.stage.config.region)
        bounded = getattr(aws, "with_config", None)
        if callable(bounded):
            aws = bounded(smoke_mod.CONTROL_CLIENT_CONFIG)
        report = self.tools.verify(self.stage, deployed, aws=aws, purpose="sync")
        self._show_smoke(report)
        return report

    def _terraform_outputs(self, workdir: Path) -> dict[str, Any]:
        """`terraform output` of `workdir` (read only: what Terraform last applied), read once
        per command."""
        if workdir not in self._outputs:
            self._outputs[workdir] = dict(self.tools.terraform(workdir).output() or {})
        return self._outputs[workdir]

    def _do_RecordSync(self, step: RecordSync) -> releases_mod.Release | None:
        release, package = self._get(step.release), self._get(step.package)
        report, reverted = self._get(step.smoke), self._get(step.reverted)
        outputs = self._terraform_outputs(step.workdir)
        if not outputs:
            self.reporter.note(f"the sync is not recorded: no Terraform outputs in {step.workdir} (the stage was "
                               "never applied from this project), so there is nothing a rollback could apply")
            return None
        deployment = str(outputs.get("deployment_id"))
        records = self._releases(step.location, step.sandbox)
        info = self._get(step.sandbox)
        epoch = getattr(info, "epoch", None)
        tfvars = self._last_applied_tfvars(records, step.workdir, deployment, epoch)
        reason = ""
        if report is not None and not report.passed:
            back = (f"the alias was moved back to version {reverted.previous_version}" if reverted is not None
                    else "the alias was not moved back")
            reason = f"{releases_mod.failure_reason(report)}; {back} by orch sync"
        record = releases_mod.Release(
            id=releases_mod.new_id("sync", package.sha256_hex),
            stage=self.stage.name,
            target="sandbox" if info is not None else "aws",
            kind="sync",
            time=releases_mod.now_iso(),
            package_sha256=package.sha256_hex,
            function_version=str(release.version),
            published_version=str(release.version),
            deployment_id=deployment,
            passed=None if report is None else report.passed,
            smoke=None if report is None else report.as_dict(),
            tfvars=tfvars,
            smoke_settings=self.stage.config.smoke.model_dump(by_alias=True, mode="json"),
            sandbox_epoch=epoch,
            reason=reason,
        )
        records.write(record)
        self.reporter.note(f"recorded release {record.id} in {step.location.describe()}")
        return record

    def _last_applied_tfvars(self, records: releases_mod.Releases, workdir: Path, deployment: str,
                             epoch: str | None) -> dict[str, Any]:
        """The tfvars of Terraform's last run: those of the newest record of the deployment
        Terraform's outputs name (in the sandbox, of this sandbox run), which the apply or
        rollback that made it recorded and a sync since carried on; else (no such record)
        the working folder's terraform.tfvars.json, else {}."""
        for record in records:
            same_run = epoch is None or record.sandbox_epoch == epoch
            if record.deployment_id == deployment and record.tfvars and same_run:
                return dict(record.tfvars)
        try:
            return json.loads((workdir / render_mod.TFVARS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _do_RevertAlias(self, step: RevertAlias) -> Release:
        release = self._get(step.release)
        self._aws(step.sandbox, step.region).update_alias(step.function_name, step.alias, release.previous_version)
        self.reporter.note(f"alias {step.alias!r} of {step.function_name}: version {release.version} -> "
                           f"{release.previous_version} (back to what it served before the sync)")
        return release

    def _rollback_vars_text(self, workdir: Path) -> str:
        from orch.planner import ROLLBACK_VARS

        return (workdir / ROLLBACK_VARS).read_text(encoding="utf-8")

    def _do_RecordRelease(self, step: RecordRelease) -> releases_mod.Release:
        applied = self._applied(step.applied)
        outputs = dict(applied.outputs)
        report = self._get(step.smoke)
        target = self._get(step.rollback_to)
        replaced = self._get(step.replaces)
        if step.kind == "rollback":
            tfvars = json.loads(self._rollback_vars_text(step.workdir))
            package = target.package_sha256
            failed = replaced is not None and replaced.passed is False
            reason = replaced.reason if failed else "rolled back by hand (orch rollback)"
        else:
            tfvars = self._tfvars(step.workdir, applied)
            package = smoke_mod.sha256_hex_of(tfvars["function"]["package"]["source_code_hash"]) or ""
            reason = releases_mod.failure_reason(report) if report is not None and not report.passed else ""
        info = self._get(step.sandbox)
        release = releases_mod.Release(
            id=releases_mod.new_id(step.kind, package),
            stage=self.stage.name,
            target="sandbox" if info is not None else "aws",
            kind=step.kind,
            time=releases_mod.now_iso(),
            package_sha256=package,
            function_version=str(outputs.get("function_version")),
            published_version=str(outputs.get("published_version") or outputs.get("function_version")),
            deployment_id=str(outputs.get("deployment_id")),
            passed=None if report is None else report.passed,
            smoke=None if report is None else report.as_dict(),
            tfvars=tfvars,
            smoke_settings=(target.smoke_settings if target is not None and step.kind == "rollback"
                            else self.stage.config.smoke.model_dump(by_alias=True, mode="json")),
            sandbox_epoch=getattr(info, "epoch", None),
            rolled_back_from=replaced.id if replaced is not None else None,
            reason=reason,
            promotion=self._get(step.promotion),
        )
        releases = self._releases(step.location, step.sandbox)
        releases.write(release)
        self.reporter.note(f"recorded release {release.id} in {step.location.describe()}")
        return release

    def _do_FindRollbackTarget(self, step: FindRollbackTarget) -> releases_mod.Release | None:
        current = self._get(step.current)
        releases = self._releases(step.location, step.sandbox)
        info = self._get(step.sandbox)
        epoch = getattr(info, "epoch", None)
        if current is None:
            if step.by_hand:
                sandbox = step.sandbox is not None
                if not self.tools.terraform(facts_mod.workdir_of(self.stage, step.location.target)).output():
                    raise self._not_deployed(sandbox, self.stage.config.region,
                                             f"no release records in {step.location.describe()} and no Terraform "
                                             "outputs (never applied, or destroyed)",
                                             then="orch rollback then has releases to go back to")
                raise ConfigError(f"stage {self.stage.name!r} has no release records in {step.location.describe()}: "
                                  "nothing to roll back.", hint="orch rolls back only releases it recorded.")
            return None
        aws = self._aws(step.sandbox, self.stage.config.region)
        if step.to_version is not None:
            candidates = [r for r in releases if r.function_version == step.to_version
                          and (epoch is None or r.sandbox_epoch == epoch)]
            candidates.sort(key=lambda r: r.passed is not True)  # stable: newest passing first
            if not candidates:
                known = sorted({r.function_version for r in releases if epoch is None or r.sandbox_epoch == epoch},
                               key=lambda v: int(v) if v.isdigit() else 0)
                raise ConfigError(f"--to {step.to_version}: no release of stage {self.stage.name!r} served version "
                                  f"{step.to_version} (recorded versions: {', '.join(known) or 'none'}).")
        else:
            candidates = list(releases.rollback_candidates(exclude=current.id, epoch=epoch))
        for candidate in candidates:
            same = (candidate.function_version, candidate.deployment_id) == (current.function_version,
                                                                              current.deployment_id)
            if same and step.to_version is None:
                self.reporter.note(f"the last good release ({candidate.id}) serves {candidate.short} too: "
                                   "the release is not what fails, so there is nothing to roll back to")
                break
            problem = self._version_problem(aws, current, candidate)
            if problem is None:
                if candidate.passed is not True:
                    self.reporter.note(f"WARNING: release {candidate.id} never passed its smoke checks")
                self.reporter.note(f"rolling back to {candidate.short}, released {candidate.time} ({candidate.id})")
                return candidate
            self.reporter.note(f"cannot roll back to release {candidate.id}: {problem}")
        if step.by_hand:
            raise ConfigError(f"stage {self.stage.name!r} has no earlier release that passed its smoke checks "
                              f"to roll back to (records in {step.location.describe()}).")
        self.reporter.note(f"stage {self.stage.name!r} has no earlier release that passed its smoke checks: "
                           "nothing to roll back to, the release stays")
        return None

    def _version_problem(self, aws: Any, current: releases_mod.Release, candidate: releases_mod.Release) -> str | None:
        """Why the stage's function cannot serve `candidate` again (None: it can): its version
        must still exist and run the package the release recorded."""
        name = (current.tfvars.get("function") or {}).get("name")
        try:
            config = aws.call("lambda", "get_function_configuration", f"reading {name}:{candidate.function_version}",
                              FunctionName=name, Qualifier=candidate.function_version)
        except AwsError as exc:
            return exc.message
        got = smoke_mod.sha256_hex_of(config.get("CodeSha256"))
        if got != candidate.package_sha256:
            return (f"version {candidate.function_version} now runs package {str(got)[:12]}…, not "
                    f"{candidate.package_sha256[:12]}…")
        return None

    def _do_WriteRollbackVars(self, step: WriteRollbackVars) -> Path:
        current, target = self._get(step.current), self._get(step.target)
        values = rollback_tfvars(current.tfvars, target.tfvars, target.function_version)
        render_mod.write({step.path.name: json.dumps(values, indent=2, ensure_ascii=False) + "\n"}, step.path.parent)
        return step.path

    def _do_ConcludeRelease(self, step: ConcludeRelease) -> releases_mod.Verdict:
        report, release = self._get(step.smoke), self._get(step.release)
        target, recheck, rollback = self._get(step.rollback_to), self._get(step.recheck), self._get(step.rollback)
        if step.smoke is None and recheck is None:
            status = "unchecked"
        elif report is not None and report.passed:
            status = "passed"
        elif target is None:
            status = "failed"
        else:
            status = "rolled_back" if recheck is not None and recheck.passed else "rollback_failed"
        reason = ""
        if report is not None and not report.passed:
            reason = releases_mod.failure_reason(report)
        elif release is not None and rollback is not None:
            reason = rollback.reason
        verdict = releases_mod.Verdict(status, step.stage, step.target, release, report, target, rollback, recheck,
                                       reason)
        self.reporter.summary(verdict.message())
        return verdict


@dataclass(frozen=True)
class _Outputs:
    """Terraform's root outputs where a Terraform result is expected (RunSyncChecks)."""

    outputs: dict[str, Any]


def rollback_tfvars(current: dict[str, Any], target: dict[str, Any], version: str) -> dict[str, Any]:
    """A rollback's tfvars: `current` (what is applied) with the alias pinned to `version` and
    the API and stage settings of `target` (the release served again). The function's own
    values stay the current ones, so Terraform changes no function and publishes nothing."""
    function = {**current["function"], "alias_version": str(version)}
    return {**current, "function": function, "api": target["api"], "stage": target["stage"]}


class DisplayExecutor:
    """Prints a DeployPlan for people (--dry-run) and runs nothing: one numbered line per step
    in plain words, with only the inputs that say something the title does not (no empty or
    unset values, no data-flow bookkeeping), the condition it runs under, and the name of the
    value it stores when a later condition refers to it."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def execute(self, plan: DeployPlan) -> list[str]:
        """Print the plan (through the reporter's display) and return its lines."""
        referenced = {ref for step in (*plan.steps, *plan.cleanup) for ref in _refs(getattr(step, "when", None))}
        lines = [f"orch {plan.command} {plan.stage} ({plan.target}) would run {len(plan.steps)} steps:"]
        for index, step in enumerate(plan.steps, 1):
            lines.append(f"{index:>3}. {describe_step(step, referenced)}")
        for step in plan.cleanup:
            lines.append(f"  and always: {describe_step(step, referenced)}")
        for note in plan.notes:
            lines.append(f"  note: {note}")
        lines.append("nothing was changed (--dry-run)")
        for line in lines:
            self.reporter.display(line)
        return lines


# How --dry-run names a step's input ("" : the value alone); inputs not named here are shown as
# "<name with spaces> <value>". Inputs in _UNSHOWN repeat what the plan's header or the title says.
_LABELS = {
    "workdir": "in", "source_dir": "from", "store_dir": "into", "plan_file": "saved plan",
    "var_file": "values from", "location": "records in", "path": "at", "prefix": "key prefix",
    "function_name": "function", "to_version": "to version", "lock_id": "lock", "run_id": "run",
    "run_ids": "runs", "types": "guards", "description": "", "timeout": "waits at most",
    "by_hand": "by hand", "skip": "--skip-promotion-check",
}
_UNSHOWN = frozenset({"project_dir", "stage_name", "stage", "target", "text", "apply_hint", "refusal", "override",
                      "kind", "purpose"})


def describe_step(step: Step, referenced: frozenset[str] | set[str] = frozenset()) -> str:
    """One step in plain words: its title, its informative inputs after it (comma-separated),
    `only if ...` when it has a condition, and `-> ${name}` when a condition in `referenced`
    reads the value it stores; paths relative to the current folder when inside it."""
    title = step.title()
    details = [text for name, value in step.inputs().items()
               if (text := _detail(name, value)) and _plain(value) not in title and str(value) not in title]
    line = ", ".join((title, *details))
    when = getattr(step, "when", None)
    if when is not None:
        line += f", only {when.describe()}"
    output = getattr(step, "output", None)
    if output and output in referenced:
        line += f" -> ${{{output}}}"
    return line.replace(f"{Path.cwd()}/", "")  # paths in titles too, relative to the current folder


def _detail(name: str, value: Any) -> str:
    """`label value` for one input, or "" when it carries nothing worth showing."""
    if name in _UNSHOWN or value is None or value is False or value == "" or value == ():
        return ""
    if isinstance(value, Ref) or (isinstance(value, tuple) and all(isinstance(v, Ref) for v in value)):
        return ""  # data flow between steps: the conditions name what matters
    label = _LABELS.get(name, name.replace("_", " "))
    if value is True:
        return label
    if name == "timeout" and isinstance(value, int | float):
        return f"{label} {value:g} s"
    return f"{label} {_plain(value)}".strip()


def _plain(value: Any) -> str:
    """A value as a person reads it: paths relative to the current folder when inside it,
    tuples as lists, objects by their describe()."""
    if isinstance(value, tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, Path):
        try:
            return str(value.relative_to(Path.cwd()))
        except ValueError:
            return str(value)
    if hasattr(value, "describe"):
        return _plain(value.describe()) if not isinstance(value, str) else value
    return str(value)


def _refs(obj: Any) -> set[str]:
    """The names of every Ref inside a condition (nested conditions and tuples too)."""
    if isinstance(obj, Ref):
        return {obj.name}
    if isinstance(obj, tuple):
        return set().union(*(_refs(v) for v in obj)) if obj else set()
    if obj is not None and hasattr(obj, "__dataclass_fields__"):
        return set().union(*(_refs(getattr(obj, f)) for f in obj.__dataclass_fields__)) or set()
    return set()


def _hex(code_sha256_b64: str) -> str:
    import base64
    import binascii

    try:
        return base64.b64decode(code_sha256_b64).hex()
    except (binascii.Error, ValueError):
        return code_sha256_b64
