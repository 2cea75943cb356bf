"""orch's command line: thin Typer commands that hand off to orch.deploy and friends.

Each command parses its arguments, builds one object and calls one method. `main()` is the
only place that turns an OrchError into a message and an exit code (orch.errors owns the
codes); every line goes out through one orch.reporter.Console. Heavy libraries (boto3,
moto, python-terraform) are imported only by the commands that need them, so `orch --help`
stays fast.
"""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from orch.errors import ConfigError, ExitCode, NotDeployedError, OrchError, Terminated


class _Interrupt(Exception):
    """Ctrl-C or SIGTERM (a KeyboardInterrupt or Terminated in ``original``) that ended a
    command, carried past Typer: its ``main`` turns a KeyboardInterrupt into a silent exit
    130, which would lose orch's message and SIGTERM's 143."""

    def __init__(self, original: KeyboardInterrupt) -> None:
        super().__init__(original)
        self.original = original


class _OrchGroup(typer.core.TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupt(exc) from exc


app = typer.Typer(
    cls=_OrchGroup,
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
    context_settings={"help_option_names": ["-h", "--help"]},
)
sandbox_app = typer.Typer(
    help="Start, stop or inspect the sandbox (AWS emulator + local gateway on this machine).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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
        help="Work on the stage in the embedded AWS emulator on this machine instead of AWS "
        "(also ORCH_SANDBOX=1). Starts it in the background when needed.",
    ),
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project",
        envvar="ORCH_PROJECT_DIR",
        help="Project folder (the one with stages/; modules/ is optional). Default: the nearest one above the "
        "current folder.",
        show_default=False,
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
ManyStageArg = Annotated[
    str | None,
    typer.Argument(metavar="STAGE", help="Stage name: stages/<STAGE>.yaml, e.g. dev or prod (or --all, --stages).",
                   show_default=False),
]
AllOpt = Annotated[
    bool, typer.Option("--all", help="Every stage in stages/, concurrently (each line prefixed with its stage).")
]
StagesOpt = Annotated[
    str | None,
    typer.Option("--stages", help="These stages (comma-separated, e.g. dev,prod), concurrently.", show_default=False),
]
AllowDestroyOpt = Annotated[
    bool,
    typer.Option("--allow-destroy", help="Apply even when the plan destroys or replaces a protected stage's "
                 "API, API stage or function (refused otherwise)."),
]


DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the steps orch would take and change nothing (nothing is "
                 "started, built or written)."),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option("--junit", help="Also write the smoke checks as a JUnit XML file (for CI).", show_default=False),
]
FILES = ("backend.tf", "main.tf", "terraform.tfvars.json")


def _version() -> str:
    """orch's installed version (the package metadata; the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("orch")
    except PackageNotFoundError:
        from orch import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        _out(f"orch {_version()}")
        raise typer.Exit(0)


@app.callback()
def _options(
    _version_flag: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print orch's version and exit."),
    ] = False,
) -> None:
    """Deploy a Lambda function behind an API Gateway REST API, one stage at a time."""


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
    """The person's yes/no on the terminal (several stages at once and `orch ci`: plain lines)."""
    return typer.confirm(question, default=False, err=True)


def _asker(reporter):
    """The person's yes/no on the terminal, with the live status line lifted meanwhile."""

    def ask(question: str) -> bool:
        with reporter.paused():
            return typer.confirm(question, default=False, err=True)

    return ask


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def _require_sandbox() -> None:
    from orch.sandbox import require_installed

    require_installed()  # before anything starts: a clear error naming orch[sandbox]



def _deployer(project: Path | None, stage: str, sandbox: bool, *, yes: bool = False, allow_destroy: bool = False):
    """The one object a deploy command uses (orch.deploy.create_deployer with real collaborators)."""
    if sandbox:
        _require_sandbox()
    from orch.deploy import create_deployer, project_dir_from
    from orch.reporter import for_terminal

    reporter = for_terminal(_console())  # a live status line on a terminal, plain lines elsewhere
    return create_deployer(
        project_dir_from(project), stage, sandbox=sandbox, reporter=reporter,
        ask=_asker(reporter), interactive=_interactive(), yes=yes, color=_color(), allow_destroy=allow_destroy,
    )


def _selected(stage: str | None, all_stages: bool, stages: str | None, project: Path | None,
              *single_only: tuple[str, Any]) -> list[str] | None:
    """The stages of --all / --stages (None: one STAGE). Exactly one of the three; options
    that only make sense for one stage (`single_only`: (flag, value)) are refused with many."""
    given = [name for name, value in (("STAGE", stage), ("--all", all_stages), ("--stages", stages)) if value]
    if not given:
        raise typer.BadParameter("Missing argument 'STAGE': give a STAGE, --all or --stages.")
    if len(given) > 1:
        raise typer.BadParameter(f"give only one of STAGE, --all or --stages (got {' and '.join(given)}).")
    if stage is not None:
        return None
    for flag, value in single_only:
        if value:
            raise typer.BadParameter(f"{flag} works with one STAGE, not with {given[0]}")
    from orch.config import stage_names
    from orch.deploy import project_dir_from

    known = stage_names(project_dir_from(project))
    if all_stages:
        return known
    names = [name.strip() for name in (stages or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        what = "unknown stage " + ", ".join(map(repr, unknown)) if unknown else "no stage named"
        raise ConfigError(f"--stages {stages}: {what}.", hint=f"Known stages: {', '.join(known) or 'none'}.")
    return names


def _many(project: Path | None, names: list[str], sandbox: bool, command: str, *, yes: bool = False,
          allow_destroy: bool = False, detailed_exitcode: bool = False, smoke: bool = True,
          skip_promotion_check: bool = False):
    """`orch plan|apply --all`: every stage concurrently through orch.multistage, each with its
    own Deployer and prefixed reporter; the summary table on stdout; returns the runs."""
    if sandbox:
        _require_sandbox()
    from orch.deploy import project_dir_from
    from orch.multistage import run_stages, table
    from orch.stagework import StageWork

    console = _console()
    work = StageWork(project_dir_from(project), sandbox=sandbox, ask=_ask, interactive=_interactive(), yes=yes,
                     color=_color(), allow_destroy=allow_destroy)
    if command == "plan":
        runs = run_stages(names, work.planner(detailed_exitcode=detailed_exitcode), console)
    else:
        runs = run_stages(names, work.applier(smoke=smoke, skip_promotion_check=skip_promotion_check), console,
                          after=work.promotion_order(names))
    for line in table(runs):
        console.out(line)
    return runs


@app.command()
def plan(
    stage: ManyStageArg = None,
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
    all_stages: AllOpt = False,
    stages: StagesOpt = None,
) -> int:
    """Show what `orch apply STAGE` would change.

    Renders the stage's Terraform files, packages the function, runs `terraform init` only
    when needed, then `terraform plan` (saved to a file and read back as JSON for the counts).
    With --all or --stages: those stages concurrently, then a summary table.
    """
    started = time.monotonic()
    many = _selected(stage, all_stages, stages, project, ("--out", out))
    if many is not None:
        from orch.multistage import exit_code

        runs = _many(project, many, sandbox, "plan", detailed_exitcode=detailed_exitcode)
        return exit_code(runs)
    assert stage is not None
    deployer = _deployer(project, stage, sandbox)
    outcome = deployer.plan(out=out.resolve() if out else None)
    deployer.reporter.summary(f"plan for stage {stage!r}: {outcome.plan.text()} ({_since(started)})")
    if out:
        deployer.reporter.summary(f"saved the plan to {out}; apply exactly it with `orch apply {stage} --plan {out}`")
    if detailed_exitcode and outcome.plan.has_changes:
        return ExitCode.CHANGES_PRESENT
    return ExitCode.OK


@app.command()
def apply(
    stage: ManyStageArg = None,
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
    no_smoke: Annotated[
        bool, typer.Option("--no-smoke", help="Do not run the smoke checks after applying (nothing is rolled "
                           "back; the release is recorded as unchecked).")
    ] = False,
    skip_promotion_check: Annotated[
        bool, typer.Option("--skip-promotion-check", help="Apply a package the stage's promote_from stage never "
                           "passed (warns, and the release record says so).")
    ] = False,
    junit: JunitOpt = None,
    project: ProjectOpt = None,
    allow_destroy: AllowDestroyOpt = False,
    all_stages: AllOpt = False,
    stages: StagesOpt = None,
) -> int:
    """Deploy STAGE, run its smoke checks and print the invoke URL.

    One Terraform run plans and applies. Protected stages (`protected: true`, like prod) show
    the plan and ask first unless --yes is given; without a terminal they need --yes. When the
    smoke checks fail, orch rolls the stage back to its last good release through Terraform,
    checks it again and exits 6. A plan that destroys or replaces a protected stage's API, API
    stage or function stops the apply unless --allow-destroy. With --all or --stages: those
    stages concurrently (a stage with `promote_from` after that stage), then a summary table.
    """
    started = time.monotonic()
    many = _selected(stage, all_stages, stages, project, ("--plan", plan_file), ("--dry-run", dry_run),
                     ("--junit", junit))
    if many is not None:
        from orch.multistage import exit_code

        runs = _many(project, many, sandbox, "apply", yes=yes, allow_destroy=allow_destroy,
                     smoke=not no_smoke, skip_promotion_check=skip_promotion_check)
        return exit_code(runs)
    assert stage is not None
    deployer = _deployer(project, stage, sandbox, yes=yes, allow_destroy=allow_destroy)
    outcome = deployer.apply(plan_file=plan_file, dry_run=dry_run, smoke=not no_smoke,
                             skip_promotion_check=skip_promotion_check)
    if outcome.dry_run:
        return ExitCode.OK
    verdict = outcome.verdict
    if junit is not None and verdict is not None:
        _write_junit(junit, [r for r in (verdict.smoke, verdict.recheck) if r is not None])
    outputs = outcome.outputs
    summary = deployer.reporter.summary
    if verdict is not None and not verdict.ok:
        pass  # the verdict says what happened (below, exit 6)
    elif outcome.plan is not None and not outcome.plan.has_changes:
        summary(f"stage {stage!r} is up to date: nothing to apply ({_since(started)})")
    else:
        summary(f"stage {stage!r} deployed in {_since(started)} "
                f"({outcome.plan.text() if outcome.plan else 'saved plan'}): "
                f"function {outputs.get('function_name')}, API {outputs.get('rest_api_id')}")
    summary("invoke URL (served by orch's local gateway):" if sandbox else "invoke URL:")
    _out(outputs.get("invoke_url", ""))
    _raise_unless_ok(verdict)
    return ExitCode.OK


@app.command()
def destroy(
    stage: StageArg, sandbox: SandboxOpt = False, yes: YesOpt = False, dry_run: DryRunOpt = False,
    project: ProjectOpt = None,
) -> int:
    """Delete every resource of STAGE (asks first unless --yes)."""
    started = time.monotonic()
    deployer = _deployer(project, stage, sandbox, yes=yes)
    destroyed = deployer.destroy(dry_run=dry_run)
    if not dry_run:
        deployer.reporter.summary((f"stage {stage!r} destroyed" if destroyed else f"stage {stage!r}: nothing was "
                                   "destroyed") + f" ({_since(started)})")
    return ExitCode.OK


@app.command()
def sync(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="After the first release, release again whenever a file in the function's "
                     "source folder is saved (Ctrl-C stops)."),
    ] = False,
    dry_run: DryRunOpt = False,
    no_smoke: Annotated[
        bool, typer.Option("--no-smoke", help="Do not run the stage's smoke checks after releasing.")
    ] = False,
    project: ProjectOpt = None,
) -> int:
    """Release STAGE's code in seconds, without Terraform (unprotected stages only).

    Packages the function and, when that is not the code the stage's alias serves, updates
    the function's code, publishes a version and moves the stage's alias to it, then runs the
    stage's smoke checks: when they fail, the alias moves back and orch exits 6. Each release
    is recorded (kind sync, as `orch apply` records its own), so `orch rollback` and the
    promotion guard count it. Terraform's state is not edited: `orch plan STAGE` shows the
    release as pending until the next `orch apply STAGE`, which converges. Refused (exit 3)
    for protected stages.
    """
    started = time.monotonic()
    deployer = _deployer(project, stage, sandbox)
    where = " --sandbox" if sandbox else ""

    def report(outcome, error) -> None:
        nonlocal started
        if error is not None:
            _err(f"orch: {error.title}: {error.message}")
            if error.hint:
                _err(error.hint)
        elif outcome.release is None:
            deployer.reporter.summary(
                f"stage {stage!r} already serves this code (version {outcome.live.version} of "
                f"{outcome.live.function_name}): nothing to release ({_since(started)})")
        else:
            release = outcome.release
            deployer.reporter.summary(
                f"stage {stage!r}: released version {release.version} of {release.function_name} (was "
                f"{release.previous_version}) in {_since(started)}, without Terraform; `orch plan {stage}{where}` "
                f"shows it as pending until `orch apply {stage}{where}`")
        started = time.monotonic()

    def watching() -> None:
        nonlocal started
        _log(f"watching {deployer.stage.source_dir} for saved changes (Ctrl-C stops)")
        started = time.monotonic()

    if dry_run:
        deployer.sync(dry_run=True, smoke=not no_smoke)
        return ExitCode.OK
    if not watch:
        report(deployer.sync(smoke=not no_smoke), None)
        return ExitCode.OK
    try:
        deployer.watch_sync(report, on_watching=watching, smoke=not no_smoke)
    except KeyboardInterrupt:
        pass
    _log("stopped watching")
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
    """Write a new project: stages (defaults, dev, prod, the CI policy ci.yaml), an example
    function, .gitignore, and CI files for Travis CI and GitHub Actions that run `orch ci`.

    Never overwrites a file. Then `orch apply dev --sandbox` in DIR deploys it.
    """
    from orch.init import ci_package_source, init_project

    written = init_project(folder, name)
    for path in written:
        _log(f"wrote {path}")
    if ci_package_source() is None:
        _log("before CI can run: set ORCH_PACKAGE in .travis.yml and .github/workflows/orch.yml to where "
             "your team installs orch from (a pinned git URL or a wheel; public PyPI's `orch` is another project)")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    _log(f"next: {where}orch apply dev --sandbox")
    return ExitCode.OK


class DocumentFormat(enum.StrEnum):
    json = "json"
    yaml = "yaml"


OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write to this file instead of standard output.", show_default=False),
]


@app.command("openapi")
def openapi_command(
    stage: StageArg,
    fmt: Annotated[DocumentFormat, typer.Option("--format", help="json or yaml.")] = DocumentFormat.json,
    extensions: Annotated[
        bool, typer.Option("--extensions", help="Add API Gateway's x-amazon-apigateway-* blocks (integrations, "
                           "validators, CORS gateway responses).")
    ] = False,
    out: OutOpt = None,
    project: ProjectOpt = None,
) -> int:
    """Print STAGE's API as an OpenAPI 3.0 document (validated), from the stage's definition."""
    from orch import openapi
    from orch.config import load_stage
    from orch.deploy import project_dir_from

    text = openapi.render(openapi.document(load_stage(project_dir_from(project), stage), extensions=extensions),
                          fmt.value)
    if out is None:
        _out(text.rstrip("\n"))
    else:
        from orch.docs import write

        _log(f"wrote {write(text, out)}")
    return ExitCode.OK


@app.command("docs")
def docs_command(
    stage: StageArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the page here. Default: .orch/docs/STAGE/index.html.", show_default=False),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Also upload the page to the stage's docs.bucket (docs.key).")
    ] = False,
    sandbox: SandboxOpt = False,
    project: ProjectOpt = None,
) -> int:
    """Write STAGE's API documentation: one HTML page (Swagger UI, works offline) of its OpenAPI document."""
    from orch import docs, openapi
    from orch.config import load_stage
    from orch.deploy import project_dir_from

    st = load_stage(project_dir_from(project), stage)
    target = docs.publish_target(st) if publish else None  # a missing bucket fails before anything is written
    if publish and sandbox:
        _require_sandbox()
    text = docs.page(openapi.as_dict(openapi.document(st)))
    path = docs.write(text, out or docs.default_path(st))
    _log(f"wrote {path} ({len(text) / 1e6:.1f} MB, Swagger UI {docs.ui_version()})")
    if target is not None:
        _log(f"published {_publish_page(st, sandbox, target, text)}")
    _out(str(path))
    return ExitCode.OK


def _publish_page(st: Any, sandbox: bool, target: tuple[str, str], text: str) -> str:
    from orch.aws import Aws

    bucket, key = target
    region = st.config.region
    if sandbox:
        from orch import sandbox as sandbox_mod

        aws = Aws.for_sandbox(sandbox_mod.ensure_running(st.project_dir, region=region, log=_log).endpoint, region)
        aws.ensure_bucket(bucket, region)  # the sandbox's S3 starts empty
    else:
        aws = Aws.for_aws(region)
        aws.check_credentials()
    return aws.put_page(bucket, key, text)


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
    reload: Annotated[
        bool,
        typer.Option("--reload/--no-reload", help="Run the stages' source folders, so a saved edit answers at "
                     "once (hot reload); --no-reload serves the deployed packages."),
    ] = True,
    project: ProjectOpt = None,
) -> int:
    """Serve STAGE's invoke URL in the foreground with request logs (sandbox deployments).

    The sandbox already serves every deployed stage in the background; this runs a gateway
    you can watch, on a port you choose. Routes, templates and settings are what was
    deployed; with hot reload (the default) the code is the stage's source folder.
    """
    if not sandbox:
        raise ConfigError(
            "orch serve runs the local gateway for a sandbox deployment: add --sandbox "
            "(and deploy first with `orch apply STAGE --sandbox`)."
        )
    from orch.deploy import sandbox_invoke_url
    from orch.errors import SANDBOX_NOT_RUNNING
    from orch.facts import running_sandbox
    from orch.gateway.app import run_foreground

    deployer = _deployer(project, stage, sandbox)
    values = deployer.outputs()  # NotDeployedError when the stage is not deployed in the running sandbox
    info = running_sandbox(deployer.stage.project_dir)
    if info is None:  # stopped since
        raise deployer.not_deployed(SANDBOX_NOT_RUNNING)

    def ready(server) -> None:
        url = sandbox_invoke_url(server.url, values["rest_api_id"], values["stage_name"])
        _route_table(server.registry.get_api(values["rest_api_id"], values["stage_name"]))
        _log(f"serving stage {stage!r} at {url} (Ctrl-C stops)")

    run_foreground(
        "127.0.0.1", port, aws_endpoint=info.endpoint, region=deployer.stage.config.region,
        project_dir=deployer.stage.project_dir, log=_err, ready=ready, reload=reload,
    )
    return ExitCode.OK


def _route_table(api) -> None:
    """The deployed stage's routes, one a line: what `orch serve` answers (anything else is 403)."""
    from orch.gateway.model import routes

    rows = routes(api)
    _log(f"routes of stage {api.stage_name!r} as deployed (`orch apply` changes them; any other is 403):")
    width = max((len(path) for _verb, path, _target in rows), default=1)
    for verb, path, target in rows:
        _log(f"  {verb:<7} {path:<{width}}  {target}")


@app.command()
def ci(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what this build would run; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print the decision as JSON: {"actions": [{"command", '
                                          '"stage", "target"}, ...], ...}.')] = False,
    sandbox: SandboxOpt = False,
    allow_stale_commit: Annotated[
        bool, typer.Option("--allow-stale-commit", help="Apply even when this build's commit is no longer the head "
                           "of the branch it deploys (or its tag is not the newest release).")
    ] = False,
    allow_destroy: AllowDestroyOpt = False,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="Write the pull-request plan summary (Markdown) here. "
                                  "Default: .orch/ci/plan-summary.md.", show_default=False)
    ] = None,
    project: ProjectOpt = None,
) -> int:
    """Run what this CI build calls for (Travis CI or GitHub Actions), as stages/ci.yaml says.

    A pull request plans every stage (a fork's, without secrets, in the sandbox) and posts a
    summary; a push to main applies dev; a release tag (v1.2.3) applies prod; each apply is
    smoke-checked and reported to Slack (SLACK_WEBHOOK_URL). Anything else: nothing.
    """
    from orch.ci.run import CiOptions, CiRun
    from orch.deploy import project_dir_from
    from orch.stagework import StageWork

    project_dir = project_dir_from(project)
    options = CiOptions(dry_run=dry_run, as_json=as_json, sandbox=sandbox, allow_stale_commit=allow_stale_commit,
                        allow_destroy=allow_destroy, summary_path=summary.resolve() if summary else None)

    def stage_work(*, sandbox: bool, yes: bool) -> StageWork:
        if sandbox:
            _require_sandbox()
        return StageWork(project_dir, sandbox=sandbox, ask=_ask, interactive=False, yes=yes, color=_color(),
                         allow_destroy=allow_destroy)

    try:
        return CiRun(project_dir, os.environ, _console(), options, stage_work=stage_work).run()
    finally:
        _stop_sandbox_started_here()  # a fork's plan started one: the job leaves nothing running


@sandbox_app.command("start")
def sandbox_start(
    project: ProjectOpt = None,
    port: Annotated[int | None, typer.Option("--port", envvar="ORCH_SANDBOX_PORT", help="Emulator port.")] = None,
    gateway_port: Annotated[
        int | None, typer.Option("--gateway-port", envvar="ORCH_GATEWAY_PORT", help="Local gateway port.")
    ] = None,
    reload: Annotated[
        bool | None,
        typer.Option("--reload/--no-reload", help="Hot reload: the background gateway runs the stages' source "
                     "folders, so a saved edit answers at once (default; ORCH_RELOAD=0 turns it off). "
                     "--no-reload serves the deployed packages.", show_default=False),
    ] = None,
) -> int:
    """Start the sandbox in the background (no-op when it is already running)."""
    from orch import sandbox as sandbox_mod
    from orch.deploy import project_dir_from

    _require_sandbox()
    info = sandbox_mod.ensure_running(project_dir_from(project), port=port, gateway_port=gateway_port, log=_log,
                                      reload=reload)
    if reload is not None and info.reload != reload:
        _log(f"the sandbox already runs with hot reload {'on' if info.reload else 'off'}; "
             "`orch sandbox stop` first to change that (a stopped sandbox loses its resources)")
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


# ---------------------------------------------------------------------------- verified releases

def _write_junit(path: Path, reports: list) -> None:
    from orch.smoke import write_junit

    write_junit(reports, path)
    _log(f"wrote the smoke checks to {path} (JUnit XML)")


def _raise_unless_ok(verdict) -> None:
    """Exit 6 (SmokeError) saying what was rolled back and why, unless the release is fine."""
    if verdict is None or verdict.ok:
        return
    from orch.errors import SmokeError

    hints = {
        "rolled_back": "The failed release stays recorded; `orch plan` shows it as the pending change. Fix it and "
                       "apply again, or look at `orch logs`.",
        "failed": "There is no earlier good release: the stage serves the failed release. See `orch logs`.",
        "rollback_failed": "The stage serves the earlier release, which fails its checks now too.",
    }
    raise SmokeError(verdict.message(), hint=hints.get(verdict.status))


@app.command()
def smoke(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    junit: JunitOpt = None,
    project: ProjectOpt = None,
) -> int:
    """Run STAGE's smoke checks against what is deployed: exit 0 when all pass, 6 otherwise.

    Control plane through AWS's API (API, stage, newest deployment, stage variables, alias,
    function state, invoke permission) and the stage's `smoke.checks` as real HTTP requests,
    each failing check tried again with backoff until `smoke.timeout` (60 s on AWS, 10 s in the
    sandbox).
    """
    from orch.errors import SmokeError
    from orch.smoke import table_lines, to_json

    report = _deployer(project, stage, sandbox).smoke()
    if junit is not None:
        _write_junit(junit, [report])
    if as_json:
        _out(to_json(report))
    else:
        for line in table_lines(report):
            _out(line)
    if not report.passed:
        from orch.releases import failure_reason

        raise SmokeError(f"stage {stage!r}: {failure_reason(report)}.")
    return ExitCode.OK


@app.command()
def rollback(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="VERSION", help="Roll back to the release that served this function version "
                     "(default: the last release that passed its checks).", show_default=False),
    ] = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    junit: JunitOpt = None,
    project: ProjectOpt = None,
) -> int:
    """Roll STAGE back to an earlier release (an apply's or a sync's) through Terraform, then check it again.

    The function stays as it is (nothing is published): the stage's alias is pinned to the
    earlier version and the API and stage get that release's settings. The next `orch apply`
    releases the stage files again.
    """
    verdict = _deployer(project, stage, sandbox, yes=yes).rollback(to_version=to, dry_run=dry_run)
    if dry_run or verdict is None:
        return ExitCode.OK
    if junit is not None and verdict.recheck is not None:
        _write_junit(junit, [verdict.recheck])
    target = verdict.rolled_back_to
    if verdict.recheck is not None and verdict.recheck.passed and target is not None:
        _log(f"stage {stage!r} rolled back to {target.short}; its smoke checks pass")
        return ExitCode.OK
    from orch.errors import SmokeError

    raise SmokeError(f"stage {stage!r} was rolled back to {target.short if target else '?'}, but its smoke "
                     "checks fail.", hint="See `orch logs` and `orch smoke`.")


def _function_target(project: Path | None, stage: str, sandbox: bool, *, gateway: bool) -> FunctionTarget:
    """The FunctionTarget of logs and invoke: the emulator (or, for `gateway`, the local gateway,
    which answers Lambda's Invoke) in the sandbox, else AWS after the credentials check.

    Raises NotDeployedError (exit 8) when the sandbox is not running, was restarted since
    the stage was applied, or never held it; AwsError (exit 5) for the credentials."""
    from orch.aws import Aws
    from orch.config import load_stage
    from orch.deploy import project_dir_from
    from orch.errors import NEVER_APPLIED, SANDBOX_NOT_RUNNING, SANDBOX_RESTARTED
    from orch.facts import read_epoch, running_sandbox, workdir_of
    from orch.secrets import register_available

    st = load_stage(project_dir_from(project), stage)
    register_available(st)  # a handler that prints its secret: masked in logs and answers
    region = st.config.region
    if not sandbox:
        aws = Aws.for_aws(region)
        account = aws.check_credentials()
        return FunctionTarget(st, aws, account)
    _require_sandbox()
    info = running_sandbox(st.project_dir)
    recorded = read_epoch(workdir_of(st, "sandbox"))
    why = (SANDBOX_NOT_RUNNING if info is None else None if recorded == info.epoch
           else NEVER_APPLIED if recorded is None else SANDBOX_RESTARTED)
    if why is not None:
        raise NotDeployedError(stage, sandbox=True, why=why)
    if gateway:
        timeout = st.config.function.timeout + 10
        return FunctionTarget(st, Aws(region, info.gateway_endpoint,
                                      {"read_timeout": timeout, "connect_timeout": 5, "retries": {"max_attempts": 1}}))
    return FunctionTarget(st, Aws.for_sandbox(info.endpoint, region))


@dataclass(frozen=True)
class FunctionTarget:
    """Where `orch logs` and `orch invoke` reach a stage's function: the stage, the Aws facade,
    and the AWS account the credentials check named (None in the sandbox)."""

    stage: Any  # orch.config.Stage
    aws: Any  # orch.aws.Aws
    account: str | None = None

    def not_deployed(self, why: str) -> NotDeployedError:
        """The stage's NotDeployedError on this target, saying `why` (what AWS found missing)."""
        return NotDeployedError(self.stage.name, sandbox=self.aws.sandbox, why=why,
                                region=self.stage.config.region, account=self.account)


@app.command()
def logs(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    since: Annotated[str, typer.Option("--since", help="How far back: 30s, 10m, 2h, 1d.")] = "10m",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events (polls every "
                                         "second) until Ctrl-C.")] = False,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", help="A CloudWatch Logs filter pattern: words an event must contain, "
                     "\"quoted text\", or JSON patterns.", show_default=False),
    ] = None,
    project: ProjectOpt = None,
) -> int:
    """Print the function's CloudWatch Logs: the handler's own lines between Lambda's START,
    END and REPORT lines (in the sandbox, written there by the local gateway). Exit 8 when the
    stage is not deployed there."""
    from orch.errors import AwsNotFound
    from orch.observe import log_group, parse_since, show_logs

    seconds = parse_since(since)
    target = _function_target(project, stage, sandbox, gateway=False)
    st = target.stage
    try:
        shown = show_logs(target.aws, st.function_name, since_seconds=seconds, pattern=filter_text, follow=follow,
                          emit=_out, note=_log)
    except AwsNotFound:  # Terraform creates the log group with the function (modules/lambda)
        raise target.not_deployed(f"the function's log group {log_group(st.function_name)} does not exist") from None
    if not follow and shown == 0:
        _log(f"no log events of {st.function_name} in the last {since}")
    return ExitCode.OK


@app.command()
def invoke(
    stage: StageArg,
    sandbox: SandboxOpt = False,
    data: Annotated[str | None, typer.Option("--data", help="The event, as JSON text.", show_default=False)] = None,
    data_file: Annotated[
        Path | None, typer.Option("--data-file", help="A file holding the event as JSON.", show_default=False)
    ] = None,
    log: Annotated[bool, typer.Option("--log", help="Also print the invocation's log (stderr).")] = False,
    project: ProjectOpt = None,
) -> int:
    """Call STAGE's function directly through its stage alias and print its answer.

    As `sam remote invoke`: Lambda's Invoke on AWS; in the sandbox the local gateway answers
    the same call and runs the real handler in its workers. A function error's document is
    printed too (with a note on stderr). Exit 8 when the stage is not deployed there.
    """
    from orch.errors import AwsNotFound
    from orch.observe import invoke as invoke_function
    from orch.observe import payload_from

    payload = payload_from(data, data_file)
    target = _function_target(project, stage, sandbox, gateway=True)
    st = target.stage
    try:
        result = invoke_function(target.aws, st.function_name, st.stage_name, payload, log=log)
    except AwsNotFound:
        raise target.not_deployed(f"the function {st.function_name} has no alias {st.stage_name!r} there") from None
    if log and result.log:
        for line in result.log.rstrip("\n").splitlines():
            _err(line)
    _out(result.payload_text())
    if result.function_error:
        _log(f"the function failed ({result.function_error}), version {result.executed_version}")
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
        if isinstance(exc, ConfigError | NotDeployedError):  # a sandbox started for nothing
            _stop_sandbox_started_here()
        _err(f"orch: {exc.title}: {exc.message}")
        if exc.hint:
            _err(exc.hint)
        return int(exc.exit_code)
    except typer.Abort:
        _err("orch: aborted")
        return int(ExitCode.ABORTED)
    except (_Interrupt, KeyboardInterrupt) as exc:
        original = exc.original if isinstance(exc, _Interrupt) else exc
        if isinstance(original, Terminated):
            _err("orch: interrupted: SIGTERM")
            return int(ExitCode.TERMINATED)
        _err("orch: interrupted")
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
    return int(result or 0)


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
