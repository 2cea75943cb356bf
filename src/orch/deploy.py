"""One stage on one target, end to end: gather facts, plan the steps, run or display them.

`create_deployer` wires the real collaborators (Terraform, AWS, the sandbox, the terminal);
tests wire fakes through `Deployer(...)` directly. Each CLI command builds one Deployer and
calls one method. This module decides nothing on its own (orch.planner does) and prints
only through its reporter; it turns the values the executor stored into results.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch import config as config_mod
from orch import facts as facts_mod
from orch import planner
from orch import releases as releases_mod
from orch import sandbox as sandbox_mod
from orch.config import Stage
from orch.errors import (
    DESTROYED,
    NEVER_APPLIED,
    SANDBOX_NOT_RUNNING,
    SANDBOX_RESTARTED,
    ConfigError,
    Interrupted,
    NotDeployedError,
    OrchError,
    SandboxError,
)
from orch.executor import Collaborators, DisplayExecutor, Executor
from orch.releases import Verdict
from orch.reporter import Reporter
from orch.steps import DeployPlan
from orch.tfplan import PlanView

FactsSource = Callable[..., facts_mod.Facts]
WATCH_STEP_MS = 200  # `orch sync --watch`: release this long after the last save event ...
WATCH_DEBOUNCE_MS = 2000  # ... or at most this long after the first, while saves keep coming


@dataclass(frozen=True)
class PlanOutcome:
    """`orch plan`: the plan as data, and where it was saved (None: a temporary file, removed)."""

    plan: PlanView
    saved_to: Path | None
    package: Any = None  # the orch.package.PackageResult the plan deploys (None: a saved plan)


@dataclass(frozen=True)
class ApplyOutcome:
    """`orch apply`: what was planned and whether anything was applied; the root outputs."""

    plan: PlanView | None
    applied: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    verdict: Verdict | None = None  # how the smoke checks (and any rollback) ended


@dataclass(frozen=True)
class SyncOutcome:
    """`orch sync`: what the stage's alias served before, and the release (None: the package
    was already what it served, nothing was changed)."""

    live: Any  # orch.aws.LiveCode
    release: Any = None  # orch.steps.Release
    package: Any = None  # orch.package.PackageResult
    dry_run: bool = False
    smoke: Any = None  # orch.smoke.SmokeReport of the release (None: nothing released, or no checks)
    record: Any = None  # the orch.releases.Release written for it (kind "sync"; None: nothing released)


@dataclass
class Deployer:
    """The deploy engine for one stage on one target ("sandbox" or "aws")."""

    stage: Stage
    target: str
    collaborators: Collaborators
    reporter: Reporter
    facts: FactsSource = facts_mod.gather
    interactive: bool = False
    yes: bool = False
    allow_destroy: bool = False

    # ------------------------------------------------------------------ planning

    def gather(self, **extra: Any) -> facts_mod.Facts:
        return self.facts(self.stage, self.target, interactive=self.interactive, yes=self.yes,
                          env_cli_config=self.collaborators.cli_config_file, allow_destroy=self.allow_destroy,
                          **extra)

    def run(self, plan: DeployPlan, *, dry_run: bool = False) -> Executor | None:
        if dry_run:
            DisplayExecutor(self.reporter).execute(plan)
            return None
        self.collaborators.preflight()
        executor = Executor(self.stage, self.collaborators, self.reporter)
        try:
            executor.execute(plan)
        except Interrupted as exc:
            if exc.hint is None and plan.command in ("apply", "destroy"):
                exc.hint = (f"Run `{self.command_line(plan.command)}` again to finish; it adopts whatever the "
                            "interruption left in AWS outside Terraform's state."
                            if plan.command == "apply" else f"Run `{self.command_line(plan.command)}` again to finish.")
            raise
        return executor

    def command_line(self, verb: str) -> str:
        """The orch command that runs `verb` on this stage and target (for hints)."""
        return f"orch {verb} {self.stage.name}{' --sandbox' if self.target == 'sandbox' else ''}"

    # ------------------------------------------------------------------ commands

    def plan(self, out: Path | None = None) -> PlanOutcome:
        """Plan the stage; Terraform's human plan is streamed, the counts come from `show -json`."""
        self.collaborators.load_secrets()
        deploy_plan = planner.plan_plan(self.stage, self.gather(plan_out=out))
        executor = self.run(deploy_plan)
        assert executor is not None
        return PlanOutcome(executor.values["plan"], out, executor.values.get("package"))

    def apply(self, *, plan_file: Path | None = None, dry_run: bool = False, smoke: bool = True,
              skip_promotion_check: bool = False) -> ApplyOutcome:
        """Deploy the stage (or exactly a saved plan), run its smoke checks and roll back
        when they fail (`verdict`); the outputs are Terraform's, with the sandbox's invoke URL
        served by the local gateway. `smoke=False` (--no-smoke) records the release unchecked.
        Raises ConfigError (before Terraform runs) for a package the `promote_from` stage never
        passed, unless `skip_promotion_check`."""
        if plan_file is not None:
            plan_file = plan_file.resolve()
            if not plan_file.is_file():
                raise ConfigError(f"--plan {plan_file}: no such plan file.")
        elif not dry_run:
            self.collaborators.load_secrets()
        options = planner.ReleaseOptions(smoke=smoke and self.stage.config.smoke.enabled,
                                         promotion_source=self._promotion_source(),
                                         skip_promotion_check=skip_promotion_check)
        deploy_plan = planner.plan_apply(self.stage, self.gather(saved_plan=plan_file), options)
        executor = self.run(deploy_plan, dry_run=dry_run)
        if executor is None:
            return ApplyOutcome(None, False, dry_run=True)
        values = executor.values
        last = values.get("redeploy") or values.get("apply")
        plan = values["plan"] if "plan" in values else values["apply"].plan
        outputs = dict(last.outputs) if last is not None else dict(plan.outputs)
        if self.target == "sandbox" and outputs:
            outputs = self._sandbox_outputs(outputs, values.get("sandbox"))
        return ApplyOutcome(plan, last is not None and last.changed, outputs, verdict=values.get("verdict"))

    def destroy(self, *, dry_run: bool = False) -> bool:
        """Destroy the stage's resources; True when Terraform destroyed something."""
        executor = self.run(planner.plan_destroy(self.stage, self.gather()), dry_run=dry_run)
        if executor is None:
            return False
        result = executor.values.get("destroy")
        return bool(result is not None and result.changed)

    def sync(self, *, dry_run: bool = False, smoke: bool = True) -> SyncOutcome:
        """Release the function's current code to the stage without Terraform (planner.plan_sync),
        then run the stage's smoke checks (unless `smoke` is False). SmokeError (exit 6) when
        they fail: the alias has been moved back to the version it served before. A release is
        recorded (kind "sync", `passed` False when its checks failed, None without them) where
        apply's records go; nothing released, nothing recorded.
        NotDeployedError (exit 8) when the stage's function or alias is not there to update."""
        executor = self.run(planner.plan_sync(self.stage, self.gather(), smoke=smoke), dry_run=dry_run)
        if executor is None:
            return SyncOutcome(None, dry_run=True)
        values = executor.values
        outcome = SyncOutcome(values["live"], values.get("release"), values.get("package"), smoke=values.get("smoke"),
                              record=values.get("sync_record"))
        reverted = values.get("reverted")
        if outcome.smoke is not None and not outcome.smoke.passed:
            from orch.errors import SmokeError

            release = outcome.release
            back = (f"alias {release.alias!r} moved back to version {reverted.previous_version}" if reverted
                    else "the alias was not moved back")
            raise SmokeError(
                f"stage {self.stage.name!r}: version {release.version} of {release.function_name}, released by "
                f"orch sync, failed its smoke checks ({releases_mod.failure_reason(outcome.smoke)}); {back}, "
                "without Terraform.",
                hint=f"Version {release.version} stays published. Fix the code and sync again, or look at "
                f"`orch logs {self.stage.name}{' --sandbox' if self.target == 'sandbox' else ''}`.",
            )
        return outcome

    def watch_sync(self, on_round: Callable[[SyncOutcome | None, OrchError | None], None],
                   stop: Any = None, on_watching: Callable[[], None] | None = None, *, smoke: bool = True) -> None:
        """`orch sync --watch`: sync now, then again after every save in the function's source
        folder (debounced: a burst of saves is one release) until Ctrl-C (KeyboardInterrupt)
        or ``stop`` (a threading.Event) is set. A round that fails (a syntax error caught by
        the handler check, AWS refusing) is reported through ``on_round`` and the watch goes
        on. ``on_watching()`` is called whenever the watch is in place again after a round."""
        import threading

        from orch.watch import changes

        stop = stop if stop is not None else threading.Event()

        def round_() -> None:
            try:
                outcome = self.sync(smoke=smoke)
            except OrchError as exc:
                on_round(None, exc)
            else:
                on_round(outcome, None)

        round_()
        waiting = True
        for batch in changes([self.stage.source_dir], stop, step_ms=WATCH_STEP_MS, debounce_ms=WATCH_DEBOUNCE_MS):
            if batch:
                round_()
                waiting = True
            elif waiting and on_watching is not None:
                waiting = False
                on_watching()

    def unlock(self, lock_id: str, *, dry_run: bool = False) -> None:
        """Force open the stage's state lock `lock_id` (`terraform force-unlock`), after checking
        it is that lock and no process of this project holds it, and asking unless --yes."""
        self.run(planner.plan_unlock(self.stage, self.gather(), lock_id), dry_run=dry_run)

    # ------------------------------------------------------------------ verified releases

    def _promotion_source(self) -> releases_mod.Location | None:
        source = self.stage.config.promote_from
        if not source:
            return None
        return releases_mod.location_of(config_mod.load_stage(self.stage.project_dir, source), self.target)

    def rollback(self, *, to_version: str | None = None, dry_run: bool = False) -> Verdict | None:
        """Roll the stage back through Terraform to its last good release (or the release that
        served `to_version`), check it again and record it. NotDeployedError (exit 8) when the
        stage is not deployed on this target; ConfigError when it is but has no release to go
        back to."""
        if not dry_run:
            self.collaborators.load_secrets()  # else Terraform would apply the function without them
        executor = self.run(planner.plan_rollback(self.stage, self.gather(), to_version), dry_run=dry_run)
        return None if executor is None else executor.values.get("verdict")

    def smoke(self) -> Any:
        """Run the stage's smoke checks against what is deployed now (orch.smoke.SmokeReport).

        What AWS must show comes from the release record that matches Terraform's outputs (so a
        rolled-back stage is checked as what it serves), or from the stage's current record when
        that is a sync of the deployment Terraform applied (the alias on the sync's version, its
        package); without one, from the stage files.
        Raises NotDeployedError (exit 8), before any check, when the stage is not deployed
        where this looks (see `outputs`).
        """
        from orch import render as render_mod
        from orch import smoke as smoke_mod

        outputs = self.outputs()
        info = facts_mod.running_sandbox(self.stage.project_dir) if self.target == "sandbox" else None
        endpoint = info.endpoint if info is not None else None
        region = self.stage.config.region

        def aws(where: str | None = None) -> Any:
            return self.collaborators.aws(endpoint, where or region)

        location = releases_mod.location_of(self.stage, self.target)
        records = releases_mod.Releases(releases_mod.open_store(location, aws), location)
        served = next((r for r in records if (r.function_version, r.deployment_id) == (
            str(outputs.get("function_version")), str(outputs.get("deployment_id")))), None)
        current = records.current()
        if current is not None and current.kind == "sync" and current.deployment_id == str(outputs.get(
                "deployment_id")):  # Terraform's outputs still name the version before the sync
            served = current
            outputs = {**outputs, "function_version": current.function_version}
            self.reporter.note(f"stage {self.stage.name!r} serves a sync: checking {served.short}")
        if served is not None:
            tfvars, package = dict(served.tfvars), served.package_sha256
            if served.kind == "rollback":
                self.reporter.note(f"stage {self.stage.name!r} is rolled back: checking {served.short}")
        else:
            self.reporter.note("no release record matches what is deployed: expecting the stage files' values")
            tfvars = json.loads(render_only(self.stage, self.target == "sandbox")[render_mod.TFVARS_FILE])
            package = None
        domain = None
        if info is not None and info.gateway_endpoint and outputs.get("custom_domain_url"):
            domain = sandbox_mod.custom_domain_request(info.gateway_endpoint, outputs["custom_domain_url"])
        deployed = smoke_mod.Deployed.from_terraform(self.stage.name, self.target, outputs, tfvars,
                                                     package_sha256=package, custom_domain=domain)
        bounded = getattr(aws(), "with_config", None)
        client = bounded(smoke_mod.CONTROL_CLIENT_CONFIG) if callable(bounded) else aws()
        return self.collaborators.verify(self.stage, deployed, aws=client, purpose="manual")

    def outputs(self) -> dict[str, Any]:
        """The deployed stage's root outputs (`terraform output -json`), read-only: a dict of
        output name -> value (in the sandbox with the local gateway's invoke URL).

        Raises NotDeployedError (exit 8) when the stage is not deployed where this looks:
        never applied from this project, destroyed, or (sandbox) the sandbox is not running
        or was restarted since the apply; TerraformError when `terraform output` fails.
        """
        workdir = facts_mod.workdir_of(self.stage, self.target)
        sandbox = self.target == "sandbox"
        state = workdir / "terraform.tfstate"
        if not state.exists() and not (workdir / ".terraform").is_dir():
            raise self.not_deployed(NEVER_APPLIED)
        info = None
        if sandbox:
            info = facts_mod.running_sandbox(self.stage.project_dir)
            if info is None:
                raise self.not_deployed(SANDBOX_NOT_RUNNING)
            if facts_mod.read_epoch(workdir) != info.epoch:
                raise self.not_deployed(SANDBOX_RESTARTED)
        values = self.collaborators.terraform(workdir).output()
        if not values:
            raise self.not_deployed(DESTROYED if _emptied(state) else f"{NEVER_APPLIED} (its state has no outputs)")
        if info is not None:
            values = self._sandbox_outputs(values, info)
        return values

    def not_deployed(self, why: str | None) -> NotDeployedError:
        """The NotDeployedError of this stage and target, saying `why`."""
        return NotDeployedError(self.stage.name, sandbox=self.target == "sandbox", why=why,
                                region=self.stage.config.region)

    def _sandbox_outputs(self, outputs: dict[str, Any], info: Any) -> dict[str, Any]:
        info = info or facts_mod.running_sandbox(self.stage.project_dir)
        if info is not None and info.gateway_endpoint and outputs.get("rest_api_id"):
            outputs = {**outputs, "invoke_url": sandbox_invoke_url(
                info.gateway_endpoint, outputs["rest_api_id"], outputs.get("stage_name", self.stage.stage_name))}
        if info is not None and info.gateway_endpoint and outputs.get("custom_domain_url"):
            outputs["custom_domain_url"] = sandbox_domain_url(info.gateway_endpoint, outputs["custom_domain_url"])
        return outputs


sandbox_invoke_url = sandbox_mod.invoke_url


def _emptied(state: Path) -> bool:
    """A local state file Terraform has written to (serial past 1) that holds no resources:
    what `terraform destroy` leaves."""
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and not data.get("resources") and int(data.get("serial") or 0) > 1


def sandbox_domain_url(gateway_endpoint: str, custom_url: str) -> str:
    """A custom domain URL (https://api.example.com/v1) as the local gateway serves it: the
    domain's name on the gateway's port (http://api.example.com:<port>/v1). The gateway picks
    the stage by the Host header, so a client reaches it by resolving the name to the gateway
    (`curl --resolve api.example.com:<port>:127.0.0.1 ...`)."""
    import urllib.parse

    gateway = urllib.parse.urlsplit(gateway_endpoint)
    custom = urllib.parse.urlsplit(custom_url)
    return urllib.parse.urlunsplit(("http", f"{custom.hostname}:{gateway.port}", custom.path, "", ""))


class _Sandbox:
    """orch.sandbox as the executor's SandboxControl."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def start(self, project_dir: Path, region: str) -> sandbox_mod.SandboxInfo:
        return sandbox_mod.ensure_running(project_dir, region=region, log=self.log)

    def current(self, project_dir: Path) -> sandbox_mod.SandboxInfo:
        info = facts_mod.running_sandbox(project_dir)
        if info is None:  # stopped between reading the facts and now
            raise SandboxError("the sandbox stopped while orch was starting to use it.",
                               hint="Run the command again.")
        return info

    def mark_changed(self, project_dir: Path) -> str:
        from orch.gateway.generation import wait_until_warm

        token = sandbox_mod.mark_changed(project_dir)
        wait_until_warm(sandbox_mod.generation_path(project_dir), token, timeout=5.0)
        return token


def create_deployer(
    project_dir: Path,
    stage_name: str,
    *,
    sandbox: bool,
    reporter: Reporter,
    ask: Callable[[str], bool],
    interactive: bool,
    yes: bool,
    color: bool,
    allow_destroy: bool = False,
) -> Deployer:
    """A Deployer with the real collaborators: the terraform binary, boto3, orch.sandbox.

    Loads (and so validates) the stage first: ConfigError naming file and field.
    """
    from orch.aws import Aws
    from orch.terraform import Terraform, base_env, find_binary, lock_timeout, provider_config

    stage = config_mod.load_stage(project_dir, stage_name)
    target = "sandbox" if sandbox else "aws"
    cli = provider_config(project_dir / ".orch")
    env_extra = cli.env() if cli is not None else {}
    cli_file = env_extra.get("TF_CLI_CONFIG_FILE") or os.environ.get("TF_CLI_CONFIG_FILE") or None
    binary: list[str] = []
    if os.environ.get("TF_LOG"):
        reporter.note(f"TF_LOG={os.environ['TF_LOG']} is set: Terraform's debug log can hold secret values and "
                      "credentials. orch masks them in what it prints, not in TF_LOG_PATH or in the logs under "
                      ".orch-runs/ of a run orch did not see end.")

    from orch import secrets

    secrets.register_available(stage)  # masked in whatever any command prints, Terraform run or not

    def load_secrets() -> None:
        env_extra.update(secrets.terraform_env(secrets.resolve(stage)))

    waits = lock_timeout()

    def terraform(workdir: Path) -> Terraform:
        if not binary:
            binary.append(find_binary())
        return Terraform(workdir, binary=binary[0], env=base_env(env_extra), echo=reporter.terraform, is_tty=color,
                         lock_timeout=waits)

    def aws(endpoint: str | None, region: str) -> Aws:
        return Aws.for_sandbox(endpoint, region) if endpoint else Aws.for_aws(region)

    def preflight() -> None:
        if not binary:
            binary.append(find_binary())  # missing terraform: an error before anything is written

    collaborators = Collaborators(terraform, aws, _Sandbox(reporter.note), ask, cli_file, preflight, load_secrets)
    return Deployer(stage, target, collaborators, reporter, interactive=interactive, yes=yes,
                    allow_destroy=allow_destroy)


def project_dir_from(option: Path | None) -> Path:
    """The project folder: --project, else ORCH_PROJECT_DIR, else the nearest one with stages/."""
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


def package_stage(stage: Stage, *, write: bool = True):
    """Check the handler and build the stage's deterministic function zip (`write=False`:
    compute its identity without storing anything)."""
    from orch import package as package_mod

    fn = stage.config.function
    package_mod.check_handler(stage.source_dir, fn.runtime, fn.handler)
    return package_mod.build_package(
        stage.source_dir, fn.runtime, stage.project_dir / ".orch" / "packages", name=stage.function_name, write=write
    )


def render_only(stage: Stage, sandbox: bool) -> dict[str, str]:
    """The files `orch apply` would hand to Terraform, rendered in memory: nothing is written,
    no package stored, no sandbox started (its address is used when it already runs)."""
    from orch import render as render_mod

    target = render_mod.Target("aws")
    if sandbox:
        info = facts_mod.running_sandbox(stage.project_dir)
        target = render_mod.Target("sandbox", info.endpoint if info else "http://127.0.0.1:<sandbox-port>")
    result = package_stage(stage, write=False)
    return render_mod.render(stage, target, render_mod.PackageRef(result.sha256_b64, filename=str(result.path)))
