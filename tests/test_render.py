"""Unit tests: rendering a stage into Terraform files (no Terraform run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.config import load_stage
from orch.errors import ConfigError
from orch.render import PackageRef, Target, passthrough_template, render, work_dir, write

PKG = PackageRef("c2hhMjU2", filename="/pkg/abc.zip")


def test_tfvars_follow_the_stage(project: Path) -> None:
    files = render(load_stage(project, "prod"), Target("aws"), PKG)
    values = json.loads(files["terraform.tfvars.json"])
    assert values["stage_name"] == "prod"
    assert values["function"]["name"] == "orch-loopback-prod"
    assert values["function"]["memory_size"] == 256
    assert values["function"]["package"] == {
        "filename": "/pkg/abc.zip", "s3_bucket": None, "s3_key": None, "source_code_hash": "c2hhMjU2",
    }
    route = values["api"]["routes"][0]
    assert route["request_parameters"] == {
        "method.request.header.Authorization": False,
        "method.request.querystring.deptno-param": False,
    }
    assert route["request_templates"] == {
        "application/json": passthrough_template(project),
        "application/x-www-form-urlencoded": passthrough_template(project),
    }
    assert [r["status_code"] for r in route["responses"]] == ["200", "400", "500"]
    assert values["stage"]["variables"] == {"env": "prod", "greeting": "hello-from-prod"}
    assert values["stage"]["logging_level"] == "ERROR"


def test_passthrough_template_carries_what_the_function_needs(project: Path) -> None:
    text = passthrough_template(project)
    for key in ('"body-json"', '"params"', '"stage-variables"', '"context"', '"stage" : "$context.stage"',
                '"http-method" : "$context.httpMethod"'):
        assert key in text


def test_sandbox_points_every_service_and_the_state_bucket_at_the_emulator(project: Path) -> None:
    stage = load_stage(project, "dev")
    (project / "stages" / "dev.yaml").write_text(
        (project / "stages" / "dev.yaml").read_text() + "backend: {type: s3, bucket: team-state}\n"
    )
    stage = load_stage(project, "dev")
    sandbox = render(stage, Target("sandbox", "http://127.0.0.1:4999"), PKG)
    assert 'backend "s3"' in sandbox["backend.tf"]  # the bucket lives in the emulator's S3
    assert 'endpoints                   = { s3 = "http://127.0.0.1:4999" }' in sandbox["backend.tf"]
    assert 'lambda     = "http://127.0.0.1:4999"' in sandbox["main.tf"]
    assert 'access_key                  = "test"' in sandbox["main.tf"]
    aws = render(stage, Target("aws"), PKG)
    assert 'backend "s3"' in aws["backend.tf"]
    assert '"team-state"' in aws["backend.tf"]
    assert '"orch/orch/dev/terraform.tfstate"' in aws["backend.tf"]
    assert "use_lockfile = true" in aws["backend.tf"]
    assert "endpoints" not in aws["main.tf"] and "endpoints" not in aws["backend.tf"]
    assert work_dir(project, "dev", Target("aws")) != work_dir(project, "dev", Target("sandbox", "x"))


def test_module_source_is_relative_to_the_working_folder(project: Path) -> None:
    files = render(load_stage(project, "dev"), Target("aws"), PKG)
    assert 'source = "../../../../modules/stack"' in files["main.tf"]


def test_rendering_is_deterministic(project: Path) -> None:
    stage = load_stage(project, "dev")
    assert render(stage, Target("aws"), PKG) == render(stage, Target("aws"), PKG)


def test_undefined_template_variable_names_the_template(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "main.tf.j2").write_text("# {{ no_such_value }}\n")
    with pytest.raises(ConfigError, match=r"templates/main.tf.j2: 'no_such_value' is undefined"):
        render(load_stage(project, "dev"), Target("aws"), PKG)


def test_write_is_atomic_and_reports_changes(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    assert write({"a.tf": "1", "b.tf": "2"}, folder) == ["a.tf", "b.tf"]
    assert write({"a.tf": "1", "b.tf": "3"}, folder) == ["b.tf"]
    assert sorted(p.name for p in folder.iterdir()) == ["a.tf", "b.tf"]  # no temp files left


def test_inline_and_file_templates(project: Path) -> None:
    (project / "t.vtl").write_text('{"from": "file"}')
    (project / "stages" / "dev.yaml").write_text(
        "api:\n  routes:\n"
        "    - {method: GET, path: /a, integration: {request_template: {file: t.vtl}}}\n"
        "    - {method: GET, path: '/b/{id}', integration: {request_template: {inline: '{}'}}}\n"
        "    - {method: ANY, path: '/{proxy+}', integration: {type: AWS_PROXY}}\n"
    )
    routes = json.loads(render(load_stage(project, "dev"), Target("aws"), PKG)["terraform.tfvars.json"])[
        "api"]["routes"]
    assert routes[0]["request_templates"] == {"application/json": '{"from": "file"}'}
    assert routes[1]["request_templates"] == {"application/json": "{}"}
    assert routes[1]["request_parameters"] == {"method.request.path.id": True}
    assert routes[2]["request_templates"] == {} and routes[2]["responses"] == []
    assert routes[2]["request_parameters"] == {"method.request.path.proxy": True}
