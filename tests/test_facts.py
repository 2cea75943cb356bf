"""orch.facts: what the planner decides on, read without writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.config import load_stage
from orch.errors import ConfigError
from orch.facts import EPOCH_FILE, gather
from orch.resources import module_sources
from orch.terraform import INIT_STAMP, init_fingerprint


def files_under(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*")}


def test_a_fresh_project_reads_as_first_deploy_and_nothing_is_written(project: Path, monkeypatch) -> None:
    mirror = project / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    monkeypatch.setenv("ORCH_PROVIDER_MIRROR", str(mirror))
    before = files_under(project)
    facts = gather(load_stage(project, "dev"), "sandbox", interactive=True)
    assert files_under(project) == before
    assert facts.init_reason == "first run in this working folder"
    assert facts.sandbox is None and not facts.sandbox_running and not facts.state_present
    assert facts.provider_config is not None and not facts.provider_config_written
    assert facts.interactive and not facts.yes and facts.on_sandbox


def test_a_stopped_sandbox_with_state_reads_as_restarted(project: Path) -> None:
    stage = load_stage(project, "dev")
    workdir = project / ".orch" / "work" / "sandbox" / "dev"
    workdir.mkdir(parents=True)
    (workdir / "terraform.tfstate").write_text("{}")
    (workdir / EPOCH_FILE).write_text("old-run\n")
    facts = gather(stage, "sandbox")
    assert facts.state_present and facts.recorded_epoch == "old-run" and facts.sandbox_restarted
    assert gather(stage, "aws").recorded_epoch is None  # real AWS has no sandbox runs


def test_init_is_not_needed_when_the_stamp_matches(project: Path, monkeypatch) -> None:
    monkeypatch.delenv("ORCH_PROVIDER_MIRROR", raising=False)
    rc = project / "rc"
    rc.write_text("# user config\n")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc))
    stage = load_stage(project, "dev")
    workdir = project / ".orch" / "work" / "aws" / "dev"
    (workdir / ".terraform").mkdir(parents=True)
    (workdir / ".terraform.lock.hcl").write_text("")
    assert gather(stage, "aws", env_cli_config=str(rc)).init_reason == "not initialised by orch"
    from orch.render import PackageRef, Target, render

    backend = render(stage, Target("aws"), PackageRef(""))["backend.tf"]
    stamp = init_fingerprint(backend, str(rc), None, module_sources(project))
    (workdir / ".terraform" / INIT_STAMP).write_text(stamp + "\n")
    assert gather(stage, "aws", env_cli_config=str(rc)).init_reason is None
    (project / "stages" / "dev.yaml").write_text("backend: {type: s3, bucket: team-state}\n")
    assert gather(load_stage(project, "dev"), "aws", env_cli_config=str(rc)).init_reason == (
        "backend, provider installation or module sources changed")


def test_a_broken_template_is_a_config_error_before_any_step(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "main.tf.j2").write_text("{{ nope }}\n")
    with pytest.raises(ConfigError, match="main.tf.j2"):
        gather(load_stage(project, "dev"), "sandbox")
