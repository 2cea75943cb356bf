"""The pure planner: (stage config, target, facts) -> the steps one command will take.

It decides the order (configuration checks and questions before any work), what to start,
what to write, whether Terraform runs once (plan and apply together) or plans to a file for
a person to confirm, and what depends on Terraform's own plan (nothing to apply; a removed
route needs a redeploy) as step conditions the executor checks and a dry run prints. It
performs no I/O and calls nothing outside this process: facts come in, steps go out.
"""

from __future__ import annotations

from dataclasses import dataclass

from orch import releases
from orch.config import Stage
from orch.errors import (
    NEVER_APPLIED,
    SANDBOX_NOT_RUNNING,
    SANDBOX_RESTARTED,
    Aborted,
    ConfigError,
    NotDeployedError,
    TerraformError,
)
from orch.facts import Facts
from orch.steps import (
    ApplySavedPlan,
    BuildPackage,
    Changed,
    ChangedSinceMark,
    CheckCredentials,
    CheckHandler,
    CheckPromotion,
    CodeDiffers,
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
    HasImports,
    Init,
    MarkSandboxChanged,
    PackageNeedsS3,
    PlanHasChanges,
    PlanRemovesRoutes,
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
    RemoveFile,
    RenderFiles,
    RevertAlias,
    RunSmokeChecks,
    RunSyncChecks,
    SettleRuns,
    SmokeFailed,
    StartSandbox,
    Step,
    Stored,
    Succeeded,
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

# A removed route: Terraform creates the new API deployment (create_before_destroy) before it
# deletes the method, so that snapshot still serves the route; replacing it once more fixes that.
DEPLOYMENT_ADDRESS = "module.stack.module.stage.aws_api_gateway_deployment.this"
REDEPLOY = "redeploy the API without the removed routes"
CONFIRM_PLAN = "orch-confirm.tfplan"
PLAN_TMP = "orch-plan.tfplan"
RUN_WAIT_TIMEOUT = 900.0
"""Seconds orch waits for a Terraform run an interrupted orch left going (it holds the lock)."""
ADOPT = "adopt them first, so that destroy removes them too"
# What a protected stage must not lose without --allow-destroy: its API, its API stage (the
# invoke URL) and its function. Replacing one changes ids and URLs and drops what AWS holds.
GUARDED_TYPES = ("aws_api_gateway_rest_api", "aws_api_gateway_stage", "aws_lambda_function")
ROLLBACK_VARS = "orch-rollback.tfvars.json"
ROLL_BACK = "roll the stage back"
REDEPLOY_ROLLED_BACK = "redeploy the API without the routes the rollback removed"


@dataclass(frozen=True)
class ReleaseOptions:
    """How `orch apply` verifies what it released: `smoke` (False: --no-smoke), the release
    records of the `promote_from` stage on the same target (`promotion_source`, an
    orch.releases.Location) and `skip_promotion_check`."""

    smoke: bool = True
    promotion_source: releases.Location | None = None
    skip_promotion_check: bool = False


def plan_apply(stage: Stage, facts: Facts, options: ReleaseOptions | None = None) -> DeployPlan:
    """`orch apply`: one Terraform run when nobody must confirm; else plan, ask, apply that plan;
    then the smoke checks, the release record and, when they failed, the rollback.

    Raises Aborted (before any work) for a protected stage with neither a terminal nor --yes,
    TerraformError for a saved plan without a working folder.
    """
    options = options or ReleaseOptions()
    protected = stage.config.protected and not facts.yes
    if protected:
        _refuse_without_terminal(stage, facts, "apply to")
    # A protected stage's plan is read before it is applied (also with --yes) unless --allow-destroy.
    guarded = stage.config.protected and not facts.allow_destroy
    steps: list[Step] = []
    cleanup: list[Step] = []
    if facts.saved_plan is not None:
        if not (facts.workdir / "main.tf").is_file():
            raise TerraformError(
                f"stage {stage.name!r} has no working folder yet ({facts.workdir}).",
                hint="Make the plan with `orch plan STAGE --out FILE` first.",
            )
        steps += _connect(stage, facts)
        steps += _settle(facts)
        steps += _init(facts)
        plan = ReadPlan(facts.workdir, facts.saved_plan)
        steps.append(plan)
        steps += _guard(stage, Ref(plan.output), guarded)
        steps += _promotion(stage, facts, options, Ref(plan.output))
        if protected:
            steps.append(_confirm_apply(stage, Ref(plan.output)))
        apply: Step = ApplySavedPlan(facts.workdir, facts.saved_plan, when=PlanHasChanges(Ref(plan.output)))
        steps.append(apply)
        removes = PlanRemovesRoutes(Ref(plan.output))
    else:
        steps.append(_check_handler(stage))
        steps += _connect(stage, facts)
        steps += _settle(facts)
        steps += _prepare(stage, facts, after_package=_promotion(stage, facts, options, Ref("package")))
        steps += _adopt(facts)
        if protected or guarded:
            plan_file = facts.workdir / CONFIRM_PLAN
            plan = ReadPlan(facts.workdir, plan_file)
            steps += [TerraformPlan(facts.workdir, plan_file), plan]
            steps += _guard(stage, Ref(plan.output), guarded)
            if protected:
                steps.append(_confirm_apply(stage, Ref(plan.output)))
            apply = ApplySavedPlan(facts.workdir, plan_file, when=PlanHasChanges(Ref(plan.output)))
            steps.append(apply)
            removes = PlanRemovesRoutes(Ref(plan.output))
            cleanup.append(RemoveFile(plan_file))
        else:
            apply = TerraformApply(facts.workdir)
            steps.append(apply)
            removes = PlanRemovesRoutes(Ref(apply.output))
    redeploy = TerraformApply(facts.workdir, replace=(DEPLOYMENT_ADDRESS,), purpose=REDEPLOY, output="redeploy",
                              when=removes)
    steps.append(redeploy)
    verify, after = _verify_release(stage, facts, options)
    steps += verify
    cleanup += after
    if facts.runs.any:
        cleanup.append(SettleRuns(facts.workdir, when=Succeeded()))
    return DeployPlan("apply", stage.name, facts.target, tuple(steps), tuple(cleanup))


def plan_plan(stage: Stage, facts: Facts) -> DeployPlan:
    """`orch plan`: Terraform's human plan streamed, saved (`--out` or a temporary file), read as JSON."""
    plan_file = facts.plan_out or facts.workdir / PLAN_TMP
    steps: list[Step] = [_check_handler(stage)]
    steps += _connect(stage, facts)
    steps += _settle(facts)
    steps.append(_read_releases(stage, facts))
    steps += _prepare(stage, facts)
    steps += _adopt(facts)
    steps += [TerraformPlan(facts.workdir, plan_file), ReadPlan(facts.workdir, plan_file)]
    cleanup = () if facts.plan_out else (RemoveFile(plan_file),)
    return DeployPlan("plan", stage.name, facts.target, tuple(steps), cleanup)


def plan_destroy(stage: Stage, facts: Facts) -> DeployPlan:
    """`orch destroy`: ask first (unless --yes), then destroy; in a sandbox that lost the stage,
    only set the stale state aside. Raises Aborted without a terminal and without --yes."""
    if not facts.yes:
        _refuse_without_terminal(stage, facts, "destroy")
    where = " in the sandbox" if facts.on_sandbox else ""
    steps: list[Step] = []
    if not facts.yes:
        steps.append(Confirm(f"Destroy every resource of stage {stage.name!r}{where}?",
                             f"nothing destroyed in stage {stage.name!r}."))
    local_state = stage.config.backend.type == "local"
    if facts.on_sandbox and (not facts.sandbox_running or facts.sandbox_restarted):
        notes = [f"nothing to destroy: the sandbox that held stage {stage.name!r} is gone, and its resources with it"]
        if facts.state_present:
            steps.append(ForgetLostState(facts.workdir, "its sandbox is gone"))
        return DeployPlan("destroy", stage.name, facts.target, tuple(steps), (), tuple(notes))
    if local_state and not facts.state_present:
        return DeployPlan("destroy", stage.name, facts.target, tuple(steps), (),
                          (f"nothing to destroy: stage {stage.name!r} has no state in {facts.workdir}",))
    steps += _connect(stage, facts)
    steps += _settle(facts)
    steps += _prepare(stage, facts)
    adopt = _adopt(facts)
    if adopt:  # import blocks are not read by `terraform destroy`: adopt with a targeted apply first
        steps += adopt
        steps.append(TerraformApply(facts.workdir, purpose=ADOPT, output="adopt", targets_from=Ref("adoption"),
                                    when=HasImports(Ref("adoption"))))
    steps.append(TerraformDestroy(facts.workdir))
    cleanup: list[Step] = []
    if facts.on_sandbox:
        cleanup.append(MarkSandboxChanged(stage.project_dir, when=Changed((Ref("adopt"), Ref("destroy")))))
    if facts.runs.any:
        cleanup.append(SettleRuns(facts.workdir, when=Succeeded()))
    return DeployPlan("destroy", stage.name, facts.target, tuple(steps), tuple(cleanup))


def plan_unlock(stage: Stage, facts: Facts, lock_id: str) -> DeployPlan:
    """`orch unlock STAGE LOCK_ID`: read the lock (refused when it is another lock, or a process
    of this project still holds it), ask (unless --yes), `terraform force-unlock`. Raises
    Aborted without a terminal and without --yes."""
    if not facts.yes:
        _refuse_without_terminal(stage, facts, "force open the state lock of")
    steps: list[Step] = []
    s3 = stage.config.backend.type == "s3"
    if s3:  # the lock lives in the backend: connect, and initialise the folder force-unlock runs in
        steps += _connect(stage, facts)
        steps += _prepare(stage, facts)
    steps.append(ReadLock(facts.workdir, lock_id, sandbox=Ref("sandbox") if facts.on_sandbox and s3 else None))
    if not facts.yes:
        steps.append(Confirm(f"Force open the state lock of stage {stage.name!r} ({{about}})?",
                             f"the state lock of stage {stage.name!r} was left as it is.", about=Ref("lock")))
    steps.append(ForceUnlock(facts.workdir, lock_id))
    return DeployPlan("unlock", stage.name, facts.target, tuple(steps))


def plan_sync(stage: Stage, facts: Facts, *, smoke: bool = True) -> DeployPlan:
    """`orch sync`: a code-only release without Terraform, as `sam sync` and `sls deploy
    function` do: package, and only when the package is not what the stage's alias serves,
    update the function's code, publish a version and move the alias; then the stage's
    smoke checks (unless `smoke` is False or the stage sets `smoke.enabled: false`), which
    move the alias back when they fail; then a release record of kind "sync" where apply's go
    (orch.releases.location_of), so `orch rollback` and the promotion guard count it. Nothing
    released, nothing recorded. Terraform's state is not edited, so the next `orch plan`
    shows the code as a pending change and `orch apply` converges.

    Raises ConfigError (exit 3) for a protected stage (nothing is released without its plan
    and a question), NotDeployedError (exit 8) when the stage is not deployed in the running
    sandbox (on AWS the executor finds that out, at ReadLiveCode).
    """
    where = " --sandbox" if facts.on_sandbox else ""
    if stage.config.protected:
        raise ConfigError(
            f"stage {stage.name!r} is protected (protected: true): orch sync releases code without Terraform "
            "and without asking, so it is refused there.",
            hint=f"Deploy it with `orch apply {stage.name}{where}`, which shows the plan and asks first.",
        )
    gone = _not_in_sandbox(facts)
    if gone is not None:
        raise NotDeployedError(stage.name, sandbox=True, why=gone,
                               then="orch sync then releases code changes in seconds")
    fn = stage.config.function
    region = stage.config.region
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    steps: list[Step] = [_check_handler(stage)]
    steps.append(UseSandbox(stage.project_dir) if facts.on_sandbox else CheckCredentials(region))
    package = BuildPackage(stage.source_dir, fn.runtime, stage.project_dir / ".orch" / "packages", stage.function_name)
    live = ReadLiveCode(stage.function_name, stage.stage_name, region, sandbox=sandbox)
    differs = CodeDiffers(Ref(package.output), Ref(live.output))
    upload = UploadPackage(
        Ref(package.output), stage.config.artifacts.bucket, stage.config.artifacts.prefix, facts.target,
        sandbox=sandbox, when=PackageNeedsS3(Ref(package.output)),
    )
    code = UpdateFunctionCode(stage.function_name, region, Ref(package.output), upload=Ref(upload.output),
                              sandbox=sandbox, when=differs)
    version = PublishVersion(stage.function_name, region, Ref(code.output), sandbox=sandbox, when=differs)
    release = UpdateAlias(stage.function_name, stage.stage_name, region, Ref(version.output), Ref(live.output),
                          Ref(code.output), sandbox=sandbox, when=differs)
    steps += [package, live, upload, code, version, release]
    cleanup: tuple[Step, ...] = ()
    checked = smoke and stage.config.smoke.enabled
    if checked:
        steps += _sync_checks(stage, facts, Ref(release.output), Ref(package.output))
    steps.append(RecordSync(releases.location_of(stage, facts.target), facts.workdir, Ref(release.output),
                            Ref(package.output), smoke=Ref("smoke") if checked else None,
                            reverted=Ref("reverted") if checked else None, sandbox=sandbox,
                            when=Stored(Ref(release.output))))
    if facts.on_sandbox:  # in cleanup: also after a sync that failed half-way
        cleanup = (MarkSandboxChanged(stage.project_dir, when=ChangedSinceMark(
            (Ref(release.output), Ref("reverted")), Ref("marked"))),)
    return DeployPlan("sync", stage.name, facts.target, tuple(steps), cleanup)


def _sync_checks(stage: Stage, facts: Facts, release: Ref, package: Ref) -> list[Step]:
    """After a sync that released something: tell the gateway, run the stage's smoke checks
    and, when they fail, move the alias back to the version it served before (no Terraform:
    sync never edits state). Deployer.sync turns a failed report into exit 6."""
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    steps: list[Step] = []
    if facts.on_sandbox:  # before the checks: the gateway must serve what was released
        steps.append(MarkSandboxChanged(stage.project_dir, when=Changed((release,)), output="marked"))
    smoke = RunSyncChecks(facts.workdir, release, package, sandbox, when=Stored(release))
    steps.append(smoke)
    revert = RevertAlias(stage.function_name, stage.stage_name, stage.config.region, release, sandbox,
                         when=SmokeFailed(Ref(smoke.output)))
    steps.append(revert)
    if facts.on_sandbox:
        steps.append(MarkSandboxChanged(stage.project_dir, when=Stored(Ref(revert.output)), output="marked"))
    return steps


# ---------------------------------------------------------------------------- pieces


def _refuse_without_terminal(stage: Stage, facts: Facts, verb: str) -> None:
    if not facts.interactive:
        what = "protected stage" if verb == "apply to" else "stage"
        raise Aborted(
            f"refusing to {verb} {what} {stage.name!r} without confirmation: there is no terminal to ask on.",
            hint="Pass --yes to confirm from a script or CI.",
        )


def _confirm_apply(stage: Stage, plan: Ref) -> Confirm:
    return Confirm(
        f"Apply {{changes}} to protected stage {stage.name!r}?",
        f"nothing applied to stage {stage.name!r}.",
        plan=plan,
        when=PlanHasChanges(plan),
    )


def _guard(stage: Stage, plan: Ref, guarded: bool) -> list[Step]:
    return [RefuseDestroying(plan, stage.name, GUARDED_TYPES)] if guarded else []


def _check_handler(stage: Stage) -> CheckHandler:
    fn = stage.config.function
    return CheckHandler(stage.source_dir, fn.runtime, fn.handler)


def _fresh(facts: Facts) -> bool:
    """The stage starts clean in a sandbox that was (re)started: its old resources are gone."""
    return facts.on_sandbox and (
        not facts.sandbox_running or facts.sandbox is None or facts.recorded_epoch != facts.sandbox.epoch)


def _settle(facts: Facts) -> list[Step]:
    """What earlier, interrupted orch processes left running: wait for a Terraform run still
    going (it holds the state lock), end providers a killed Terraform left behind."""
    steps: list[Step] = [WaitForRun(facts.workdir, r.run_id, r.describe(), RUN_WAIT_TIMEOUT)
                         for r in facts.runs.running]
    if facts.runs.stray:
        steps.append(EndLeftovers(facts.workdir, tuple(r.run_id for r in facts.runs.stray)))
    return steps


def _adopt(facts: Facts) -> list[Step]:
    """After a state-changing run that did not finish well (or one still running): find what
    it left in AWS outside the state and write import blocks for it (orch.adopt)."""
    if not (facts.runs.unfinished or facts.runs.running) or _fresh(facts):
        return []
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    return [FindOrphans(facts.workdir, sandbox=sandbox), WriteImports(facts.workdir, Ref("adoption"))]


def _connect(stage: Stage, facts: Facts) -> list[Step]:
    if not facts.on_sandbox:
        return [CheckCredentials(stage.config.region)]
    steps: list[Step] = []
    if facts.sandbox_running:
        steps.append(UseSandbox(stage.project_dir))
    else:
        steps.append(StartSandbox(stage.project_dir, stage.config.region))
    fresh = _fresh(facts)
    if facts.state_present and fresh:
        steps.append(ForgetLostState(facts.workdir, "the sandbox was restarted"))
    if fresh:
        steps.append(RecordSandboxEpoch(facts.workdir, Ref("sandbox")))
    backend = stage.config.backend
    if backend.type == "s3" and backend.bucket:
        steps.append(EnsureBucket(backend.bucket, backend.region or stage.config.region, "state", Ref("sandbox")))
    domain = stage.config.domain
    if domain is not None and domain.hosted_zone is not None:
        steps.append(EnsureHostedZone(domain.hosted_zone, Ref("sandbox")))
    return steps


def _prepare(stage: Stage, facts: Facts, after_package: list[Step] | None = None) -> list[Step]:
    steps: list[Step] = []
    config = facts.provider_config
    if config is not None and not facts.provider_config_written:
        steps.append(WriteProviderConfig(config.path, config.text, config.mirror))
    fn = stage.config.function
    package = BuildPackage(stage.source_dir, fn.runtime, stage.project_dir / ".orch" / "packages",
                           stage.function_name)
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    upload = UploadPackage(
        Ref(package.output), stage.config.artifacts.bucket, stage.config.artifacts.prefix, facts.target,
        sandbox=sandbox, when=PackageNeedsS3(Ref(package.output)),
    )
    steps += [package, *(after_package or ()), upload]
    steps.append(RenderFiles(stage.project_dir, stage.name, facts.workdir, Ref(package.output),
                             upload=Ref(upload.output), sandbox=sandbox))
    steps += _init(facts)
    return steps


def _init(facts: Facts) -> list[Step]:
    return [Init(facts.workdir, facts.init_reason)] if facts.init_reason else []


# ---------------------------------------------------------------------------- verified releases


def plan_rollback(stage: Stage, facts: Facts, to_version: str | None = None) -> DeployPlan:
    """`orch rollback`: the stage back to its last good release (or the one serving
    `to_version`) through Terraform, checked again and recorded. Raises Aborted for a
    protected stage with neither a terminal nor --yes; NotDeployedError, before anything
    starts, when the stage is not deployed in the running sandbox or (local state) has no
    state on AWS (the executor finds the S3-backend case: no records and no outputs)."""
    gone = _not_in_sandbox(facts)
    if gone is None and not facts.on_sandbox and stage.config.backend.type == "local" and not facts.state_present:
        gone = NEVER_APPLIED
    if gone is not None:
        raise NotDeployedError(stage.name, sandbox=facts.on_sandbox, why=gone, region=stage.config.region,
                               then="orch rollback then has releases to go back to")
    steps: list[Step] = []
    if stage.config.protected and not facts.yes:
        _refuse_without_terminal(stage, facts, "apply to")
        steps.append(Confirm(f"Roll protected stage {stage.name!r} back?",
                             f"stage {stage.name!r} was not rolled back."))
    steps += _connect(stage, facts)
    steps += _prepare(stage, facts)
    latest = _read_releases(stage, facts)
    steps.append(latest)
    rollback, cleanup = _rollback(stage, facts, Ref(latest.output), to_version=to_version, by_hand=True)
    steps += rollback
    if facts.on_sandbox:
        cleanup.append(MarkSandboxChanged(stage.project_dir, when=ChangedSinceMark(
            (Ref("rollback"), Ref("rollback_redeploy")), Ref("marked"))))
    steps.append(ConcludeRelease(stage.name, facts.target, release=Ref(latest.output), rollback_to=Ref("rollback_to"),
                                 recheck=Ref("recheck"), rollback=Ref("rollback_release")))
    return DeployPlan("rollback", stage.name, facts.target, tuple(steps), tuple(cleanup))


def _not_in_sandbox(facts: Facts) -> str | None:
    """Why the stage is not deployed in the sandbox (None: it may be; also on AWS): the
    sandbox is not running, was restarted since the stage was applied, or never held it."""
    if not facts.on_sandbox:
        return None
    if not facts.sandbox_running:
        return SANDBOX_NOT_RUNNING
    if facts.sandbox_restarted:
        return SANDBOX_RESTARTED
    if facts.recorded_epoch is None:
        return NEVER_APPLIED
    return None


def _apply_hint(stage: Stage, facts: Facts) -> str:
    return f"orch apply {stage.name}{' --sandbox' if facts.on_sandbox else ''}"


def _read_releases(stage: Stage, facts: Facts) -> ReadReleases:
    return ReadReleases(releases.location_of(stage, facts.target), _apply_hint(stage, facts),
                        sandbox=Ref("sandbox") if facts.on_sandbox else None)


def _promotion(stage: Stage, facts: Facts, options: ReleaseOptions, package: Ref) -> list[Step]:
    if options.promotion_source is None:
        return []
    return [CheckPromotion(options.promotion_source, package, options.skip_promotion_check,
                           sandbox=Ref("sandbox") if facts.on_sandbox else None)]


def _verify_release(stage: Stage, facts: Facts, options: ReleaseOptions) -> tuple[list[Step], list[Step]]:
    """After the apply: tell the gateway, run the checks, record the release; when the checks
    failed, roll back (see _rollback); conclude. Returns (steps, cleanup steps)."""
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    applied = (Ref("redeploy"), Ref("apply"), Ref("plan"))
    steps: list[Step] = []
    cleanup: list[Step] = []
    if facts.on_sandbox:  # before the checks: the gateway must serve what was applied
        steps.append(MarkSandboxChanged(stage.project_dir, when=Changed((Ref("apply"), Ref("redeploy"))),
                                        output="marked"))
    location = releases.location_of(stage, facts.target)
    promotion = Ref("promotion") if options.promotion_source is not None else None
    if not options.smoke:
        steps.append(RecordRelease(location, "apply", facts.workdir, applied, None, sandbox, promotion))
        steps.append(ConcludeRelease(stage.name, facts.target, release=Ref("release")))
    else:
        steps.append(RunSmokeChecks(facts.workdir, applied, sandbox))
        steps.append(RecordRelease(location, "apply", facts.workdir, applied, Ref("smoke"), sandbox, promotion))
        rollback, cleanup = _rollback(stage, facts, Ref("release"), when=SmokeFailed(Ref("smoke")))
        steps += rollback
        steps.append(ConcludeRelease(stage.name, facts.target, Ref("smoke"), Ref("release"), Ref("rollback_to"),
                                     Ref("recheck"), Ref("rollback_release")))
    if facts.on_sandbox:  # in cleanup: also after an apply that failed half-way
        cleanup.append(MarkSandboxChanged(stage.project_dir, when=ChangedSinceMark(
            (Ref("apply"), Ref("redeploy"), Ref("rollback"), Ref("rollback_redeploy")), Ref("marked"))))
    return steps, cleanup


def _rollback(stage: Stage, facts: Facts, current: Ref, *, when: SmokeFailed | None = None,
              to_version: str | None = None, by_hand: bool = False) -> tuple[list[Step], list[Step]]:
    """Roll back through Terraform: find the target release, write tfvars pinning the alias to
    its version (the function itself unchanged) with its API and stage, apply them (and
    redeploy if that removes routes), tell the gateway, check again, record the rollback."""
    sandbox = Ref("sandbox") if facts.on_sandbox else None
    location = releases.location_of(stage, facts.target)
    found = Stored(Ref("rollback_to"))
    var_file = facts.workdir / ROLLBACK_VARS
    rollback = TerraformApply(facts.workdir, purpose=ROLL_BACK, output="rollback", when=found, var_file=var_file)
    steps: list[Step] = [
        FindRollbackTarget(location, current, to_version, by_hand, sandbox, when=when),
        WriteRollbackVars(var_file, current, Ref("rollback_to"), when=found),
        rollback,
        TerraformApply(facts.workdir, replace=(DEPLOYMENT_ADDRESS,), purpose=REDEPLOY_ROLLED_BACK,
                       output="rollback_redeploy",
                       when=Stored(Ref("rollback"), PlanRemovesRoutes(Ref("rollback"))), var_file=var_file),
    ]
    if facts.on_sandbox:
        steps.append(MarkSandboxChanged(stage.project_dir, when=found, output="marked"))
    applied = (Ref("rollback_redeploy"), Ref("rollback"))
    steps += [
        RunSmokeChecks(facts.workdir, applied, sandbox, rollback_to=Ref("rollback_to"), purpose="rollback",
                       output="recheck", when=found),
        RecordRelease(location, "rollback", facts.workdir, applied, Ref("recheck"), sandbox, replaces=current,
                      rollback_to=Ref("rollback_to"), output="rollback_release", when=found),
    ]
    return steps, [RemoveFile(var_file)]
