"""Unit tests: command lines built for Terraform and plan results read back (no Terraform run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.deploy import DEPLOYMENT_ADDRESS, PlanSummary
from orch.errors import ConfigError
from orch.terraform import PlanResult, RunResult, build_args, cli_config


def test_flags_follow_terraform_conventions() -> None:
    argv = build_args("terraform", "plan", input=False, detailed_exitcode=True, out="x.tfplan",
                      destroy=False, lock_timeout="60s", no_color=True)
    assert argv[:2] == ["terraform", "plan"]
    assert set(argv[2:]) == {"-detailed-exitcode", "-out=x.tfplan", "-lock-timeout=60s", "-no-color"}
    # -input=false is spelled out only when asked for as a value
    assert "-input=false" in build_args("terraform", "apply", input="false")


def test_list_options_repeat_the_flag() -> None:
    argv = build_args("terraform", "apply", auto_approve=True, replace=[DEPLOYMENT_ADDRESS, "a.b"])
    assert argv.count(f"-replace={DEPLOYMENT_ADDRESS}") == 1 and "-replace=a.b" in argv
    assert "-auto-approve" in argv


def _plan(stdout: str, changes: bool) -> PlanResult:
    return PlanResult(RunResult(("terraform", "plan"), 2 if changes else 0, stdout, "", 1.0), changes, None)


def test_plan_summary_reads_counts_and_removed_routes() -> None:
    text = (
        '  # module.stack.module.rest_api.aws_api_gateway_method.this["GET /old"] will be destroyed\n'
        "Plan: 1 to add, 2 to change, 3 to destroy.\n"
    )
    summary = PlanSummary.from_plan(_plan(text, True))
    assert (summary.add, summary.change, summary.destroy) == (1, 2, 3)
    assert summary.removes_routes
    assert summary.text() == "1 to add, 2 to change, 3 to destroy"
    assert not PlanSummary.from_plan(_plan("Plan: 0 to add, 1 to change, 0 to destroy.", True)).removes_routes
    assert PlanSummary.from_plan(_plan("No changes.", False)).text() == "no changes"


def test_provider_mirror_setting_writes_a_cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    monkeypatch.setenv("ORCH_PROVIDER_MIRROR", str(mirror))
    env = cli_config(tmp_path / "state")
    text = Path(env["TF_CLI_CONFIG_FILE"]).read_text()
    assert "filesystem_mirror" in text and f'"{mirror}"' in text
    assert cli_config(tmp_path / "state") == env  # idempotent


def test_an_existing_cli_config_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc = tmp_path / "rc"
    rc.write_text("# mine\n")
    monkeypatch.delenv("ORCH_PROVIDER_MIRROR", raising=False)
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    assert cli_config(tmp_path / "state") == {}


def test_a_mirror_without_the_aws_provider_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ORCH_PROVIDER_MIRROR", str(tmp_path))
    with pytest.raises(ConfigError, match="registry.terraform.io/hashicorp/aws"):
        cli_config(tmp_path / "state")


def test_only_the_adapter_imports_python_terraform() -> None:
    src = Path(__file__).resolve().parents[1] / "src" / "orch"
    importers = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if "python_terraform" in p.read_text(encoding="utf-8")
    )
    assert importers == ["terraform.py"]


def test_saved_plan_summary_from_show_json() -> None:
    plan = {"resource_changes": [
        {"type": "aws_api_gateway_method", "change": {"actions": ["delete"]}},
        {"type": "aws_api_gateway_deployment", "change": {"actions": ["create", "delete"]}},
        {"type": "aws_lambda_function", "change": {"actions": ["update"]}},
        {"type": "aws_lambda_alias", "change": {"actions": ["no-op"]}},
    ]}
    summary = PlanSummary.from_plan_json(plan)
    assert (summary.changes, summary.add, summary.change, summary.destroy) == (True, 1, 1, 2)
    assert summary.removes_routes
    replaced = {"resource_changes": [{"type": "aws_api_gateway_method", "change": {"actions": ["delete", "create"]}}]}
    assert not PlanSummary.from_plan_json(replaced).removes_routes
    assert PlanSummary.from_plan_json({}).text() == "no changes"
