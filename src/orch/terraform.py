"""The one adapter between orch and the Terraform CLI.

Only this module imports python_terraform (for building command lines); it runs the
commands itself so Terraform's progress streams to the terminal while orch also captures
it, and returns typed results. It knows nothing about stages, AWS or packaging.

Exit codes of `terraform plan -detailed-exitcode` are mapped explicitly:
0 no changes, 2 changes present, 1 (or anything else) an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from orch.errors import ConfigError, TerraformError

PLAN_NO_CHANGES = 0
PLAN_CHANGES = 2
INIT_STAMP = "orch-init.sha256"

Echo = Callable[[str, bool], None]  # (line, is_stderr)


@dataclass(frozen=True)
class RunResult:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class PlanResult:
    run: RunResult
    changes: bool
    plan_file: Path | None


def find_binary() -> str:
    """The terraform executable: $ORCH_TERRAFORM, else `terraform` on PATH."""
    explicit = os.environ.get("ORCH_TERRAFORM")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise TerraformError(f"ORCH_TERRAFORM={explicit} is not an executable file.")
        return explicit
    found = shutil.which("terraform")
    if not found:
        raise TerraformError(
            "terraform was not found on PATH.",
            hint="Install Terraform 1.6 or newer (https://developer.hashicorp.com/terraform/install) "
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


def cli_config(state_dir: Path) -> dict[str, str]:
    """Environment that tells Terraform where providers come from.

    1. ORCH_PROVIDER_MIRROR=/path: orch writes a CLI config whose provider_installation uses
       that filesystem mirror and points TF_CLI_CONFIG_FILE at it (offline machines).
    2. Otherwise an existing TF_CLI_CONFIG_FILE or ~/.terraformrc is honoured untouched.
    3. Otherwise, if a mirror holding hashicorp/aws sits in a well-known folder
       (WELL_KNOWN_MIRRORS), orch uses it as in 1; else Terraform uses its registry.
    """
    mirror = os.environ.get("ORCH_PROVIDER_MIRROR")
    if not mirror:
        if _user_cli_config() is not None:
            return {}
        mirror = discover_mirror()
    if not mirror:
        return {}
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
    path = state_dir / "terraformrc"
    if not path.exists() or path.read_text() != text:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return {"TF_CLI_CONFIG_FILE": str(path)}


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_args(binary: str, command: str, *args: str, **options: Any) -> list[str]:
    """Command line for `terraform <command>`: flags built by python-terraform.

    Options follow python-terraform's conventions: `True` -> `-flag`, a value -> `-flag=value`,
    `None`/`False` -> omitted; underscores become dashes.
    """
    from python_terraform import IsFlagged, Terraform  # the only import of python_terraform

    converted: dict[str, Any] = {}
    for key, value in options.items():
        if value is True:
            converted[key] = IsFlagged
        elif value is False or value is None:
            continue
        else:
            converted[key] = value
    return Terraform(terraform_bin_path=binary).generate_cmd_string(command, *args, **converted)


class Terraform:
    """Terraform commands in one working folder."""

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        echo: Echo | None = None,
        color: bool = False,
    ) -> None:
        self.workdir = workdir
        self.binary = find_binary()
        self.env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **(env or {})}
        self.echo = echo
        self.color = color

    # ------------------------------------------------------------------ running

    def run(self, command: str, *args: str, stream: bool = True, **options: Any) -> RunResult:
        if not self.color:
            options.setdefault("no_color", True)
        argv = build_args(self.binary, command, *args, **options)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            raise TerraformError(f"could not start {argv[0]}: {exc.strerror}.") from None
        out: list[str] = []
        err: list[str] = []
        echo = self.echo if stream else None
        threads = [
            threading.Thread(target=_pump, args=(proc.stdout, out, echo, False), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, err, echo, True), daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # Terraform handles SIGINT itself (it stops gracefully and keeps state consistent).
            code = proc.wait()
            raise
        finally:
            for t in threads:
                t.join()
        return RunResult(tuple(argv), code, "".join(out), "".join(err), time.monotonic() - started)

    # ------------------------------------------------------------------ verbs

    def init_fingerprint(self, extra: str = "") -> str:
        parts = [(self.workdir / "backend.tf").read_text() if (self.workdir / "backend.tf").exists() else ""]
        parts.append(self.env.get("TF_CLI_CONFIG_FILE", ""))
        cfg = self.env.get("TF_CLI_CONFIG_FILE")
        if cfg and Path(cfg).is_file():
            parts.append(Path(cfg).read_text())
        parts.append(extra)
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def needs_init(self, fingerprint: str) -> str | None:
        """Why `terraform init` must run, or None when the folder is ready."""
        data = Path(self.env.get("TF_DATA_DIR", self.workdir / ".terraform"))
        if not data.is_dir():
            return "first run in this working folder"
        if not (self.workdir / ".terraform.lock.hcl").is_file():
            return "no provider lock file"
        stamp = data / INIT_STAMP
        if not stamp.is_file():
            return "not initialised by orch"
        if stamp.read_text().strip() != fingerprint:
            return "backend, provider installation or module sources changed"
        return None

    def init(self, fingerprint: str) -> RunResult:
        result = self.run("init", input=False, reconfigure=True)
        if result.exit_code != 0:
            text = result.stdout + result.stderr
            if re.search(r"provider|registry", text, re.I) and re.search(
                r"Failed to (query|install)|could not connect|Failed to resolve", text, re.I
            ):
                raise TerraformError(
                    "terraform init could not install the hashicorp/aws provider "
                    f"(in {self.workdir}).",
                    hint="On a machine without access to registry.terraform.io, set "
                    "ORCH_PROVIDER_MIRROR to a filesystem mirror (the folder containing "
                    "registry.terraform.io/), or set TF_CLI_CONFIG_FILE to a CLI config with a "
                    "provider_installation block.\n" + _tail(text),
                )
            raise TerraformError(f"terraform init failed in {self.workdir}.", hint=_tail(text))
        data = Path(self.env.get("TF_DATA_DIR", self.workdir / ".terraform"))
        (data / INIT_STAMP).write_text(fingerprint + "\n")
        return result

    def plan(self, *, out: Path | None = None, destroy: bool = False) -> PlanResult:
        result = self.run(
            "plan",
            input=False,
            detailed_exitcode=True,
            out=str(out) if out else None,
            destroy=destroy,
            lock_timeout="60s",
        )
        if result.exit_code == PLAN_NO_CHANGES:
            return PlanResult(result, False, out)
        if result.exit_code == PLAN_CHANGES:
            return PlanResult(result, True, out)
        raise TerraformError(
            f"terraform plan failed (exit {result.exit_code}) in {self.workdir}.",
            hint=_tail(result.stderr or result.stdout),
        )

    def apply(self, plan_file: Path | None = None, *, replace: list[str] | None = None) -> RunResult:
        """Apply a saved plan, or plan-and-apply without asking (optionally forcing `replace`)."""
        args = (str(plan_file),) if plan_file else ()
        options: dict[str, Any] = {"input": False, "lock_timeout": "60s"}
        if plan_file is None:
            options["auto_approve"] = True
            if replace:
                options["replace"] = list(replace)
        result = self.run("apply", *args, **options)
        if result.exit_code != 0:
            text = result.stderr or result.stdout
            if "Saved plan is stale" in text:
                raise TerraformError(
                    f"the saved plan {plan_file} is stale: the stage's state changed after it was made.",
                    hint="Run `orch plan` again and apply the new plan.",
                )
            raise TerraformError(
                f"terraform apply failed (exit {result.exit_code}) in {self.workdir}.", hint=_tail(text)
            )
        return result

    def destroy(self) -> RunResult:
        result = self.run("destroy", input=False, auto_approve=True, lock_timeout="60s")
        if result.exit_code != 0:
            raise TerraformError(
                f"terraform destroy failed (exit {result.exit_code}) in {self.workdir}.",
                hint=_tail(result.stderr or result.stdout),
            )
        return result

    def output(self) -> dict[str, Any]:
        result = self.run("output", stream=False, json=True)
        if result.exit_code != 0:
            raise TerraformError(
                f"terraform output failed in {self.workdir}.", hint=_tail(result.stderr)
            )
        data = json.loads(result.stdout or "{}")
        return {name: item.get("value") for name, item in data.items()}

    def show_plan(self, plan_file: Path) -> dict[str, Any]:
        result = self.run("show", str(plan_file), stream=False, json=True)
        if result.exit_code != 0:
            raise TerraformError(
                f"terraform could not read the plan file {plan_file}.", hint=_tail(result.stderr)
            )
        return json.loads(result.stdout)


def _pump(stream: TextIO | None, sink: list[str], echo: Echo | None, is_err: bool) -> None:
    if stream is None:
        return
    for line in stream:
        sink.append(line)
        if echo is not None:
            echo(line, is_err)
    stream.close()


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def default_echo(line: str, is_err: bool) -> None:
    (sys.stderr if is_err else sys.stdout).write(line)
    (sys.stderr if is_err else sys.stdout).flush()
