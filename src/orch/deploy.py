"""Plan, apply, destroy and read outputs of one stage: the place where orch acts.

A command first becomes a list of `Step`s (a plain description of what will happen:
load config, start the sandbox, package, render, init, plan, apply, read outputs), and
`run_steps` carries them out in order with progress lines. The CLI stays thin: it builds
a `StageRun` and calls one method. Terraform is reached only through orch.terraform.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch import config as config_mod
from orch import render as render_mod
from orch import resources
from orch import sandbox as sandbox_mod
from orch.errors import Aborted, AwsError, ConfigError, TerraformError
from orch.terraform import Echo, PlanResult, Terraform, cli_config

Log = Callable[[str], None]
Confirm = Callable[[str], bool]

PLAN_SUMMARY_RE = re.compile(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy")
# A removed route: Terraform creates the new API deployment (create_before_destroy) before it
# deletes the method, so that snapshot still serves the route. orch redeploys once more.
REMOVED_METHOD_RE = re.compile(r"# \S*aws_api_gateway_method\.this\[.*\] will be destroyed")
DEPLOYMENT_ADDRESS = "module.stack.module.stage.aws_api_gateway_deployment.this"
EPOCH_FILE = ".sandbox-epoch"


@dataclass(frozen=True)
class PlanSummary:
    """What a plan would do, for people and for scripts (CI summaries, Slack)."""

    changes: bool
    add: int = 0
    change: int = 0
    destroy: int = 0

    removes_routes: bool = False

    @classmethod
    def from_plan(cls, plan: PlanResult) -> PlanSummary:
        removes = bool(REMOVED_METHOD_RE.search(plan.run.stdout))
        match = PLAN_SUMMARY_RE.search(plan.run.stdout)
        if not match:
            return cls(changes=plan.changes, removes_routes=removes)
        add, change, destroy = (int(g) for g in match.groups())
        return cls(changes=plan.changes, add=add, change=change, destroy=destroy, removes_routes=removes)

    @classmethod
    def from_plan_json(cls, plan: dict[str, Any]) -> PlanSummary:
        """The same summary from `terraform show -json` of a saved plan."""
        counts = {"create": 0, "update": 0, "delete": 0}
        removes = False
        for change in plan.get("resource_changes", []):
            actions = change.get("change", {}).get("actions", [])
            for action in actions:
                if action in counts:
                    counts[action] += 1
            if change.get("type") == "aws_api_gateway_method" and actions == ["delete"]:
                removes = True
        changed = any(counts.values())
        return cls(changed, counts["create"], counts["update"], counts["delete"], removes_routes=removes)

    def text(self) -> str:
        if not self.changes:
            return "no changes"
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"


@dataclass(frozen=True)
class Step:
    title: str
    action: Callable[[], Any]


def run_steps(steps: list[Step], log: Log) -> list[Any]:
    results = []
    for index, step in enumerate(steps, 1):
        log(f"[{index}/{len(steps)}] {step.title}")
        started = time.monotonic()
        results.append(step.action())
        elapsed = time.monotonic() - started
        if elapsed >= 1.0:
            log(f"      done in {elapsed:.1f} s")
    return results


def check_aws_credentials(region: str) -> None:
    """Fail before Terraform starts when the standard credential chain finds nothing."""
    import boto3
    import botocore.exceptions

    try:
        creds = boto3.Session(region_name=region).get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"could not read AWS credentials: {exc}.") from None
    if creds is None:
        raise AwsError(
            "no AWS credentials found (checked the environment, AWS_PROFILE, shared "
            "config/credentials files, SSO and instance metadata).",
            hint="Run `aws configure` or `aws sso login`, or export AWS_PROFILE / "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. To try orch without AWS, add --sandbox.",
        )


@dataclass
class StageRun:
    """One stage on one target (real AWS or the sandbox), ready to plan/apply/destroy."""

    project_dir: Path
    stage_name: str
    sandbox: bool
    log: Log
    echo: Echo
    color: bool = False
    stage: config_mod.Stage | None = field(default=None, init=False)
    target: render_mod.Target | None = field(default=None, init=False)
    sandbox_info: sandbox_mod.SandboxInfo | None = field(default=None, init=False)

    # ----------------------------------------------------------------- steps

    @property
    def workdir(self) -> Path:
        name = "sandbox" if self.sandbox else "aws"
        return render_mod.work_dir(self.project_dir, self.stage_name, render_mod.Target(name))

    def _load(self) -> config_mod.Stage:
        self.stage = config_mod.load_stage(self.project_dir, self.stage_name)
        return self.stage

    def _connect(self) -> None:
        assert self.stage is not None
        if self.sandbox:
            self.sandbox_info = sandbox_mod.ensure_running(
                self.project_dir, region=self.stage.config.region, log=self.log
            )
            self.target = render_mod.Target("sandbox", self.sandbox_info.endpoint)
            self._check_epoch()
            backend = self.stage.config.backend
            if backend.type == "s3":
                # The emulator starts empty: create the state bucket (real AWS: bring your own).
                _ensure_bucket(self._boto_client("s3"), backend.bucket, backend.region or self.stage.config.region)
        else:
            check_aws_credentials(self.stage.config.region)
            self.target = render_mod.Target("aws")

    def _check_epoch(self) -> None:
        """Start clean when the sandbox was restarted: its resources are gone."""
        assert self.sandbox_info is not None
        marker = self.workdir / EPOCH_FILE
        state = self.workdir / "terraform.tfstate"
        previous = marker.read_text().strip() if marker.is_file() else None
        if previous != self.sandbox_info.epoch and state.exists():
            self.log(
                f"the sandbox was restarted since stage {self.stage_name!r} was deployed there; "
                "its old resources are gone, so orch starts the stage clean"
            )
            state.replace(self.workdir / "terraform.tfstate.lost")
            (self.workdir / "terraform.tfstate.backup").unlink(missing_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if previous != self.sandbox_info.epoch:
            marker.write_text(self.sandbox_info.epoch + "\n")

    def _boto_client(self, service: str):
        import boto3

        assert self.stage is not None
        if self.sandbox_info is not None:
            return boto3.client(service, **sandbox_mod.client_kwargs(self.sandbox_info, self.stage.config.region))
        return boto3.client(service, region_name=self.stage.config.region)

    def _package(self) -> render_mod.PackageRef:
        from orch import package as package_mod

        assert self.stage is not None
        result = package_stage(self.stage)
        self.log(f"      {result.path.name}: {result.size / 1e6:.2f} MB, sha256 {result.sha256_hex[:16]}…")
        if not package_mod.needs_s3(result):
            return render_mod.PackageRef(result.sha256_b64, filename=str(result.path))
        bucket = self.stage.config.artifacts.bucket
        s3 = self._boto_client("s3") if bucket else None
        if bucket and self.sandbox:
            _ensure_bucket(s3, bucket, self.stage.config.region)
        self.log(f"      over the 50 MB direct-upload limit: uploading through s3://{bucket}")
        bucket_name, key = package_mod.upload_package(
            result, bucket, s3, key_prefix=self.stage.config.artifacts.prefix
        )
        return render_mod.PackageRef(result.sha256_b64, s3_bucket=bucket_name, s3_key=key)

    def _render(self, package: render_mod.PackageRef) -> list[str]:
        assert self.stage is not None and self.target is not None
        files = render_mod.render(self.stage, self.target, package)
        return render_mod.write(files, self.workdir)

    def terraform(self) -> Terraform:
        env = cli_config(self.project_dir / ".orch")
        return Terraform(self.workdir, env=env, echo=self.echo, color=self.color)

    def _init(self, tf: Terraform) -> None:
        fingerprint = tf.init_fingerprint(resources.module_sources(self.project_dir))
        reason = tf.needs_init(fingerprint)
        if reason is None:
            return
        self.log(f"      terraform init ({reason})")
        tf.init(fingerprint)

    def prepare_steps(self, holder: dict[str, Any]) -> list[Step]:
        def package() -> None:
            holder["package"] = self._package()

        def render() -> None:
            changed = self._render(holder["package"])
            if changed:
                self.log(f"      wrote {', '.join(changed)} in {self.workdir}")

        def find_terraform() -> None:
            holder["tf"] = self.terraform()

        def init() -> None:
            self._init(holder["tf"])

        target = "the sandbox" if self.sandbox else "AWS"
        return [
            Step(f"load stage {self.stage_name!r}", self._load),
            Step("find Terraform and its provider", find_terraform),
            Step(f"connect to {target}", self._connect),
            Step("package the function", package),
            Step("render Terraform files", render),
            Step("check the Terraform working folder", init),
        ]

    # ----------------------------------------------------------------- commands

    def render_only(self) -> dict[str, str]:
        """Render without writing files or connecting (for `orch render`); the package is built
        (content-addressed, so this is idempotent) because its hash is part of the tfvars."""
        stage = self._load()
        target = render_mod.Target("sandbox", "http://127.0.0.1:<sandbox-port>") if self.sandbox \
            else render_mod.Target("aws")
        result = package_stage(stage)
        return render_mod.render(stage, target, render_mod.PackageRef(result.sha256_b64, filename=str(result.path)))

    def plan(self, out: Path | None = None) -> PlanSummary:
        holder: dict[str, Any] = {}
        steps = self.prepare_steps(holder)
        steps.append(Step("terraform plan", lambda: holder.__setitem__("plan", holder["tf"].plan(out=out))))
        run_steps(steps, self.log)
        return PlanSummary.from_plan(holder["plan"])

    def apply(self, *, plan_file: Path | None, confirm: Confirm | None) -> dict[str, Any]:
        holder: dict[str, Any] = {}
        if plan_file is not None:
            plan_file = plan_file.resolve()
            if not plan_file.is_file():
                raise ConfigError(f"--plan {plan_file}: no such plan file.")
            steps = [
                Step(f"load stage {self.stage_name!r}", self._load),
                Step("connect to " + ("the sandbox" if self.sandbox else "AWS"), self._connect),
                Step("check the Terraform working folder", lambda: self._ready_for_saved_plan(holder)),
                Step(f"read the saved plan {plan_file.name}", lambda: holder.__setitem__(
                    "summary", PlanSummary.from_plan_json(holder["tf"].show_plan(plan_file)))),
            ]
            run_steps(steps, self.log)
            self._confirm_protected(holder["summary"], confirm)
            self._apply_steps(holder, holder["summary"], plan_file, f"terraform apply {plan_file.name} (exactly)")
            return self.outputs()
        tmp_plan = self.workdir / "orch.tfplan"
        steps = self.prepare_steps(holder)
        steps.append(Step("terraform plan", lambda: holder.__setitem__("plan", holder["tf"].plan(out=tmp_plan))))
        try:
            run_steps(steps, self.log)
            summary = PlanSummary.from_plan(holder["plan"])
            if not summary.changes:
                self.log(f"stage {self.stage_name!r} is up to date: nothing to apply")
                return self.outputs()
            self._confirm_protected(summary, confirm)
            self._apply_steps(holder, summary, tmp_plan, "terraform apply (the plan above)")
        finally:
            tmp_plan.unlink(missing_ok=True)
        return self.outputs()

    def _confirm_protected(self, summary: PlanSummary, confirm: Confirm | None) -> None:
        assert self.stage is not None
        if self.stage.config.protected and confirm is not None:
            if not confirm(f"Apply {summary.text()} to protected stage {self.stage_name!r}?"):
                raise Aborted(f"nothing applied to stage {self.stage_name!r}.")

    def _apply_steps(self, holder: dict[str, Any], summary: PlanSummary, plan_file: Path, title: str) -> None:
        steps = [Step(title, lambda: holder["tf"].apply(plan_file))]
        if summary.removes_routes:
            steps.append(Step(
                "redeploy the API without the removed routes",
                lambda: holder["tf"].apply(replace=[DEPLOYMENT_ADDRESS]),
            ))
        try:
            run_steps(steps, self.log)
        finally:
            self._mark_changed()

    def _mark_changed(self) -> None:
        """Sandbox: tell the local gateway that deployed state changed, and give its
        processes a moment to be warm for it (the first request after an apply is fast)."""
        if self.sandbox:
            from orch.gateway.generation import wait_until_warm

            token = sandbox_mod.mark_changed(self.project_dir)
            wait_until_warm(sandbox_mod.generation_path(self.project_dir), token, timeout=5.0)

    def _ready_for_saved_plan(self, holder: dict[str, Any]) -> None:
        if not (self.workdir / "main.tf").is_file():
            raise TerraformError(
                f"stage {self.stage_name!r} has no working folder yet ({self.workdir}).",
                hint="Make the plan with `orch plan STAGE --out FILE` first.",
            )
        holder["tf"] = self.terraform()
        self._init(holder["tf"])

    def destroy(self, *, confirm: Confirm | None) -> None:
        holder: dict[str, Any] = {}
        steps = self.prepare_steps(holder)
        run_steps(steps, self.log)
        if confirm is not None and not confirm(
            f"Destroy every resource of stage {self.stage_name!r}"
            f"{' in the sandbox' if self.sandbox else ''}?"
        ):
            raise Aborted(f"nothing destroyed in stage {self.stage_name!r}.")
        try:
            run_steps([Step("terraform destroy", holder["tf"].destroy)], self.log)
        finally:
            self._mark_changed()

    def _sandbox_deployment(self) -> sandbox_mod.SandboxInfo:
        """The running sandbox this stage was deployed into; TerraformError when the sandbox is
        not running or was restarted since (its resources, and so the stage, are gone)."""
        info = self.sandbox_info or sandbox_mod.read_state(self.project_dir)
        marker = self.workdir / EPOCH_FILE
        deployed_in = marker.read_text().strip() if marker.is_file() else None
        if info is None or deployed_in != info.epoch:
            why = "the sandbox is not running" if info is None else "the sandbox was restarted since"
            raise TerraformError(
                f"stage {self.stage_name!r} is not deployed in the sandbox: {why}, and its resources "
                "went with it.",
                hint=f"Run `orch apply {self.stage_name} --sandbox` to deploy it again.",
            )
        return info

    def outputs(self) -> dict[str, Any]:
        if self.stage is None:
            self._load()
        if not (self.workdir / "terraform.tfstate").exists() and not (self.workdir / ".terraform").is_dir():
            where = "the sandbox" if self.sandbox else "AWS"
            raise TerraformError(
                f"stage {self.stage_name!r} has not been deployed to {where} from this project.",
                hint=f"Run `orch apply {self.stage_name}{' --sandbox' if self.sandbox else ''}` first.",
            )
        info = self._sandbox_deployment() if self.sandbox else None
        values = self.terraform().output()
        if not values:
            raise TerraformError(
                f"stage {self.stage_name!r} has no outputs: it is not deployed (or was destroyed).",
                hint=f"Run `orch apply {self.stage_name}{' --sandbox' if self.sandbox else ''}`.",
            )
        if info is not None and info.gateway_endpoint and values.get("rest_api_id"):
            values["invoke_url"] = sandbox_invoke_url(
                info.gateway_endpoint, values["rest_api_id"], values.get("stage_name", self.stage_name)
            )
        return values


def package_stage(stage: config_mod.Stage):
    """Check the handler exists and build the stage's deterministic function zip."""
    from orch import package as package_mod

    fn = stage.config.function
    package_mod.check_handler(stage.source_dir, fn.runtime, fn.handler)
    return package_mod.build_package(
        stage.source_dir, fn.runtime, stage.project_dir / ".orch" / "packages", name=stage.function_name
    )


def sandbox_invoke_url(gateway_endpoint: str, rest_api_id: str, stage_name: str) -> str:
    return f"{gateway_endpoint}/restapis/{rest_api_id}/{stage_name}/_user_request_"


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    import botocore.exceptions

    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def project_dir_from(option: Path | None) -> Path:
    if option is not None:
        if not (option / "stages").is_dir():
            raise ConfigError(f"--project {option}: no stages/ folder there.")
        return option.resolve()
    env = os.environ.get("ORCH_PROJECT_DIR")
    if env:
        path = Path(env)
        if not (path / "stages").is_dir():
            raise ConfigError(f"ORCH_PROJECT_DIR={env}: no stages/ folder there.")
        return path.resolve()
    return config_mod.find_project_dir()
