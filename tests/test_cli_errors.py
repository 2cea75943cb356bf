"""Functional tests: bad input through the real `orch` command.

Each case checks what a user sees: a message naming the file, field or argument, the
documented exit code, no Python traceback, and nothing written (no working folder, state,
rendered file or package).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_clean_failure, cli, fake_sts, orch

CONFIG, TERRAFORM, AWS, SANDBOX, USAGE = 3, 4, 5, 7, 64

NO_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None, "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None, "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_WEB_IDENTITY_TOKEN_FILE": None,
}


def snapshot(project: Path) -> set[str]:
    """Every file orch could have written."""
    orch_dir = project / ".orch"
    return {str(p.relative_to(project)) for p in orch_dir.rglob("*")} if orch_dir.exists() else set()


def edit(project: Path, name: str, text: str) -> None:
    (project / "stages" / name).write_text(text)


@pytest.mark.parametrize(
    ("setup", "args", "code", "needles"),
    [
        pytest.param(None, ["plan", "staging"], CONFIG, ["unknown stage 'staging'", "dev, prod"], id="unknown-stage"),
        pytest.param(("dev.yaml", "function:\n  memory_size: [128\n"), ["plan", "dev"], CONFIG,
                     ["dev.yaml:3:", "malformed YAML"], id="malformed-yaml"),
        pytest.param(("dev.yaml", "functoin: {}\n"), ["plan", "dev"], CONFIG,
                     ["dev.yaml: functoin: unknown key"], id="unknown-key"),
        pytest.param(("dev.yaml", "function: {memory_size: lots}\n"), ["apply", "dev", "--yes"], CONFIG,
                     ["dev.yaml: function.memory_size", "valid integer"], id="wrong-type"),
        pytest.param(("dev.yaml", "function: {timeout: 901}\n"), ["plan", "dev"], CONFIG,
                     ["dev.yaml: function.timeout", "less than or equal to 900"], id="bad-value"),
        pytest.param(("dev.yaml", "stage: {variables: {env: 'd e v'}}\n"), ["plan", "dev"], CONFIG,
                     ["dev.yaml: stage.variables"], id="bad-stage-variable"),
        pytest.param(("dev.yaml", "function: {handler: main.run}\n"), ["package", "dev"], CONFIG,
                     ["main.py"], id="missing-handler-file"),
        pytest.param(("dev.yaml", "function: {source: functions/gone}\n"), ["package", "dev"], CONFIG,
                     ["function.source", "functions/gone does not exist"], id="missing-source"),
        pytest.param(("dev.yaml", "function:\n  timeout: 5\n  timeout: 6\n"), ["plan", "dev"], CONFIG,
                     ["duplicate key 'timeout'"], id="duplicate-key"),
        pytest.param(None, ["plan"], USAGE, ["Missing argument 'STAGE'"], id="missing-argument"),
        pytest.param(None, ["plan", "dev", "--detailed"], USAGE, ["No such option: --detailed"], id="unknown-option"),
        pytest.param(None, ["apply", "dev", "--plan", "no-such.tfplan"], CONFIG,
                     ["no-such.tfplan: no such plan file"], id="missing-plan-file"),
        pytest.param(None, ["render", "dev", "--file", "x.tf"], CONFIG, ["--file x.tf"], id="render-unknown-file"),
    ],
)
def test_bad_input(project: Path, setup, args, code, needles) -> None:
    if setup:
        edit(project, *setup)
    before = snapshot(project)
    result = cli(*args, cwd=project)
    assert_clean_failure(result, code, *needles)
    after = snapshot(project)
    assert not {p for p in after - before if p.startswith(".orch/work")}, "a working folder was written"


def test_undefined_template_variable(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "backend.tf.j2").write_text("terraform {\n  # {{ backend.bukcet }}\n}\n")
    result = cli("render", "dev", cwd=project)
    assert_clean_failure(result, CONFIG, "templates/backend.tf.j2", "bukcet")
    creds = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true"}
    result = cli("plan", "dev", cwd=project, env=creds)
    assert_clean_failure(result, CONFIG, "templates/backend.tf.j2", "bukcet")
    assert not (project / ".orch" / "work").exists()


def test_no_aws_credentials_fails_before_terraform(project: Path) -> None:
    result = cli("plan", "dev", cwd=project, env=NO_AWS_CREDENTIALS)
    assert_clean_failure(result, AWS, "no AWS credentials found", "--sandbox")
    assert not (project / ".orch" / "work").exists()


def test_terraform_missing_from_path(project: Path, tmp_path: Path) -> None:
    creds = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true"}
    python_dir = str(Path(os.sys.executable).parent)
    result = cli("plan", "dev", cwd=project, env=creds | {"PATH": python_dir, "ORCH_TERRAFORM": None})
    assert_clean_failure(result, TERRAFORM, "terraform was not found on PATH", "ORCH_TERRAFORM")
    assert not (project / ".orch" / "work" / "aws" / "dev" / "terraform.tfstate").exists()


def test_provider_mirror_without_the_provider(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "mirror"
    empty.mkdir()
    result = cli("plan", "dev", cwd=project, env={"ORCH_PROVIDER_MIRROR": str(empty)})
    assert_clean_failure(result, CONFIG, f"ORCH_PROVIDER_MIRROR={empty}", "registry.terraform.io")


@pytest.mark.terraform
def test_provider_not_installable(project: Path, tmp_path: Path) -> None:
    """Terraform's own CLI config points at a mirror without the provider: init fails, clearly."""
    (tmp_path / "empty-mirror").mkdir()
    rc = tmp_path / "terraformrc"
    rc.write_text(
        'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' % (tmp_path / "empty-mirror")
    )
    creds = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true"}
    with fake_sts() as sts:  # orch's credentials check passes without leaving the machine
        result = cli("plan", "dev", cwd=project, env=creds | {
            "TF_CLI_CONFIG_FILE": str(rc), "ORCH_PROVIDER_MIRROR": None, "AWS_ENDPOINT_URL_STS": sts})
    assert_clean_failure(result, TERRAFORM, "could not install the hashicorp/aws provider", "ORCH_PROVIDER_MIRROR")
    assert not (project / ".orch" / "work" / "aws" / "dev" / "terraform.tfstate").exists()


def test_sandbox_port_taken(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("sandbox", "start", cwd=project, env={"ORCH_SANDBOX_PORT": str(port)})
    assert_clean_failure(result, SANDBOX, f"port {port}", "already in use", "ORCH_SANDBOX_PORT")
    assert not (project / ".orch" / "sandbox" / "state.json").exists()


def test_the_orch_process_itself_reports_bad_input_cleanly(project: Path) -> None:
    """The tests above call orch's entry point in-process; this one crosses the process
    boundary once (`python -m orch.cli`): exit status, stderr, no traceback."""
    edit(project, "dev.yaml", "function:\n  memory_size: 64\n")
    result = orch("render", "dev", cwd=project)
    assert_clean_failure(result, 3, "dev.yaml", "function.memory_size")
    assert result.stdout == ""


# A real orch process that signals itself while a command works outside Terraform (here
# while it loads the stage), through orch's own signal handling and Typer's command runner.
_SIGNALLED_RUN = """
import os, signal, sys, time
import orch.config
from orch.cli import entry

SIGNAL = signal.Signals[sys.argv[1]]

def load_stage(*args, **kwargs):
    os.kill(os.getpid(), SIGNAL)
    time.sleep(30)  # the signal ends this sleep

orch.config.load_stage = load_stage
sys.argv = ["orch", "render", "dev"]
entry()
"""


@pytest.mark.parametrize(("name", "code", "message"), [
    ("SIGTERM", 143, "orch: interrupted: SIGTERM"),
    ("SIGINT", 130, "orch: interrupted"),
])
def test_a_signal_outside_terraform_gives_its_message_and_exit_code(
    project: Path, name: str, code: int, message: str,
) -> None:
    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_RUN, name], cwd=project, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert proc.stderr.strip().splitlines()[-1] == message, proc.stderr
    assert "Traceback" not in proc.stderr
