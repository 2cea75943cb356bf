"""Deploy steps as data: what orch will do, as frozen values that can be printed, tested and
then carried out.

Each step is a frozen dataclass with explicit inputs (plain values, or `Ref`s to named
values an earlier step stored) and an explicit `output` name; a step may carry a `when`
condition the executor checks against stored values (and the display executor prints),
and `on_failure` steps the executor runs when it fails (for rollback, later). The planner
(orch.planner) builds them; orch.executor runs or displays them. This module does nothing
itself: no I/O, no Terraform, no AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ref:
    """A named value an earlier step stored (its `output`)."""

    name: str

    def __str__(self) -> str:
        return f"${{{self.name}}}"


# ---------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """Something the executor checks against stored values before a step runs."""

    def holds(self, values: dict[str, Any]) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def skipped_because(self, values: dict[str, Any]) -> str:
        """Why the step did not run, in a person's words (the progress line; `describe` is the
        data-flow view --dry-run prints)."""
        return self.because

    because = "not needed this time"


@dataclass(frozen=True)
class PlanHasChanges(Condition):
    """The stored plan (a tfplan.PlanView, or an ApplyResult's plan) would change something."""

    because = "the plan has no changes"

    plan: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        return _plan_of(values[self.plan.name]).has_changes

    def describe(self) -> str:
        return f"if {self.plan} has changes"


@dataclass(frozen=True)
class PlanRemovesRoutes(Condition):
    """The stored plan deleted API methods (routes): the stage must be redeployed without them."""

    because = "no route was removed"

    plan: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        return bool(_plan_of(values[self.plan.name]).removed_methods)

    def describe(self) -> str:
        return f"if {self.plan} removes a route"


@dataclass(frozen=True)
class PackageNeedsS3(Condition):
    """The stored package is over Lambda's 50 MB direct-upload limit."""

    because = "the package is under 50 MB"

    package: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        from orch.package import needs_s3

        return needs_s3(values[self.package.name])

    def describe(self) -> str:
        return f"if {self.package} is over 50 MB"


@dataclass(frozen=True)
class Changed(Condition):
    """Any of the stored Terraform results (ApplyResult) changed deployed state, or a
    Terraform step that changes state failed (it may have changed some of it)."""

    because = "nothing changed"

    results: tuple[Ref, ...]

    def holds(self, values: dict[str, Any]) -> bool:
        failed = values.get(FAILED)
        if failed is not None and getattr(failed, "changes_state", False):
            return True
        return any(values.get(ref.name) is not None and values[ref.name].changed for ref in self.results)

    def describe(self) -> str:
        return "if " + " or ".join(str(r) for r in self.results) + " changed anything (or failed half-way)"


@dataclass(frozen=True)
class CodeDiffers(Condition):
    """The stored package (a PackageResult) is not the code the stored LiveCode serves."""

    because = "the function already runs this code"

    package: Ref
    live: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        return values[self.package.name].sha256_b64 != values[self.live.name].code_sha256

    def describe(self) -> str:
        return f"if {self.package} is not the code {self.live} serves"


@dataclass(frozen=True)
class HasImports(Condition):
    """The stored adoption (orch.adopt.Adoption) found resources to import."""

    because = "nothing to adopt"

    adoption: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        return bool(values[self.adoption.name].imports)

    def describe(self) -> str:
        return f"if {self.adoption} found resources to adopt"


@dataclass(frozen=True)
class Succeeded(Condition):
    """Every step of the command succeeded (checked by cleanup steps)."""

    because = "an earlier step failed or was interrupted"

    def holds(self, values: dict[str, Any]) -> bool:
        return FAILED not in values

    def describe(self) -> str:
        return "if every step succeeded"


FAILED = "failed"  # the executor stores the step that failed under this name


@dataclass(frozen=True)
class ChangedSinceMark(Condition):
    """Deployed state changed after the gateway was last told (no `marked` value stored), or a
    Terraform step that changes state failed (it may have changed some of it)."""

    because = "the gateway already knows, or nothing changed"

    results: tuple[Ref, ...]
    marked: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        failed = values.get(FAILED)
        if failed is not None and getattr(failed, "changes_state", False):
            return True
        return Changed(self.results).holds(values) and self.marked.name not in values

    def describe(self) -> str:
        return f"if {' or '.join(str(r) for r in self.results)} changed anything not yet told (or failed half-way)"


@dataclass(frozen=True)
class SmokeFailed(Condition):
    """The stored smoke report (orch.smoke.SmokeReport) has a failed check."""

    because = "the smoke checks passed"

    smoke: Ref

    def holds(self, values: dict[str, Any]) -> bool:
        report = values.get(self.smoke.name)
        return report is not None and not report.passed

    def describe(self) -> str:
        return f"if the smoke checks {self.smoke} failed"


@dataclass(frozen=True)
class Stored(Condition):
    """An earlier step stored a value (not None) under `value`, and `then` holds (if given)."""

    value: Ref
    then: Condition | None = None

    def holds(self, values: dict[str, Any]) -> bool:
        if values.get(self.value.name) is None:
            return False
        return self.then is None or self.then.holds(values)

    def skipped_because(self, values: dict[str, Any]) -> str:
        if values.get(self.value.name) is None:
            return f"no {self.value.name.replace('_', ' ')} was found"
        return self.then.skipped_because(values) if self.then is not None else self.because

    def describe(self) -> str:
        head = f"if {self.value} was found"
        return head if self.then is None else f"{head} and {self.then.describe().removeprefix('if ')}"


def _plan_of(value: Any) -> Any:
    """A PlanView, whether stored as one or inside an ApplyResult."""
    return value if hasattr(value, "has_changes") else value.plan


# ---------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """Base of every step. A step class may declare `output` (the name of the value it
    stores), `when` (a Condition guarding it) and `on_failure` (steps to run when it fails,
    before its error propagates): the executor reads them with getattr."""

    def title(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def inputs(self) -> dict[str, Any]:
        """The step's own fields (for display), without the bookkeeping ones."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _BOOKKEEPING}


_BOOKKEEPING = frozenset({"output", "when", "on_failure"})


@dataclass(frozen=True)
class CheckHandler(Step):
    """The handler file exists and defines the function (read statically)."""

    source_dir: Path
    runtime: str
    handler: str

    def title(self) -> str:
        return f"check the handler {self.handler} ({self.runtime})"


@dataclass(frozen=True)
class Confirm(Step):
    """Ask the person at the terminal; a no ends the command (exit 130) with `refusal`.

    With `plan`, the question carries the plan's counts (Terraform's `Plan:` line).
    """

    question: str
    refusal: str
    plan: Ref | None = None
    when: Condition | None = None
    about: Ref | None = None  # a stored value whose text() replaces {about} in the question

    def title(self) -> str:
        return "ask for confirmation"


@dataclass(frozen=True)
class CheckCredentials(Step):
    """AWS credentials are available (real AWS only)."""

    region: str

    def title(self) -> str:
        return f"check AWS credentials ({self.region})"


@dataclass(frozen=True)
class StartSandbox(Step):
    """Start the sandbox daemon (emulator + local gateway); stores its SandboxInfo."""

    project_dir: Path
    region: str
    output: str = "sandbox"

    def title(self) -> str:
        return "start the sandbox (AWS emulator + local gateway)"


@dataclass(frozen=True)
class UseSandbox(Step):
    """The sandbox already runs: store its SandboxInfo (read from its state file)."""

    project_dir: Path
    output: str = "sandbox"

    def title(self) -> str:
        return "use the running sandbox"


@dataclass(frozen=True)
class ForgetLostState(Step):
    """The sandbox lost the stage's resources (it was restarted): set the state file aside."""

    workdir: Path
    reason: str

    def title(self) -> str:
        return f"start the stage clean in the sandbox ({self.reason})"


@dataclass(frozen=True)
class RecordSandboxEpoch(Step):
    """Remember which sandbox run the stage's state belongs to (`.sandbox-epoch`)."""

    workdir: Path
    sandbox: Ref

    def title(self) -> str:
        return "record which sandbox run holds the stage"


@dataclass(frozen=True)
class EnsureBucket(Step):
    """Create an S3 bucket in the sandbox's emulator unless it exists."""

    bucket: str
    region: str
    purpose: str
    sandbox: Ref
    when: Condition | None = None

    def title(self) -> str:
        return f"ensure the {self.purpose} bucket s3://{self.bucket} in the sandbox"


@dataclass(frozen=True)
class EnsureHostedZone(Step):
    """Create a public Route 53 hosted zone in the sandbox's emulator unless one of that name
    exists (on AWS the zone is the user's and Terraform looks it up)."""

    zone: str
    sandbox: Ref

    def title(self) -> str:
        return f"ensure the Route 53 hosted zone {self.zone} in the sandbox"


@dataclass(frozen=True)
class WriteProviderConfig(Step):
    """Write `.orch/terraformrc` so Terraform installs providers from a filesystem mirror."""

    path: Path
    text: str
    mirror: str

    def title(self) -> str:
        return f"write {self.path.name} (providers from {self.mirror})"

    def inputs(self) -> dict[str, Any]:
        return {"path": self.path, "mirror": self.mirror}


@dataclass(frozen=True)
class BuildPackage(Step):
    """Build the function's deterministic zip into the package store; stores a PackageResult."""

    source_dir: Path
    runtime: str
    store_dir: Path
    function_name: str
    output: str = "package"

    def title(self) -> str:
        return f"package the function ({self.source_dir.name}, {self.runtime})"


@dataclass(frozen=True)
class UploadPackage(Step):
    """Upload a package over 50 MB to the artifacts bucket; stores (bucket, key)."""

    package: Ref
    bucket: str | None
    prefix: str
    target: str  # "sandbox" or "aws"
    sandbox: Ref | None = None
    output: str = "upload"
    when: Condition | None = None

    def title(self) -> str:
        return f"upload the package to s3://{self.bucket or '(artifacts.bucket not set)'}"


@dataclass(frozen=True)
class RenderFiles(Step):
    """Render backend.tf, main.tf and terraform.tfvars.json into the working folder."""

    project_dir: Path
    stage_name: str
    workdir: Path
    package: Ref
    upload: Ref | None = None
    sandbox: Ref | None = None
    output: str = "rendered"

    def title(self) -> str:
        return f"render the Terraform files into {self.workdir}"


@dataclass(frozen=True)
class Init(Step):
    """`terraform init` (only planned when the working folder needs it)."""

    workdir: Path
    reason: str

    def title(self) -> str:
        return f"terraform init ({self.reason})"


@dataclass(frozen=True)
class TerraformApply(Step):
    """One Terraform run that plans and applies (`apply -auto-approve -json`); stores an
    ApplyResult whose `plan` is the plan as data and whose `outputs` are the root outputs.
    `targets_from` limits it to the resources a stored adoption imports (`-target`);
    `var_file`: values that override terraform.tfvars.json (a rollback's)."""

    workdir: Path
    replace: tuple[str, ...] = ()
    purpose: str = ""
    output: str = "apply"
    when: Condition | None = None
    targets_from: Ref | None = None
    var_file: Path | None = None

    changes_state = True

    def title(self) -> str:
        if self.var_file is not None and not self.replace:
            return f"{self.purpose or 'terraform apply'} (terraform apply -var-file={self.var_file.name})"
        if self.replace:
            return f"{self.purpose or 'terraform apply'} (terraform apply -replace=" + ",".join(self.replace) + ")"
        if self.targets_from is not None:
            return f"{self.purpose or 'terraform apply'} (terraform apply -target=each of {self.targets_from})"
        return "terraform apply (plan and apply in one run)"


@dataclass(frozen=True)
class TerraformPlan(Step):
    """`terraform plan -out=FILE` with Terraform's human output streamed; stores a PlanFile."""

    workdir: Path
    plan_file: Path
    output: str = "plan_file"

    def title(self) -> str:
        return f"terraform plan -out={self.plan_file.name}"


@dataclass(frozen=True)
class ReadPlan(Step):
    """`terraform show -json FILE`; stores the plan as a tfplan.PlanView."""

    workdir: Path
    plan_file: Path
    output: str = "plan"

    def title(self) -> str:
        return f"read the plan {self.plan_file.name} (terraform show -json)"


@dataclass(frozen=True)
class ApplySavedPlan(Step):
    """`terraform apply -json FILE`: exactly that plan (refused by Terraform when stale)."""

    workdir: Path
    plan_file: Path
    output: str = "apply"
    when: Condition | None = None

    changes_state = True

    def title(self) -> str:
        return f"terraform apply {self.plan_file.name} (exactly the plan read)"


@dataclass(frozen=True)
class TerraformDestroy(Step):
    """`terraform destroy -auto-approve -json`."""

    workdir: Path
    output: str = "destroy"

    changes_state = True

    def title(self) -> str:
        return "terraform destroy"


@dataclass(frozen=True)
class ReadLiveCode(Step):
    """Read which version the stage's alias serves and its code (orch.aws.LiveCode)."""

    function_name: str
    alias: str
    region: str
    sandbox: Ref | None = None
    output: str = "live"

    def title(self) -> str:
        return f"read what alias {self.alias!r} of {self.function_name} serves"


@dataclass(frozen=True)
class UpdateFunctionCode(Step):
    """Upload the package as the function's code ($LATEST) and wait for Lambda to finish;
    stores the new CodeSha256. Terraform's state is not touched."""

    function_name: str
    region: str
    package: Ref
    upload: Ref | None = None
    sandbox: Ref | None = None
    output: str = "code"
    when: Condition | None = None

    changes_state = True

    def title(self) -> str:
        return f"update the code of {self.function_name} (Lambda UpdateFunctionCode)"


@dataclass(frozen=True)
class PublishVersion(Step):
    """Publish the updated code as a new function version (only if it is the package's);
    stores the version number."""

    function_name: str
    region: str
    code: Ref
    sandbox: Ref | None = None
    output: str = "version"
    when: Condition | None = None

    changes_state = True

    def title(self) -> str:
        return f"publish a version of {self.function_name}"


@dataclass(frozen=True)
class UpdateAlias(Step):
    """Move the stage's alias (what API Gateway invokes) to the new version; stores a Release."""

    function_name: str
    alias: str
    region: str
    version: Ref
    live: Ref
    code: Ref
    sandbox: Ref | None = None
    output: str = "release"
    when: Condition | None = None

    changes_state = True

    def title(self) -> str:
        return f"move alias {self.alias!r} to the new version"


@dataclass(frozen=True)
class RunSyncChecks(Step):
    """After `orch sync`: the stage's smoke checks against what Terraform deployed (its
    outputs and the working folder's tfvars, read only), with the alias expected at the
    version the sync published and running its package; stores an orch.smoke.SmokeReport."""

    workdir: Path
    release: Ref
    package: Ref
    sandbox: Ref | None = None
    output: str = "smoke"
    when: Condition | None = None

    def title(self) -> str:
        return "run the smoke checks"


@dataclass(frozen=True)
class RevertAlias(Step):
    """Move the stage's alias back to the version it served before the sync (the stored
    Release's `previous_version`), without Terraform; stores the Release it undid."""

    function_name: str
    alias: str
    region: str
    release: Ref
    sandbox: Ref | None = None
    output: str = "reverted"
    when: Condition | None = None

    changes_state = True

    def title(self) -> str:
        return f"move alias {self.alias!r} back to the version it served before"


@dataclass(frozen=True)
class Release:
    """What `orch sync` released: the alias moved from `previous_version` to `version`."""

    function_name: str
    alias: str
    version: str
    previous_version: str
    code_sha256: str

    changed = True


@dataclass(frozen=True)
class RefuseDestroying(Step):
    """Stop (orch.errors.Refused) when the stored plan deletes or replaces a resource of one of
    `types` (a protected stage's API, API stage, function): nothing is applied unless the
    person passed `override` (--allow-destroy, then this step is not planned)."""

    plan: Ref
    stage: str
    types: tuple[str, ...]
    override: str = "--allow-destroy"

    def title(self) -> str:
        return f"refuse a plan that destroys or replaces the stage's {', '.join(self.types)}"


@dataclass(frozen=True)
class MarkSandboxChanged(Step):
    """Tell the local gateway what is deployed changed (orch.sandbox.mark_changed)."""

    project_dir: Path
    when: Condition | None = None
    output: str | None = None

    def title(self) -> str:
        return "tell the local gateway the deployment changed"


@dataclass(frozen=True)
class WaitForRun(Step):
    """A Terraform run an earlier, interrupted orch left going in this working folder: show
    its output and wait for it to end (it holds the state lock)."""

    workdir: Path
    run_id: str
    description: str
    timeout: float

    def title(self) -> str:
        return f"wait for the {self.description} an interrupted orch left running"


@dataclass(frozen=True)
class EndLeftovers(Step):
    """End the provider processes that killed Terraform runs left behind (they never exit
    on their own)."""

    workdir: Path
    run_ids: tuple[str, ...]

    def title(self) -> str:
        return "end the provider processes a killed terraform left running"


@dataclass(frozen=True)
class FindOrphans(Step):
    """After an interrupted or failed run: what exists in AWS for this stage but not in its
    state (`terraform show -json` against AWS lookups, orch.adopt); stores an Adoption."""

    workdir: Path
    sandbox: Ref | None = None
    output: str = "adoption"

    def title(self) -> str:
        return "look for resources an interrupted run left in AWS outside Terraform's state"


@dataclass(frozen=True)
class WriteImports(Step):
    """Write Terraform import blocks for the stored adoption into the working folder."""

    workdir: Path
    adoption: Ref
    when: Condition | None = None

    def title(self) -> str:
        return "write import blocks to adopt them (orch-adopt.tf)"


@dataclass(frozen=True)
class SettleRuns(Step):
    """After a successful apply or destroy: forget the records of earlier interrupted runs
    and remove orch-adopt.tf (what they left is in the state now)."""

    workdir: Path
    when: Condition | None = None

    def title(self) -> str:
        return "forget the interrupted runs, now settled"


@dataclass(frozen=True)
class ReadLock(Step):
    """Read the stage's state lock (orch.statelock) and check it may be forced open: it is
    `lock_id`, and no process of this project still holds it; stores a LockInfo."""

    workdir: Path
    lock_id: str
    sandbox: Ref | None = None
    output: str = "lock"

    def title(self) -> str:
        return f"read the state lock and check that {self.lock_id} is held by no process of this project"


@dataclass(frozen=True)
class ForceUnlock(Step):
    """`terraform force-unlock -force LOCK_ID`, then remember that the lock's holder was
    interrupted (the next plan or apply adopts what it left)."""

    workdir: Path
    lock_id: str

    def title(self) -> str:
        return f"terraform force-unlock {self.lock_id}"


@dataclass(frozen=True)
class RemoveFile(Step):
    """Remove a temporary file (cleanup; runs whatever happened before)."""

    path: Path

    def title(self) -> str:
        return f"remove {self.path.name}"


# ---------------------------------------------------------------------------- verified releases
# Smoke checks after an apply, release records, rollback through Terraform, the promotion
# guard (orch.smoke, orch.releases). `location` values are orch.releases.Location.


@dataclass(frozen=True)
class ReadReleases(Step):
    """Read the stage's release records and say when the stage is rolled back, or serves a
    sync; stores the release it serves by its records (Releases.current: the newest, past
    syncs that failed and were moved back), or None."""

    location: Any
    apply_hint: str
    sandbox: Ref | None = None
    output: str = "latest_release"

    def title(self) -> str:
        return f"read the stage's release records ({self.location.describe()})"


@dataclass(frozen=True)
class CheckPromotion(Step):
    """Refuse (exit 3) a package that did not pass the smoke checks of `source` (the stage in
    `promote_from`, same target), before Terraform runs; `skip` only warns. `package` is a
    PackageResult or a saved plan's PlanView (its function.package variable)."""

    source: Any
    package: Ref
    skip: bool = False
    sandbox: Ref | None = None
    output: str = "promotion"

    def title(self) -> str:
        verb = "skip (loudly) the check" if self.skip else "check"
        return f"{verb} that the package passed the smoke checks of stage {self.source.stage!r}"


@dataclass(frozen=True)
class RunSmokeChecks(Step):
    """Check the stage as Terraform left it (outputs of the first stored of `applied`);
    stores an orch.smoke.SmokeReport. After a rollback (`rollback_to`), the checks are that
    release's own, and its package is the one the alias must run."""

    workdir: Path
    applied: tuple[Ref, ...]
    sandbox: Ref | None = None
    rollback_to: Ref | None = None
    purpose: str = "release"
    output: str = "smoke"
    when: Condition | None = None

    def title(self) -> str:
        return "run the smoke checks again, after the rollback" if self.rollback_to else "run the smoke checks"


@dataclass(frozen=True)
class RecordRelease(Step):
    """Write a release record (orch.releases) next to the stage's state; stores the Release.

    `smoke` None: released without checks. A rollback record names the failed release
    (`replaces`) and the release it serves again (`rollback_to`)."""

    location: Any
    kind: str  # "apply" or "rollback" (a sync's record is RecordSync's)
    workdir: Path
    applied: tuple[Ref, ...]
    smoke: Ref | None = None
    sandbox: Ref | None = None
    promotion: Ref | None = None
    replaces: Ref | None = None
    rollback_to: Ref | None = None
    output: str = "release"
    when: Condition | None = None

    def title(self) -> str:
        return f"record the {'rollback' if self.kind == 'rollback' else 'release'} ({self.location.describe()})"


@dataclass(frozen=True)
class RecordSync(Step):
    """After `orch sync` released something: write a release record of kind "sync" (orch.releases)
    next to the stage's state; stores the Release, or None (with a note) when Terraform has no
    outputs for the stage (never applied from this project: there is nothing to roll back with).

    The record holds the package, the version the sync published (`release`, an orch.steps
    Release), how its checks went (`smoke`; None: not checked, `passed` None) and, from what
    Terraform last applied, the deployment id and the tfvars. A failed sync's alias was
    moved back (`reverted`): the record says `passed: False`."""

    location: Any
    workdir: Path
    release: Ref
    package: Ref
    smoke: Ref | None = None
    reverted: Ref | None = None
    sandbox: Ref | None = None
    output: str = "sync_record"
    when: Condition | None = None

    def title(self) -> str:
        return f"record the release ({self.location.describe()})"


@dataclass(frozen=True)
class FindRollbackTarget(Step):
    """The release to roll back to: the newest other one that passed its checks and whose
    version still runs its package (or the one serving `to_version`); stores it, or None
    (with a note) when there is none. `by_hand`: none is a ConfigError instead."""

    location: Any
    current: Ref
    to_version: str | None = None
    by_hand: bool = False
    sandbox: Ref | None = None
    output: str = "rollback_to"
    when: Condition | None = None

    def title(self) -> str:
        which = f"version {self.to_version}" if self.to_version else "the last release that passed its checks"
        return f"find the release to roll back to ({which})"


@dataclass(frozen=True)
class WriteRollbackVars(Step):
    """Write the rollback's tfvars: the current release's function (unchanged, so nothing is
    published) with the alias pinned to the target's version, and the target's API and stage."""

    path: Path
    current: Ref
    target: Ref
    when: Condition | None = None

    def title(self) -> str:
        return f"write {self.path.name} (alias pinned to the earlier version, its API and stage)"


@dataclass(frozen=True)
class ConcludeRelease(Step):
    """Decide how the release ended (orch.releases.Verdict) from the stored values; stores it."""

    stage: str
    target: str
    smoke: Ref | None = None
    release: Ref | None = None
    rollback_to: Ref | None = None
    recheck: Ref | None = None
    rollback: Ref | None = None
    output: str = "verdict"

    def title(self) -> str:
        return "conclude the release"


@dataclass(frozen=True)
class DeployPlan:
    """What one command will do: `steps` in order, then `cleanup` steps that always run."""

    command: str
    stage: str
    target: str
    steps: tuple[Step, ...]
    cleanup: tuple[Step, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def step_types(self) -> list[str]:
        return [type(step).__name__ for step in self.steps]
