"""Functional tests: the real `orch` command for what needs neither Terraform nor AWS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli

COMMANDS = ["plan", "apply", "sync", "destroy", "output", "render", "package", "stages", "serve", "sandbox", "init"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = cli(command, "--help", cwd=tmp_path)
    assert result.code == 0, result.output
    assert "Usage: orch " + command in result.stdout


@pytest.mark.parametrize("args", [("-h",), ("plan", "-h"), ("sandbox", "start", "-h")])
def test_h_is_help_too(args: tuple[str, ...], tmp_path: Path) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.code == 0, result.output
    assert result.stdout.startswith("Usage: orch") and "-h, --help" in result.stdout


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = cli("--version", cwd=tmp_path)
    assert result.code == 0, result.output
    assert result.stdout.strip() == f"orch {version('orch')}"


def test_stages_lists_where_each_stage_deploys(project: Path) -> None:
    result = cli("stages", "--json", cwd=project)
    assert result.code == 0, result.output
    rows = {r["stage"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"dev", "prod"}
    assert rows["dev"]["function"] == "orch-loopback-dev" and rows["prod"]["protected"] is True
    assert rows["dev"]["region"] == "ap-northeast-2" and rows["dev"]["backend"] == "local state"
    table = cli("stages", cwd=project).stdout.splitlines()
    assert table[0].split()[:3] == ["STAGE", "REGION", "FUNCTION"] and len(table) == 3


def test_package_twice_gives_the_same_sha256(project: Path) -> None:
    first, second = cli("package", "dev", cwd=project), cli("package", "dev", cwd=project)
    assert first.code == second.code == 0
    assert first.stdout == second.stdout and "sha256:" in first.stdout
    path = Path(first.stdout.split()[0])
    assert path.is_file() and path.name == first.stdout.split("sha256:")[1].strip() + ".zip"


def test_render_shows_what_terraform_gets_and_writes_nothing(project: Path) -> None:
    result = cli("render", "dev", "--file", "terraform.tfvars.json", cwd=project)
    assert result.code == 0, result.output
    values = json.loads(result.stdout)
    assert values["stage_name"] == "dev" and values["function"]["memory_size"] == 128
    assert not (project / ".orch" / "work").exists()


def test_project_option_and_missing_stages_folder(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("stages", "--project", str(project), cwd=elsewhere).code == 0
    result = cli("stages", cwd=elsewhere)
    assert result.code == 3 and "no stages/ folder" in result.stderr and "Traceback" not in result.output


def test_sandbox_status_when_not_running(project: Path) -> None:
    result = cli("sandbox", "status", "--json", cwd=project)
    assert result.code == 0
    assert json.loads(result.stdout) == {"running": False, "endpoint": None}


def test_serve_needs_the_sandbox(project: Path) -> None:
    result = cli("serve", "dev", cwd=project)
    assert result.code == 3 and "--sandbox" in result.stderr
