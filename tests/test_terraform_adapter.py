"""orch.terraform: the argv of every Terraform command orch runs, pinned, and what orch makes
of Terraform's JSON (errors classified from diagnostics). Terraform is replaced by a fake
`run_process` that replays output saved from the real binary (tests/data/)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orch import terraform as tf_mod
from orch.errors import ConfigError, TerraformError
from orch.planner import DEPLOYMENT_ADDRESS
from orch.terraform import ProviderInstallError, StalePlanError, Terraform, command_line, provider_config

DATA = Path(__file__).resolve().parent / "data"
VERSION = json.dumps({"terraform_version": "1.11.4", "platform": "linux_amd64"})


class FakeTerraform:
    """Stands in for the terraform process: records each argv, answers with canned output."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, tuple[int, str, str]]) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers
        monkeypatch.setattr(tf_mod, "run_process", self.run)

    def run(self, argv: Sequence[str], *, cwd: Path, env, on_stdout: Callable[[str], None],
            on_stderr: Callable[[str], None]) -> int:
        self.calls.append(list(argv))
        code, out, err = self.answers.get(argv[1], (0, "", ""))
        for line in out.splitlines(keepends=True):
            on_stdout(line)
        for line in err.splitlines(keepends=True):
            on_stderr(line)
        return code


def runner(tmp_path: Path, *, is_tty: bool = False, lines: list | None = None) -> Terraform:
    (tmp_path / ".terraform").mkdir(exist_ok=True)
    sink = lines if lines is not None else []
    return Terraform(tmp_path, binary="terraform", env={}, echo=lambda text, err: sink.append((text, err)),
                     is_tty=is_tty)


def test_the_argv_of_every_command_orch_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTerraform(monkeypatch, {
        "version": (0, VERSION, ""),
        "plan": (2, "", ""),
        "show": (0, (DATA / "plan-first-deploy.json").read_text(), ""),
        "apply": (0, (DATA / "apply-no-op.jsonl").read_text(), ""),
        "output": (0, "{}", ""),
    })
    tf = runner(tmp_path)
    tf.init("fingerprint")
    tf.plan(tmp_path / "p.tfplan")
    tf.show_plan(tmp_path / "p.tfplan")
    tf.apply()
    tf.apply(replace=[DEPLOYMENT_ADDRESS])
    tf.apply_saved(tmp_path / "p.tfplan")
    tf.destroy()
    tf.output()
    plan_file = str(tmp_path / "p.tfplan")
    assert fake.calls == [
        ["terraform", "version", "-json", "-no-color"],
        ["terraform", "init", "-json", "-reconfigure", "-input=false", "-lock-timeout=60s", "-no-color"],
        ["terraform", "plan", "-detailed-exitcode", f"-out={plan_file}", "-input=false", "-lock-timeout=60s",
         "-no-color"],
        ["terraform", "show", "-json", "-no-color", plan_file],
        ["terraform", "apply", "-auto-approve", "-json", "-input=false", "-lock-timeout=60s", "-no-color"],
        ["terraform", "apply", "-auto-approve", "-json", f"-replace={DEPLOYMENT_ADDRESS}", "-input=false",
         "-lock-timeout=60s", "-no-color"],
        ["terraform", "apply", "-json", "-input=false", "-lock-timeout=60s", "-no-color", plan_file],
        ["terraform", "destroy", "-auto-approve", "-json", "-input=false", "-lock-timeout=60s", "-no-color"],
        ["terraform", "output", "-json", "-no-color"],
    ]
    for argv in fake.calls:
        assert ("-input=false" in argv) == (argv[1] in ("init", "plan", "apply", "destroy"))
    assert (tmp_path / ".terraform" / tf_mod.INIT_STAMP).read_text() == "fingerprint\n"


def test_colour_only_on_a_terminal() -> None:
    assert "-no-color" not in command_line("terraform", "plan", options={"out": "x"}, is_tty=True)
    assert "-no-color" in command_line("terraform", "plan", options={"out": "x"}, is_tty=False)


def test_explicit_false_survives_and_lists_repeat() -> None:
    argv = command_line("terraform", "apply", options={"refresh": False, "replace": ["a.b", "c.d"], "target": None},
                        is_tty=True)
    assert argv == ["terraform", "apply", "-refresh=false", "-replace=a.b", "-replace=c.d", "-input=false",
                    "-lock-timeout=60s"]
    assert command_line("terraform", "import", ("a.b", "id-1"), is_tty=True)[-2:] == ["a.b", "id-1"]
    assert "-input=false" not in command_line("terraform", "show", is_tty=True)
    assert "-lock-timeout=60s" not in command_line("terraform", "output", is_tty=True)
    assert "-lock-timeout=5m" in command_line("terraform", "plan", options={"lock_timeout": "5m"}, is_tty=True)


def test_a_stale_saved_plan_is_recognised_from_its_json_diagnostic(tmp_path: Path, monkeypatch) -> None:
    FakeTerraform(monkeypatch, {"apply": (1, (DATA / "apply-stale-plan.jsonl").read_text(), "")})
    with pytest.raises(StalePlanError, match="stale") as err:
        runner(tmp_path).apply_saved(tmp_path / "old.tfplan")
    assert err.value.exit_code == 4 and "orch plan" in str(err.value)


def test_provider_install_failure_is_recognised_from_init_json(tmp_path: Path, monkeypatch) -> None:
    FakeTerraform(monkeypatch, {"version": (0, VERSION, ""),
                                "init": (1, (DATA / "init-no-provider.jsonl").read_text(), "")})
    with pytest.raises(ProviderInstallError) as err:
        runner(tmp_path).init("x")
    text = str(err.value)
    assert "ORCH_PROVIDER_MIRROR" in text and "Failed to query available provider packages" in text
    assert not (tmp_path / ".terraform" / tf_mod.INIT_STAMP).exists()


def test_an_old_terraform_is_refused_before_init(tmp_path: Path, monkeypatch) -> None:
    fake = FakeTerraform(monkeypatch, {"version": (0, json.dumps({"terraform_version": "1.6.6"}), "")})
    with pytest.raises(TerraformError, match=r"Terraform 1\.6\.6; orch needs 1\.9"):
        runner(tmp_path).init("x")
    assert [argv[1] for argv in fake.calls] == ["version"]


def test_other_apply_errors_carry_terraforms_diagnostics_in_full(tmp_path: Path, monkeypatch) -> None:
    diag = {"@level": "error", "@message": "Error: creating Lambda Function", "type": "diagnostic",
            "diagnostic": {"severity": "error", "summary": "creating Lambda Function (x)",
                           "detail": "ResourceConflictException: Function already exist",
                           "range": {"filename": "main.tf", "start": {"line": 3}}}}
    lines: list = []
    FakeTerraform(monkeypatch, {"apply": (1, json.dumps(diag) + "\n", "")})
    with pytest.raises(TerraformError) as err:
        runner(tmp_path, lines=lines).apply()
    assert not isinstance(err.value, StalePlanError)
    assert "ResourceConflictException: Function already exist" in str(err.value)
    assert lines == [("Error: creating Lambda Function (x) (in main.tf line 3)\n"
                      "ResourceConflictException: Function already exist", True)]


def test_the_person_watching_sees_terraforms_messages(tmp_path: Path, monkeypatch) -> None:
    lines: list = []
    FakeTerraform(monkeypatch, {"apply": (0, (DATA / "apply-first-deploy.jsonl").read_text(), "")})
    result = runner(tmp_path, lines=lines).apply()
    shown = [text for text, _ in lines]
    assert not any(text.startswith("Terraform 1.") for text in shown)  # the version message is noise
    assert any(text.endswith(": Plan to create") for text in shown)
    assert any(text.startswith("Apply complete! Resources:") for text in shown)
    assert any(text.startswith("Outputs:\n") and '  stage_name = "dev"' in text for text in shown)
    assert "Outputs: 11" not in shown  # the plan-phase message without values is left out
    assert result.changed and result.outputs["stage_name"] == "dev"
    assert "module.stack.module.lambda.aws_lambda_function.this" in result.applied


def test_a_mirror_setting_becomes_a_cli_config_written_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    monkeypatch.setenv("ORCH_PROVIDER_MIRROR", str(mirror))
    config = provider_config(tmp_path / "state")
    assert config is not None and not (tmp_path / "state").exists()  # reading writes nothing
    assert "filesystem_mirror" in config.text and f'"{mirror}"' in config.text and not config.current
    config.write()
    assert config.current and config.env() == {"TF_CLI_CONFIG_FILE": str(tmp_path / "state" / "terraformrc")}


def test_an_existing_cli_config_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc = tmp_path / "rc"
    rc.write_text("# mine\n")
    monkeypatch.delenv("ORCH_PROVIDER_MIRROR", raising=False)
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    assert provider_config(tmp_path / "state") is None


def test_a_mirror_without_the_aws_provider_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORCH_PROVIDER_MIRROR", str(tmp_path))
    with pytest.raises(ConfigError, match="registry.terraform.io/hashicorp/aws"):
        provider_config(tmp_path / "state")


def test_only_the_adapter_imports_python_terraform() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "orch"
    importers = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if "python_terraform" in p.read_text(encoding="utf-8")
    )
    assert importers == ["terraform.py"]


def test_only_the_adapter_starts_terraform() -> None:
    """Process start and stop live in one function (signal forwarding will go there)."""
    src = Path(__file__).resolve().parents[1] / "src" / "orch"
    text = (src / "terraform.py").read_text()
    assert text.count("Popen(") == 1 and "subprocess.run(" not in text
    users = sorted(p.name for p in src.glob("*.py") if "find_binary" in p.read_text() and p.name != "terraform.py")
    assert users == ["deploy.py"]  # it builds the runner; nothing else spawns Terraform
