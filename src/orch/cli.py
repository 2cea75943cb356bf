"""orch's command line: thin Typer commands that hand off to orch.deploy and friends.

Each command parses its arguments, builds one object and calls one method. `main()` is the
only place that turns an OrchError into a message and an exit code (orch.errors owns the
codes); every line goes out through one orch.reporter.Console. Heavy libraries (boto3,
moto, python-terraform) are imported only by the commands that need them, so `orch --help`
stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from orch.errors import ConfigError, ExitCode, OrchError, SandboxError, Terminated

app = typer.Typer(
    name="orch",
    help=(
        "Deploy a Lambda function behind an API Gateway REST API, one stage at a time.\n\n"
        "Stages live in stages/ (defaults.yaml plus one <stage>.yaml each). Try it without an "
        "AWS account: `orch apply dev --sandbox` deploys into an AWS emulator on this machine "
        "and prints an invoke URL served by orch's local gateway."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)
sandbox_app = typer.Typer(
    help="Start, stop or inspect the sandbox (AWS emulator + local gateway on this machine).",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")

StageArg = Annotated[
    str,
    typer.Argument(metavar="STAGE", help="Stage name: stages/<STAGE>.yaml, e.g. dev or prod.", show_default=False),
]
SandboxOpt = Annotated[
    bool,
    typer.Option(
        "--sandbox",
        envvar="ORCH_SANDBOX",
        help="Deploy into the embedded AWS emulator on this machine instead of AWS "
        "(also ORCH_SANDBOX=1). Starts it in the background when needed.",
    ),
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        envvar="ORCH_PROJECT_DIR",
        help="Project folder (with stages/ and modules/). Default: the nearest one above the "
        "current folder.",
        show_default=False,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the steps orch would take and change nothing (nothing is "
                 "started, built or written)."),
]
FILES = ("backend.tf", "main.tf", "terraform.tfvars.json")


def _console():
    from orch.reporter import Console

    return Console()


def _err(message: str) -> None:
    _console().err(message)


def _out(message: str) -> None:
    _console().out(message)


def _log(message: str) -> None:
    _err(f"orch: {message}")


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(question: str) -> bool:
    return typer.confirm(question, default=False, err=True)


def _require_sandbox() -> None:
    from orch.sandbox import require_installed

    require_installed()  # before anything starts: a clear error naming orch[sandbox]



def _deployer(project: Path | None, stage: str, sandbox: bool, *, yes: bool = False):
    """The one object a deploy command uses (orch.deploy.create_deployer with real collaborators)."""
    if sandbox:
        _require_sandbox()
    from orch.deploy import create_deployer, project_dir_from
    from orch.reporter import ConsoleReporter

    return create_deployer(
        project_dir_from(project), stage, sandbox=sandbox, reporter=ConsoleReporter(_console()),
        ask=_ask, interactive=_interactive(), yes=yes, color=_color(),
    )


@app.command()
def plan(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 0 when nothing would change, 2 when something would (as terraform plan).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save the plan to this file for `orch apply --plan FILE`.", show_default=False),
    ] = None,
    project: ProjectOpt = None,
) -> int:
    """Show what `orch apply STAGE` would change.

    Renders the stage's Terraform files, packages the function, runs `terraform init` only
    when needed, then `terraform plan` (saved to a file and read back as JSON for the counts).
    """
    outcome = _deployer(project, stage, sandbox).plan(out=out.resolve() if out else None)
    _log(f"plan for stage {stage!r}: {outcome.plan.text()}")
    if out:
        _log(f"saved the plan to {out}; apply exactly it with `orch apply {stage} --plan {out}`")
    if detailed_exitcode and outcome.plan.has_changes:
        return ExitCode.CHANGES_PRESENT
    return ExitCode.OK


@app.command()
def apply(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    yes: YesOpt = False,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Apply exactly this saved plan (from `orch plan --out`); refused if stale.",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    project: ProjectOpt = None,
) -> int:
    """Deploy STAGE and print the invoke URL.

    One Terraform run plans and applies. Protected stages (`protected: true`, like prod) show
    the plan and ask first unless --yes is given; without a terminal they need --yes.
    """
    outcome = _deployer(project, stage, sandbox, yes=yes).apply(plan_file=plan_file, dry_run=dry_run)
    if outcome.dry_run:
        return ExitCode.OK
    outputs = outcome.outputs
    if outcome.plan is not None and not outcome.plan.has_changes:
        _log(f"stage {stage!r} is up to date: nothing to apply")
    else:
        _log(f"stage {stage!r} deployed ({outcome.plan.text() if outcome.plan else 'saved plan'}): "
             f"function {outputs.get('function_name')}, API {outputs.get('rest_api_id')}")
    if sandbox:
        _log("invoke URL (served by orch's local gateway):")
    else:
        _log("invoke URL:")
    _out(outputs.get("invoke_url", ""))
    return ExitCode.OK


@app.command()
def destroy(
    stage: StageArg, sandbox: SandboxOpt = False, yes: YesOpt = False, dry_run: DryRunOpt = False,
    project: ProjectOpt = None,
) -> int:
    """Delete every resource of STAGE (asks first unless --yes)."""
    deployer = _deployer(project, stage, sandbox, yes=yes)
    destroyed = deployer.destroy(dry_run=dry_run)
    if not dry_run:
        _log(f"stage {stage!r} destroyed" if destroyed else f"stage {stage!r}: nothing was destroyed")
    return ExitCode.OK


@app.command()
def unlock(
    stage: StageArg,
    lock_id: Annotated[str, typer.Argument(metavar="LOCK_ID", help="The lock's ID, as orch's lock error names it.",
                                           show_default=False)],
    sandbox: SandboxOpt = False, yes: YesOpt = False, dry_run: DryRunOpt = False, project: ProjectOpt = None,
) -> int:
    """Force open STAGE's state lock that a killed Terraform run left (`terraform force-unlock`).

    Refused when the lock is not LOCK_ID, or a Terraform process of this project still holds
    it. Asks first unless --yes. The next plan or apply then adopts whatever the killed run
    left in AWS outside Terraform's state.
    """
    from orch.statelock import NotLocked

    try:
        _deployer(project, stage, sandbox, yes=yes).unlock(lock_id, dry_run=dry_run)
    except NotLocked as exc:
        _log(exc.message)
        return ExitCode.OK
    if not dry_run:
        _log(f"the state lock {lock_id} of stage {stage!r} is open")
    return ExitCode.OK


@app.command()
def output(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print all outputs as one JSON object.")] = False,
    project: ProjectOpt = None,
) -> int:
    """Print the deployed stage's outputs: invoke_url, rest_api_id, function_name, stage_name, ..."""
    values = _deployer(project, stage, sandbox).outputs()
    if as_json:
        _out(json.dumps(values, indent=2, sort_keys=True))
    else:
        width = max(len(k) for k in values)
        for key in sorted(values):
            _out(f"{key.ljust(width)}  {values[key]}")
    return ExitCode.OK


@app.command()
def render(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    project: ProjectOpt = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="Show only this file: backend.tf, main.tf or terraform.tfvars.json."),
    ] = None,
) -> int:
    """Show the Terraform files orch would hand to Terraform for STAGE (writes nothing)."""
    if file is not None and file not in FILES:
        raise ConfigError(f"--file {file}: not one of {', '.join(FILES)}.")
    from orch.config import load_stage
    from orch.deploy import project_dir_from, render_only

    files = render_only(load_stage(project_dir_from(project), stage), sandbox)
    for name, content in files.items():
        if file is None or name == file:
            if file is None:
                _out(f"# ----- {name}")
            _out(content.rstrip("\n"))
    return ExitCode.OK


@app.command()
def package(stage: StageArg, project: ProjectOpt = None) -> int:
    """Build STAGE's function zip (deterministic) and print its path and SHA-256."""
    from orch import package as package_mod
    from orch.config import load_stage
    from orch.deploy import package_stage, project_dir_from

    st = load_stage(project_dir_from(project), stage)
    result = package_stage(st)
    _log(
        f"{st.function_name}: {result.file_count} files, {result.size / 1e6:.2f} MB zipped, "
        f"{result.unzipped_size / 1e6:.2f} MB unzipped"
        + (" (over 50 MB: deploys through the stage's artifacts.bucket)" if package_mod.needs_s3(result) else "")
    )
    _out(f"{result.path}  sha256:{result.sha256_hex}")
    return ExitCode.OK


@app.command()
def init(
    folder: Annotated[
        Path, typer.Argument(metavar="[DIR]", help="Folder of the new project (created when missing).")
    ] = Path("."),
    name: Annotated[
        str | None,
        typer.Option("--name", help="Project name, the prefix of every resource name. Default: from DIR.",
                     show_default=False),
    ] = None,
) -> int:
    """Write a new project: stages (defaults, dev, prod), an example function, .gitignore.

    Never overwrites a file. Then `orch apply dev --sandbox` in DIR deploys it.
    """
    from orch.init import init_project

    written = init_project(folder, name)
    for path in written:
        _log(f"wrote {path}")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    _log(f"next: {where}orch apply dev --sandbox")
    return ExitCode.OK


@app.command()
def stages(
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> int:
    """List the stages and where each one deploys."""
    from orch.config import load_all
    from orch.deploy import project_dir_from

    rows = []
    for st in load_all(project_dir_from(project)):
        cfg = st.config
        backend = "local state" if cfg.backend.type == "local" else f"s3://{cfg.backend.bucket}"
        rows.append(
            {
                "stage": st.name,
                "region": cfg.region,
                "function": st.function_name,
                "api": st.api_name,
                "api_stage": st.stage_name,
                "backend": backend,
                "protected": cfg.protected,
            }
        )
    if as_json:
        _out(json.dumps(rows, indent=2))
        return ExitCode.OK
    headers = ["stage", "region", "function", "api", "backend", "protected"]
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) if rows else len(h) for h in headers}
    _out("  ".join(h.upper().ljust(widths[h]) for h in headers))
    for r in rows:
        _out("  ".join(str(r[h]).ljust(widths[h]) for h in headers))
    return ExitCode.OK


@app.command()
def serve(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    port: Annotated[int, typer.Option("--port", help="Port of the foreground gateway (0: a free one).")] = 0,
    project: ProjectOpt = None,
) -> int:
    """Serve STAGE's invoke URL in the foreground with request logs (sandbox deployments).

    The sandbox already serves every deployed stage in the background; this runs a gateway
    you can watch, on a port you choose.
    """
    if not sandbox:
        raise ConfigError(
            "orch serve runs the local gateway for a sandbox deployment: add --sandbox "
            "(and deploy first with `orch apply STAGE --sandbox`)."
        )
    from orch.deploy import sandbox_invoke_url
    from orch.facts import running_sandbox
    from orch.gateway.app import run_foreground

    deployer = _deployer(project, stage, sandbox)
    values = deployer.outputs()  # fails clearly when the stage is not deployed in the running sandbox
    info = running_sandbox(deployer.stage.project_dir)
    if info is None:
        raise SandboxError("the sandbox stopped.", hint=f"Run `orch apply {stage} --sandbox` again.")

    def ready(server) -> None:
        url = sandbox_invoke_url(server.url, values["rest_api_id"], values["stage_name"])
        _log(f"serving stage {stage!r} at {url} (Ctrl-C stops)")

    run_foreground(
        "127.0.0.1", port, aws_endpoint=info.endpoint, region=deployer.stage.config.region,
        project_dir=deployer.stage.project_dir, log=_err, ready=ready,
    )
    return ExitCode.OK


@sandbox_app.command("start")
def sandbox_start(
    project: ProjectOpt = None,
    port: Annotated[int | None, typer.Option("--port", envvar="ORCH_SANDBOX_PORT", help="Emulator port.")] = None,
    gateway_port: Annotated[
        int | None, typer.Option("--gateway-port", envvar="ORCH_GATEWAY_PORT", help="Local gateway port.")
    ] = None,
) -> int:
    """Start the sandbox in the background (no-op when it is already running)."""
    from orch import sandbox as sandbox_mod
    from orch.deploy import project_dir_from

    _require_sandbox()
    info = sandbox_mod.ensure_running(project_dir_from(project), port=port, gateway_port=gateway_port, log=_log)
    _out(info.endpoint)
    return ExitCode.OK


@sandbox_app.command("stop")
def sandbox_stop(project: ProjectOpt = None) -> int:
    """Stop the sandbox. Its resources are lost; orch starts stages clean next time."""
    from orch import sandbox as sandbox_mod
    from orch.deploy import project_dir_from

    stopped = sandbox_mod.stop(project_dir_from(project))
    _log("sandbox stopped" if stopped else "the sandbox was not running")
    return ExitCode.OK


@sandbox_app.command("status")
def sandbox_status(
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> int:
    """Show whether the sandbox runs, and its endpoints."""
    from orch import sandbox as sandbox_mod
    from orch.deploy import project_dir_from

    running, info = sandbox_mod.status(project_dir_from(project))
    data: dict[str, Any] = info.status(running) if info else {"running": False, "endpoint": None}
    if as_json:
        _out(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            _out(f"{key:17} {value}")
    return ExitCode.OK


def _stop_sandbox_started_here() -> None:
    """A command that fails on its configuration leaves no sandbox behind that it started."""
    from orch import sandbox as sandbox_mod

    sandbox_mod.stop_started_here()


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command, turning expected failures into messages and exit codes.

    SIGTERM (how CI cancels a job) unwinds like Ctrl-C and exits 143 with a message; while
    Terraform runs, orch.terraform passes both on to it instead.
    """
    from orch.aws import SANDBOX_CREDENTIALS_ENV
    from orch.redact import register_aws_credentials

    register_aws_credentials(dummies=SANDBOX_CREDENTIALS_ENV.values())  # masked in all orch prints
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="orch", standalone_mode=False)
    except OrchError as exc:
        if isinstance(exc, ConfigError):
            _stop_sandbox_started_here()
        _err(f"orch: {exc.title}: {exc.message}")
        if exc.hint:
            _err(exc.hint)
        return int(exc.exit_code)
    except typer.Abort:
        _err("orch: aborted")
        return int(ExitCode.ABORTED)
    except Exception as exc:  # noqa: BLE001 - command-line parsing errors, see below
        # Typer raises click-style exceptions (UsageError, BadParameter, NoArgsIsHelpError)
        # from its own vendored copy of click; recognise them by shape, not by import path.
        show = getattr(exc, "show", None)
        if show is None or not hasattr(exc, "exit_code"):
            raise
        show(file=sys.stderr)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return int(ExitCode.OK)
        return int(ExitCode.USAGE)
    except Terminated:
        _err("orch: interrupted: SIGTERM")
        return int(ExitCode.TERMINATED)
    except KeyboardInterrupt:
        _err("orch: interrupted")
        return int(ExitCode.ABORTED)
    return int(result or 0)


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
