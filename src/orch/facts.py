"""The facts the planner decides on, gathered without changing anything.

Is the sandbox running (and which run of it is it), does the stage's working folder hold
state, from which sandbox run, does it need `terraform init` and why, does the provider
config need writing, is there a terminal to ask on. This module only reads files and
process state: it never starts the sandbox, builds a package, writes a file or creates a
folder (`orch apply --dry-run` relies on that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orch import render as render_mod
from orch import sandbox as sandbox_mod
from orch import tfruns
from orch.config import Stage
from orch.resources import module_sources
from orch.terraform import ProviderConfig, init_fingerprint, init_needed, provider_config

EPOCH_FILE = ".sandbox-epoch"
LOST_STATE_SUFFIX = ".lost"


@dataclass(frozen=True)
class Facts:
    """Everything the planner needs besides the stage config. Plain values, easy to fake."""

    target: str  # "sandbox" or "aws"
    workdir: Path
    interactive: bool = False  # a person at a terminal can answer a question
    yes: bool = False  # --yes: confirmed in advance
    saved_plan: Path | None = None  # apply --plan FILE
    plan_out: Path | None = None  # plan --out FILE
    sandbox: sandbox_mod.SandboxInfo | None = None  # the running sandbox, if any
    recorded_epoch: str | None = None  # the sandbox run the stage's state belongs to
    state_present: bool = False  # a local terraform.tfstate in the working folder
    init_reason: str | None = "first run in this working folder"  # None: initialised
    provider_config: ProviderConfig | None = None  # orch's own Terraform CLI config, if it uses one
    provider_config_written: bool = True  # ... and whether the file already holds it
    runs: tfruns.Leftovers = tfruns.Leftovers()  # Terraform runs earlier orch processes left behind
    allow_destroy: bool = False  # --allow-destroy: a protected stage's plan may destroy its API or function

    @property
    def on_sandbox(self) -> bool:
        return self.target == "sandbox"

    @property
    def sandbox_running(self) -> bool:
        return self.sandbox is not None

    @property
    def sandbox_restarted(self) -> bool:
        """The stage was deployed into a sandbox run that is gone (stopped or restarted)."""
        if not self.on_sandbox or self.recorded_epoch is None:
            return False
        return self.sandbox is None or self.sandbox.epoch != self.recorded_epoch


def workdir_of(stage: Stage, target: str) -> Path:
    return render_mod.work_dir(stage.project_dir, stage.name, render_mod.Target(target))


def running_sandbox(project_dir: Path) -> sandbox_mod.SandboxInfo | None:
    running, info = sandbox_mod.status(project_dir)
    return info if running else None


def read_epoch(workdir: Path) -> str | None:
    marker = workdir / EPOCH_FILE
    try:
        return marker.read_text().strip() or None
    except OSError:
        return None


def gather(
    stage: Stage,
    target: str,
    *,
    interactive: bool = False,
    yes: bool = False,
    saved_plan: Path | None = None,
    plan_out: Path | None = None,
    env_cli_config: str | None = None,
    allow_destroy: bool = False,
) -> Facts:
    """Read the facts for `stage` on `target` ("sandbox" or "aws"). Writes nothing.

    `env_cli_config` is TF_CLI_CONFIG_FILE as Terraform will see it when orch writes no
    config of its own. Raises ConfigError for a bad ORCH_PROVIDER_MIRROR.
    """
    workdir = workdir_of(stage, target)
    sandbox = running_sandbox(stage.project_dir) if target == "sandbox" else None
    config = provider_config(stage.project_dir / ".orch")
    # Render in memory now: a template error is a ConfigError before anything is built or written.
    endpoint = sandbox.endpoint if sandbox is not None else "http://127.0.0.1:0"
    files = render_mod.render(
        stage, render_mod.Target(target, endpoint if target == "sandbox" else None), render_mod.PackageRef("")
    )
    return Facts(
        target=target,
        workdir=workdir,
        interactive=interactive,
        yes=yes,
        saved_plan=saved_plan,
        plan_out=plan_out,
        sandbox=sandbox,
        recorded_epoch=read_epoch(workdir) if target == "sandbox" else None,
        state_present=(workdir / "terraform.tfstate").is_file(),
        init_reason=_init_reason(stage, target, workdir, sandbox, files["backend.tf"], config, env_cli_config),
        provider_config=config,
        provider_config_written=config is None or config.current,
        runs=tfruns.leftovers(workdir),
        allow_destroy=allow_destroy,
    )


def _init_reason(
    stage: Stage,
    target: str,
    workdir: Path,
    sandbox: sandbox_mod.SandboxInfo | None,
    backend_tf: str,
    config: ProviderConfig | None,
    env_cli_config: str | None,
) -> str | None:
    if not workdir.is_dir():
        return "first run in this working folder"
    if target == "sandbox" and sandbox is None and stage.config.backend.type == "s3":
        return "the sandbox starts on a new address (its S3 holds the state)"
    cli_file = str(config.path) if config is not None else env_cli_config
    fingerprint = init_fingerprint(
        backend_tf, cli_file, config.text if config is not None else None,
        module_sources(stage.project_dir),
    )
    return init_needed(workdir, fingerprint)


def fingerprint_for(workdir: Path, cli_file: str | None, project_dir: Path) -> str:
    """The init fingerprint of a rendered working folder (after RenderFiles wrote backend.tf)."""
    backend = (workdir / "backend.tf").read_text() if (workdir / "backend.tf").is_file() else ""
    return init_fingerprint(backend, cli_file, None, module_sources(project_dir))
