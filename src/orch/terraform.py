"""The one adapter between orch and the Terraform CLI.

It owns every Terraform command line (`command_line`, a pure function), the one place that
starts a Terraform process (`run_process`), and turning what Terraform says as data
(`-json` streams, `show -json`, `output -json`) into typed results and classified errors.
Only this module imports python_terraform. It knows nothing about stages, AWS or packaging,
never prints (lines go to the `echo` it is given) and never reads Terraform's human output
for meaning: human output is only streamed to the person watching.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch import tfruns
from orch.errors import ConfigError, Interrupted, TerraformError
from orch.tfplan import Diagnostic, JsonStream, PlanView, render_message

INIT_STAMP = "orch-init.sha256"
LOCK_TIMEOUT = "60s"
"""How long a Terraform run waits for the state lock (`-lock-timeout`); ORCH_LOCK_TIMEOUT
overrides it (a Terraform duration: 30s, 5m). Never `-lock=false`."""
MIN_VERSION = (1, 9)  # `terraform init -json` (1.9.0); S3 native locking needs 1.10 (documented)

# Which verbs take which flags, checked against Terraform 1.11's `-help` and pinned by
# tests/test_terraform_cli.py with the real binary: `show` and `output` reject -input.
INPUT_VERBS = frozenset({"init", "plan", "apply", "destroy", "import", "refresh"})
LOCK_VERBS = frozenset({"init", "plan", "apply", "destroy", "import", "refresh", "taint", "untaint"})

# Diagnostic summaries orch acts on (Terraform's own wording in its -json diagnostics:
# internal/backend/local/backend_local.go and internal/command/init.go).
STALE_PLAN_SUMMARIES = frozenset({"Saved plan is stale", "Saved plan does not match the given state"})
PROVIDER_INSTALL_SUMMARIES = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "Failed to resolve provider packages",
    "Incompatible provider version",
)

Echo = Callable[[str, bool], None]  # (a line for the person watching, is_error)


class StalePlanError(TerraformError):
    """The saved plan no longer matches the state: someone applied since it was made."""


class ProviderInstallError(TerraformError):
    """`terraform init` could not install the hashicorp/aws provider."""


# ---------------------------------------------------------------------------- command lines


def command_line(
    binary: str,
    verb: str,
    args: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    *,
    is_tty: bool,
    lock_timeout: str = LOCK_TIMEOUT,
) -> list[str]:
    """The argv of `terraform <verb>`: pure, so tests pin every command orch runs.

    Adds `-input=false` to every verb in INPUT_VERBS, `-lock-timeout=<lock_timeout>` (unless given) to
    every verb in LOCK_VERBS (and refuses `lock=False` there: ValueError), and `-no-color` when
    orch's output is not a terminal. `options` use python-terraform's spelling (underscores
    become dashes): `True` -> `-flag`, `False` -> `-flag=false` (kept, never dropped), `None` ->
    left out, a list -> the flag repeated, any other value -> `-flag=value`. Positional `args`
    come after every option.
    """
    from python_terraform import IsFlagged
    from python_terraform import Terraform as _CommandBuilder  # the only import of python_terraform

    merged: dict[str, Any] = dict(options or {})
    if verb in LOCK_VERBS and merged.get("lock") is False:
        raise ValueError(f"terraform {verb} -lock=false: orch never changes state without holding its lock")
    if verb in INPUT_VERBS:
        merged["input"] = False
    if verb in LOCK_VERBS:
        merged.setdefault("lock_timeout", lock_timeout)
    if not is_tty:
        merged["no_color"] = True
    converted: dict[str, Any] = {}
    for key, value in merged.items():
        if value is True:
            converted[key] = IsFlagged
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            converted[key] = [str(v) for v in value]
        else:
            converted[key] = value  # python-terraform writes False as `-key=false`
    return _CommandBuilder(terraform_bin_path=binary).generate_cmd_string(verb, *args, **converted)


# ---------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class RunResult:
    """One finished Terraform process: its argv, exit code, captured output and wall time."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
) -> int:
    """Start Terraform, hand each output line to the callbacks as it arrives, return its exit code.

    The only place orch starts a Terraform process. Terraform leads its own session and
    writes to files in `cwd/.orch-runs/` that orch follows (orch.tfruns), with a record of
    the run beside them: if orch dies, even by `kill -9`, Terraform is not sent SIGINT or
    SIGHUP by a terminal and never meets a closed pipe, so it finishes (or stops) as it
    would have, saving state; the next orch command finds the record. SIGINT and SIGTERM
    to orch are passed on as SIGINT (Terraform's graceful stop; a second one stops it at
    once); orch waits up to INTERRUPT_TIMEOUT seconds for it, then raises Interrupted
    (exit 130 for SIGINT, 143 for SIGTERM). Raises TerraformError when it cannot start.
    """
    verb = argv[1] if len(argv) > 1 else "run"
    runs = cwd / tfruns.RUNS_DIR
    run_id = _next_run_id(verb)
    out_path, err_path = runs / f"{run_id}.stdout", runs / f"{run_id}.stderr"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise TerraformError(f"could not create Terraform's log in {runs}: {exc.strerror or exc}.") from None
    follower: tfruns.Follower | None = None
    proc: subprocess.Popen | None = None
    code: int | None = None
    with tfruns.forwarding() as signals:  # from before Terraform starts: see forwarding()
        try:
            try:
                proc = subprocess.Popen(
                    list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out_fd, stderr=err_fd,
                    start_new_session=True,
                )
            except OSError as exc:
                out_path.unlink(missing_ok=True)
                err_path.unlink(missing_ok=True)
                raise TerraformError(f"could not start {argv[0]}: {exc.strerror or exc}.") from None
            finally:
                os.close(out_fd)
                os.close(err_fd)
            record = tfruns.new_record(verb, proc.pid, run_id)
            record.write(cwd)
            follower = tfruns.Follower({out_path: on_stdout, err_path: on_stderr}).start()
            code = _wait(proc, signals)
        except tfruns.Forwarded:  # the signal came just as Terraform ended
            assert proc is not None
            code = proc.poll()
        finally:
            if follower is not None:
                follower.stop()
    if signals.received:
        _interrupted(record, cwd, signals.received[0], code)
    assert code is not None
    record.finished(cwd, code)
    return code


INTERRUPT_TIMEOUT = 60.0
"""Seconds orch waits for Terraform to stop gracefully after passing on SIGINT or SIGTERM;
after that orch exits and Terraform finishes on its own (the next orch command waits for it)."""

_run_counter = itertools.count(1)


def _next_run_id(verb: str) -> str:
    safe = "".join(c for c in verb if c.isalpha() or c == "-") or "run"
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{next(_run_counter)}-{safe}"


def _wait(proc: subprocess.Popen, signals: tfruns.Forwarding) -> int | None:
    """Terraform's exit code; after a forwarded signal, None when it has not stopped within
    INTERRUPT_TIMEOUT seconds. Attaches `signals` to Terraform first."""
    deadline: float | None = None
    while True:
        try:
            if signals.pid is None:
                signals.attach(proc.pid)
            if deadline is None:
                return proc.wait()
            return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except tfruns.Forwarded:
            if deadline is None:
                deadline = time.monotonic() + INTERRUPT_TIMEOUT
        except subprocess.TimeoutExpired:
            return None


def _interrupted(record: tfruns.RunRecord, cwd: Path, signum: int, code: int | None) -> None:
    name = signal.Signals(signum).name
    what = f"{name} during `terraform {record.verb}`"
    if code is None:
        raise Interrupted(
            f"{what}: orch passed it on, and Terraform (pid {record.pid}) is still finishing what it "
            f"started, in the background.",
            signum=signum,
            hint=f"Its output goes to {record.stdout_path(cwd)}; the next orch command for this stage "
            "waits for it.",
        )
    record.finished(cwd, code)
    how = "finished anyway" if code == 0 else f"stopped gracefully (exit {code})"
    raise Interrupted(f"{what}: orch passed it on, and Terraform {how}, saving what it did to the state.",
                      signum=signum)


# ---------------------------------------------------------------------------- binary and config


def lock_timeout() -> str:
    """ORCH_LOCK_TIMEOUT (a Terraform duration such as 30s or 5m) or LOCK_TIMEOUT.
    Raises ConfigError naming the variable when it is not a duration."""
    value = os.environ.get("ORCH_LOCK_TIMEOUT", "").strip()
    if not value:
        return LOCK_TIMEOUT
    if not re.fullmatch(r"[0-9]+(ms|s|m|h)", value):
        raise ConfigError(f"ORCH_LOCK_TIMEOUT={value!r} is not a duration Terraform reads (e.g. 30s, 5m).")
    return value


def find_binary() -> str:
    """The terraform executable: $ORCH_TERRAFORM, else `terraform` on PATH (TerraformError if none)."""
    explicit = os.environ.get("ORCH_TERRAFORM")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise TerraformError(f"ORCH_TERRAFORM={explicit} is not an executable file.")
        return explicit
    found = shutil.which("terraform")
    if not found:
        raise TerraformError(
            "terraform was not found on PATH.",
            hint="Install Terraform 1.9 or newer (https://developer.hashicorp.com/terraform/install) "
            "or set ORCH_TERRAFORM=/path/to/terraform.",
        )
    return found


# Where offline machines commonly keep a provider mirror: Terraform's implicit local mirror
# folders (Linux), then the conventional system-wide folder for pre-unpacked plugins.
WELL_KNOWN_MIRRORS = (
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    "/opt/tf-plugins",
    "/opt/terraform/plugins",
)


@dataclass(frozen=True)
class ProviderConfig:
    """A Terraform CLI config orch writes so Terraform installs providers from a mirror."""

    path: Path
    text: str
    mirror: str

    @property
    def current(self) -> bool:
        """True when the file already holds exactly this text (nothing to write)."""
        try:
            return self.path.read_text() == self.text
        except OSError:
            return False

    def env(self) -> dict[str, str]:
        return {"TF_CLI_CONFIG_FILE": str(self.path)}

    def write(self) -> None:
        """Write it atomically (a temporary file of its own + rename: several stages of one
        `orch plan --all` may write it at once)."""
        if self.current:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.text)
        os.replace(tmp, self.path)


def _user_cli_config() -> Path | None:
    explicit = os.environ.get("TF_CLI_CONFIG_FILE")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    default = Path("~/.terraformrc").expanduser()
    return default if default.is_file() else None


def discover_mirror() -> str | None:
    for candidate in WELL_KNOWN_MIRRORS:
        root = Path(candidate).expanduser()
        if (root / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return str(root)
    return None


def provider_config(state_dir: Path) -> ProviderConfig | None:
    """Where Terraform's providers come from; reads, never writes.

    1. ORCH_PROVIDER_MIRROR=/path: a CLI config (to be written at `state_dir/terraformrc`)
       whose provider_installation uses that filesystem mirror (offline machines).
    2. Otherwise an existing TF_CLI_CONFIG_FILE or ~/.terraformrc is honoured: None.
    3. Otherwise a mirror holding hashicorp/aws in a well-known folder (WELL_KNOWN_MIRRORS) is
       used as in 1; with none, Terraform uses its registry: None.
    Raises ConfigError when ORCH_PROVIDER_MIRROR has no hashicorp/aws inside.
    """
    mirror = os.environ.get("ORCH_PROVIDER_MIRROR")
    if not mirror:
        if _user_cli_config() is not None:
            return None
        mirror = discover_mirror()
    if not mirror:
        return None
    root = Path(mirror).expanduser().resolve()
    if not (root / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        raise ConfigError(
            f"ORCH_PROVIDER_MIRROR={mirror}: no registry.terraform.io/hashicorp/aws folder inside.",
            hint="Point it at the folder that contains registry.terraform.io/ "
            "(a Terraform filesystem mirror), or unset it to use the registry.",
        )
    text = (
        "# Written by orch from ORCH_PROVIDER_MIRROR.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(root))}\n"
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    return ProviderConfig(state_dir / "terraformrc", text, str(root))


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Terraform run: automation mode, no update checks, `extra` on top."""
    return {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **(extra or {})}


def init_fingerprint(backend_tf: str, cli_config_file: str | None, cli_config_text: str | None,
                     module_sources: str) -> str:
    """What `terraform init` depends on: the backend, the provider installation, module calls.

    `cli_config_text` is the CLI config's content when known (orch's own, not yet written);
    None reads `cli_config_file` if it exists.
    """
    parts = [backend_tf, cli_config_file or ""]
    if cli_config_text is not None:
        parts.append(cli_config_text)
    elif cli_config_file and Path(cli_config_file).is_file():
        parts.append(Path(cli_config_file).read_text())
    parts.append(module_sources)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def init_needed(workdir: Path, fingerprint: str, data_dir: str | None = None) -> str | None:
    """Why `terraform init` must run in `workdir`, or None when it is ready (reads only)."""
    data = Path(data_dir) if data_dir else workdir / ".terraform"
    if not data.is_dir():
        return "first run in this working folder"
    if not (workdir / ".terraform.lock.hcl").is_file():
        return "no provider lock file"
    stamp = data / INIT_STAMP
    if not stamp.is_file():
        return "not initialised by orch"
    if stamp.read_text().strip() != fingerprint:
        return "backend, provider installation or module sources changed"
    return None


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ApplyResult:
    """One `apply -json` (or `destroy -json`) run: what it planned, what it did, the outputs.

    `plan` is empty for a saved plan (its changes were read before, with `show -json`);
    `applied` lists the addresses whose change completed; `outputs` are the root outputs
    Terraform reported at the end (name -> value).
    """

    run: RunResult
    plan: PlanView
    changed: bool
    applied: tuple[str, ...]
    outputs: Mapping[str, Any]


@dataclass(frozen=True)
class PlanFile:
    """A saved plan: `changes` from `plan -detailed-exitcode` (0 none, 2 some)."""

    path: Path
    changes: bool
    run: RunResult


# ---------------------------------------------------------------------------- the runner


class Terraform:
    """Terraform commands in one working folder. `echo` receives every line for the person
    watching (Terraform's human output as is; `-json` messages rendered); `is_tty` decides
    colour."""

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str,
        env: Mapping[str, str],
        echo: Echo,
        is_tty: bool = False,
        lock_timeout: str = LOCK_TIMEOUT,
    ) -> None:
        self.workdir = workdir
        self.binary = binary
        self.env = dict(env)
        self.echo = echo
        self.is_tty = is_tty
        self.lock_timeout = lock_timeout

    def argv(self, verb: str, *args: str, **options: Any) -> list[str]:
        return command_line(self.binary, verb, args, options, is_tty=self.is_tty, lock_timeout=self.lock_timeout)

    # ------------------------------------------------------------------ running

    def _human(self, argv: list[str], *, echo: bool = True) -> RunResult:
        out: list[str] = []
        err: list[str] = []

        def stdout(line: str) -> None:
            out.append(line)
            if echo:
                self.echo(line.rstrip("\n"), False)

        def stderr(line: str) -> None:
            err.append(line)
            if echo:
                self.echo(line.rstrip("\n"), True)

        started = time.monotonic()
        code = run_process(argv, cwd=self.workdir, env=self.env, on_stdout=stdout, on_stderr=stderr)
        return RunResult(tuple(argv), code, "".join(out), "".join(err), time.monotonic() - started)

    def _json(self, argv: list[str]) -> tuple[RunResult, JsonStream]:
        stream = JsonStream()
        out: list[str] = []
        err: list[str] = []
        lock = threading.Lock()

        def stdout(line: str) -> None:
            out.append(line)
            with lock:
                message = stream.feed(line)
            if message is None:
                if line.strip():
                    self.echo(line.rstrip("\n"), False)
                return
            text = render_message(message)
            if text is not None:
                self.echo(text, message.get("@level") == "error")

        def stderr(line: str) -> None:
            err.append(line)
            self.echo(line.rstrip("\n"), True)

        started = time.monotonic()
        code = run_process(argv, cwd=self.workdir, env=self.env, on_stdout=stdout, on_stderr=stderr)
        result = RunResult(tuple(argv), code, "".join(out), "".join(err), time.monotonic() - started)
        return result, stream

    def _failed(self, what: str, result: RunResult, stream: JsonStream | None = None) -> TerraformError:
        errors = stream.errors if stream is not None else []
        if errors:
            detail = "\n".join(d.text() for d in errors)
        else:
            detail = _tail(result.stderr or result.stdout)
        return TerraformError(f"{what} failed (exit {result.exit_code}) in {self.workdir}.", hint=detail or None)

    # ------------------------------------------------------------------ verbs

    def version(self) -> tuple[int, ...]:
        """Terraform's version from `terraform version -json` (no provider starts)."""
        result = self._human(self.argv("version", json=True), echo=False)
        try:
            text = json.loads(result.stdout)["terraform_version"]
            return tuple(int(part) for part in text.split("-")[0].split("."))
        except (ValueError, KeyError, TypeError):
            raise TerraformError(f"could not read the version of {self.binary}.", hint=_tail(result.stderr)) from None

    def init(self, fingerprint: str) -> RunResult:
        """`terraform init -json -reconfigure`; stamps the fingerprint when it succeeds.

        Raises ProviderInstallError when the hashicorp/aws provider cannot be installed,
        TerraformError for any other failure, or an older Terraform than MIN_VERSION.
        """
        version = self.version()
        if version[:2] < MIN_VERSION:
            raise TerraformError(
                f"{self.binary} is Terraform {'.'.join(map(str, version))}; orch needs "
                f"{'.'.join(map(str, MIN_VERSION))} or newer.",
                hint="Install a newer Terraform, or point ORCH_TERRAFORM at one.",
            )
        result, stream = self._json(self.argv("init", json=True, reconfigure=True))
        if result.exit_code != 0:
            if any(d.summary.startswith(PROVIDER_INSTALL_SUMMARIES) for d in stream.errors):
                raise ProviderInstallError(
                    f"terraform init could not install the hashicorp/aws provider (in {self.workdir}).",
                    hint="On a machine without access to registry.terraform.io, set "
                    "ORCH_PROVIDER_MIRROR to a filesystem mirror (the folder containing "
                    "registry.terraform.io/), or set TF_CLI_CONFIG_FILE to a CLI config with a "
                    "provider_installation block.\n" + "\n".join(d.text() for d in stream.errors),
                )
            raise self._failed("terraform init", result, stream)
        data = Path(self.env.get("TF_DATA_DIR") or self.workdir / ".terraform")
        data.mkdir(parents=True, exist_ok=True)
        (data / INIT_STAMP).write_text(fingerprint + "\n")
        return result

    def plan(self, out: Path, *, destroy: bool = False) -> PlanFile:
        """`terraform plan -out=FILE -detailed-exitcode`, human output streamed (people read the diff)."""
        argv = self.argv("plan", detailed_exitcode=True, out=str(out), destroy=True if destroy else None)
        result = self._human(argv)
        if result.exit_code in (0, 2):
            return PlanFile(out, result.exit_code == 2, result)
        raise self._failed("terraform plan", result)

    def show_plan(self, plan_file: Path) -> PlanView:
        """`terraform show -json PLANFILE`, read as a PlanView."""
        result = self._human(self.argv("show", str(plan_file), json=True), echo=False)
        if result.exit_code != 0:
            raise TerraformError(f"terraform could not read the plan file {plan_file}.", hint=_tail(result.stderr))
        try:
            return PlanView.from_show_json(json.loads(result.stdout))
        except ValueError:
            raise TerraformError(f"terraform show -json {plan_file} did not print JSON.") from None

    def apply(self, *, replace: Iterable[str] = (), target: Iterable[str] = (),
              var_file: Path | None = None) -> ApplyResult:
        """One run that plans and applies: `apply -auto-approve -json [-replace=ADDR ...]
        [-target=ADDR ...] [-var-file=FILE]` (a var file's values override terraform.tfvars.json's).

        The plan comes back as data (the stream's planned_change and change_summary
        messages), the outputs from its `outputs` message.
        """
        argv = self.argv("apply", auto_approve=True, json=True, replace=list(replace) or None,
                         target=list(target) or None, var_file=str(var_file) if var_file is not None else None)
        result, stream = self._json(argv)
        if result.exit_code != 0:
            raise self._failed("terraform apply", result, stream)
        return _apply_result(result, stream, "apply")

    def apply_saved(self, plan_file: Path) -> ApplyResult:
        """`apply -json PLANFILE`: exactly that plan. Raises StalePlanError when the state moved on."""
        result, stream = self._json(self.argv("apply", str(plan_file), json=True))
        if result.exit_code != 0:
            if any(d.summary in STALE_PLAN_SUMMARIES for d in stream.errors):
                raise StalePlanError(
                    f"the saved plan {plan_file} is stale: the stage's state changed after it was made.",
                    hint="Run `orch plan` again and apply the new plan.",
                )
            raise self._failed("terraform apply", result, stream)
        return _apply_result(result, stream, "apply")

    def destroy(self) -> ApplyResult:
        """`terraform destroy -auto-approve -json`."""
        result, stream = self._json(self.argv("destroy", auto_approve=True, json=True))
        if result.exit_code != 0:
            raise self._failed("terraform destroy", result, stream)
        return _apply_result(result, stream, "destroy")

    def force_unlock(self, lock_id: str) -> RunResult:
        """`terraform force-unlock -force LOCK_ID` (orch asked first)."""
        result = self._human(self.argv("force-unlock", lock_id, force=True))
        if result.exit_code != 0:
            raise self._failed("terraform force-unlock", result)
        return result

    def untaint(self, address: str) -> RunResult:
        """`terraform untaint ADDRESS`: Terraform updates the object in place instead of
        replacing it (https://developer.hashicorp.com/terraform/cli/commands/untaint)."""
        result = self._human(self.argv("untaint", address), echo=False)
        if result.exit_code != 0:
            raise self._failed("terraform untaint", result)
        return result

    def show_state(self) -> dict[str, Any]:
        """`terraform show -json` of the state (values.root_module...; `{}`-like when empty).
        Starts the provider to read its schema: seconds, so orch asks only when it must."""
        result = self._human(self.argv("show", json=True), echo=False)
        if result.exit_code != 0:
            raise self._failed("terraform show", result)
        try:
            data = json.loads(result.stdout or "{}")
        except ValueError:
            raise TerraformError(f"terraform show -json in {self.workdir} did not print JSON.") from None
        return data if isinstance(data, dict) else {}

    def follow(self, record: tfruns.RunRecord, timeout: float) -> bool:
        """Echo an earlier orch's still-running Terraform's output (its `-json` messages
        rendered as they would have been) until it ends; False when `timeout` passed first."""
        stream = JsonStream()

        def line(text: str) -> None:
            message = stream.feed(text)
            if message is None:
                if text.strip():
                    self.echo(text.rstrip("\n"), False)
                return
            rendered = render_message(message)
            if rendered is not None:
                self.echo(rendered, message.get("@level") == "error")

        return tfruns.follow_until_exit(record, self.workdir, line, timeout)

    def output(self) -> dict[str, Any]:
        """`terraform output -json`: root output name -> value ({} when nothing is deployed)."""
        result = self._human(self.argv("output", json=True), echo=False)
        if result.exit_code != 0:
            raise TerraformError(f"terraform output failed in {self.workdir}.", hint=_tail(result.stderr))
        data = json.loads(result.stdout or "{}")
        return {name: item.get("value") for name, item in data.items()}


def _apply_result(result: RunResult, stream: JsonStream, operation: str) -> ApplyResult:
    done = stream.change_summary(operation)
    changed = done.any if done is not None else True
    return ApplyResult(result, PlanView.from_stream(stream), changed, tuple(stream.applied()), stream.outputs())


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


__all__ = [
    "ApplyResult",
    "Diagnostic",
    "Echo",
    "PlanFile",
    "ProviderConfig",
    "ProviderInstallError",
    "RunResult",
    "StalePlanError",
    "Terraform",
    "base_env",
    "command_line",
    "find_binary",
    "init_fingerprint",
    "init_needed",
    "provider_config",
    "run_process",
]
