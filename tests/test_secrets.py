"""Secrets stay secret (issue 12, kind 3): stage files name where a secret comes from and
never hold it; config errors never show a value under function.environment or
function.secrets; values reach Terraform only through TF_VAR_secret_environment, which the
real terraform parses back exactly; everything orch prints passes one redaction registry.
The grep of every output of a real sandbox deployment is in tests/integration."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_clean_failure
from orch import redact, secrets
from orch.cli import main
from orch.config import load_stage
from orch.errors import ConfigError
from orch.render import PackageRef, Target, render
from orch.reporter import Console

SECRET = "hunter2-secret"
TRICKY = 'k-${not}%{interp}"q"\\b\ttab\nline2 β \x01'


@pytest.fixture(autouse=True)
def clean_registry():
    redact.REGISTRY.clear()
    yield
    redact.REGISTRY.clear()


def run(project: Path, *args: str) -> tuple[int, str]:
    """orch in-process: (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main([*args, "--project", str(project)])
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue() + err.getvalue()


def write_stage(project: Path, text: str, name: str = "dev") -> None:
    (project / "stages" / f"{name}.yaml").write_text(text)


# ---------------------------------------------------------------------------- stage files


@pytest.mark.parametrize("text", [
    f"function: {{secrets: {{DB_PASSWORD: {SECRET}}}}}\n",
    f"function: {{secrets: {{DB_PASSWORD: [{SECRET}]}}}}\n",
    "function: {environment: {DB_PASSWORD: 8675309}}\n",
    "function: {environment: {DB_PASSWORD: 8675309.5}}\n",
    f"function: {{environment: {{DB_PASSWORD: [{SECRET}]}}}}\n",
    f"function: {{secrets: {{DB_PASSWORD: {{env: X, file: {SECRET}}}}}}}\n",
])
def test_a_bad_stage_file_never_echoes_a_secret_or_environment_value(project: Path, text: str) -> None:
    write_stage(project, text)
    code, output = run(project, "stages")
    assert code == 3, output
    for value in (SECRET, "8675309"):
        assert value not in output, output
    assert "function." in output and "dev.yaml" in output


def test_a_literal_secret_is_refused_with_the_way_to_give_it(project: Path) -> None:
    write_stage(project, f"function: {{secrets: {{DB_PASSWORD: {SECRET}}}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_stage(project, "dev")
    assert "never written in a stage file" in caught.value.message
    assert "DB_PASSWORD: {env: VARIABLE}" in caught.value.message


def test_a_secret_file_inside_stages_is_refused(project: Path) -> None:
    (project / "stages" / "db.txt").write_text(SECRET)
    write_stage(project, "function: {secrets: {DB_PASSWORD: {file: stages/db.txt}}}\n")
    with pytest.raises(ConfigError, match="inside stages/"):
        load_stage(project, "dev")


def test_values_come_from_the_environment_or_a_file(project: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text(TRICKY + "\n")
    write_stage(project, f"function: {{secrets: {{DB_PASSWORD: {{env: ORCH_T_DB}}, "
                         f"API_KEY: {{file: {tmp_path / 'key'}}}}}}}\n")
    stage = load_stage(project, "dev")
    monkeypatch.delenv("ORCH_T_DB", raising=False)
    with pytest.raises(ConfigError, match="ORCH_T_DB is not set") as caught:
        secrets.resolve(stage)
    assert "dev.yaml: function.secrets.DB_PASSWORD" in caught.value.message
    monkeypatch.setenv("ORCH_T_DB", SECRET)
    assert secrets.resolve(stage) == {"DB_PASSWORD": SECRET, "API_KEY": TRICKY}
    assert redact.redact(f"x {SECRET} y") == "x *** y"


def test_rendered_files_hold_no_secret(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stage(project, "function: {secrets: {DB_PASSWORD: {env: ORCH_T_DB}}}\n")
    monkeypatch.setenv("ORCH_T_DB", SECRET)
    stage = load_stage(project, "dev")
    files = render(stage, Target("sandbox", "http://127.0.0.1:1"), PackageRef("x" * 43 + "="))
    assert all(SECRET not in text for text in files.values())
    assert "DB_PASSWORD" not in json.loads(files["terraform.tfvars.json"])["function"]["environment"]
    assert 'variable "secret_environment"' in files["main.tf"] and "sensitive   = true" in files["main.tf"]
    code, output = run(project, "render", "dev")
    assert code == 0 and SECRET not in output


@pytest.mark.terraform
def test_terraform_reads_the_tf_var_back_exactly(tmp_path: Path) -> None:
    """The HCL literal orch hands over, parsed by the real terraform (no provider, offline)."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    (tmp_path / "main.tf").write_text(
        'variable "secret_environment" {\n  type = map(string)\n  sensitive = true\n}\n'
        'output "back" {\n  value = jsonencode(nonsensitive(var.secret_environment))\n}\n')
    values = {"DB_PASSWORD": SECRET, "API_KEY": TRICKY}
    env = {**os.environ, **secrets.terraform_env(values), "TF_IN_AUTOMATION": "1"}
    result = subprocess.run(["terraform", "console"], input="nonsensitive(jsonencode(var.secret_environment))\n",
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(json.loads(result.stdout.strip())) == values


def test_the_hcl_literal_escapes_what_hcl_would_interpret() -> None:
    text = secrets.hcl_map({"K": TRICKY})
    assert "$${not}" in text and "%%{interp}" in text and "\\u0001" in text and "\\n" in text
    assert secrets.terraform_env({}) == {}


# ---------------------------------------------------------------------------- the registry


def test_the_console_masks_every_registered_value_in_every_spelling() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err)
    redact.register(TRICKY, "api key")
    redact.register(SECRET, "db")
    console.out(f"plain {SECRET} and in JSON {json.dumps(TRICKY)} and URL-encoded "
                f"{__import__('urllib.parse').parse.quote(SECRET + '/x', safe='')}")
    console.err(f"line of a multi-line secret: {TRICKY.splitlines()[1]}")
    text = out.getvalue() + err.getvalue()
    assert SECRET not in text and "k-${not}" not in text and "line2 β" not in text
    assert text.count("***") >= 4
    assert redact.REGISTRY.labels() == ["api key", "db"]


def test_short_and_sandbox_values_are_not_masked() -> None:
    from orch.aws import SANDBOX_CREDENTIALS_ENV

    redact.register("abc")
    redact.register_aws_credentials({"AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEJr"},
                                    dummies=SANDBOX_CREDENTIALS_ENV.values())
    assert redact.redact("abc test FwoGZXIvYXdzEJr") == "abc test ***"


def test_aws_credentials_of_the_environment_never_reach_the_output(project: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key)
    write_stage(project, f"function: {{handler: {key.replace('/', '_')}.x}}\nregion: {key}\n")
    code, output = run(project, "stages")
    assert code == 3 and key not in output and "***" in output


def test_tf_log_is_warned_about(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.deploy import create_deployer
    from orch.reporter import RecordingReporter

    monkeypatch.setenv("TF_LOG", "DEBUG")
    reporter = RecordingReporter()
    create_deployer(project, "dev", sandbox=True, reporter=reporter, ask=lambda q: False, interactive=False,
                    yes=False, color=False)
    notes = reporter.of("note")
    assert len(notes) == 1 and "TF_LOG=DEBUG is set" in notes[0] and "secret" in notes[0]


def test_a_missing_secret_stops_apply_before_anything_starts(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import Result

    write_stage(project, "function: {secrets: {DB_PASSWORD: {env: ORCH_T_MISSING}}}\n")
    monkeypatch.delenv("ORCH_T_MISSING", raising=False)
    code, output = run(project, "apply", "dev", "--sandbox")
    assert_clean_failure(Result(code, "", output), 3, "ORCH_T_MISSING is not set", "function.secrets.DB_PASSWORD")
    assert not (project / ".orch").exists()  # no sandbox, no package, no working folder


def test_release_records_and_junit_files_pass_through_the_registry(tmp_path: Path) -> None:
    """What orch writes rather than prints (release records, smoke's JUnit file) is masked too."""
    from orch import releases, smoke

    redact.register(SECRET, "db")
    check = smoke.CheckResult(f"answer has {SECRET}", "http", False, f"body was {{\"pw\": \"{SECRET}\"}}", 1, 0.1)
    report = smoke.SmokeReport("dev", "sandbox", "http://x", (check,), 0.1, 10.0, "2026-01-01T00:00:00+00:00")
    junit = tmp_path / "smoke.xml"
    smoke.write_junit([report], junit)
    assert SECRET not in junit.read_text() and "***" in junit.read_text()
    location = releases.Location("dev", "sandbox", folder=tmp_path / "releases")
    records = releases.Releases(releases.open_store(location, lambda region: None), location)
    records.write(releases.Release(id="20260101T000000.000000Z-apply", stage="dev", target="sandbox", kind="apply",
                                   time="2026-01-01", package_sha256="ab" * 32, function_version="1",
                                   deployment_id="d1", passed=False, smoke=report.as_dict(), reason=check.message))
    stored = "".join(p.read_text() for p in (tmp_path / "releases").rglob("*.json"))
    assert stored and SECRET not in stored and "***" in stored


def test_logs_and_invoke_mask_the_secrets_they_can_read(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`orch logs`/`invoke` hand no secret to Terraform but print what the handler says: the
    stage's secrets that can be read are registered first; one that cannot is skipped."""
    write_stage(project, "function: {secrets: {DB_PASSWORD: {env: ORCH_DB}, OTHER: {env: ORCH_UNSET}}}\n")
    monkeypatch.setenv("ORCH_DB", SECRET)
    monkeypatch.delenv("ORCH_UNSET", raising=False)
    secrets.register_available(load_stage(project, "dev"))
    assert redact.redact(f"handler said {SECRET}") == "handler said ***"
