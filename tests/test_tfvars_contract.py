"""Contract: every nested key orch renders into terraform.tfvars.json is one modules/stack
declares, and every attribute it requires is sent (Terraform drops unknown object attributes
silently). The module's types are read from its HCL with python-hcl2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from orch.config import load_stage
from orch.render import PackageRef, Target, render
from tfcontract import check_tfvars, module_types

REPO = Path(__file__).resolve().parents[1]
VARIABLES = module_types(REPO / "modules" / "stack" / "variables.tf")
LOCAL = PackageRef("c2hhMjU2", filename="/pkg/abc.zip")
IN_S3 = PackageRef("c2hhMjU2", s3_bucket="artifacts", s3_key="orch/packages/abc.zip")

EVERYTHING = """
api:
  routes:
    - method: POST
      path: /
      parameters: {headers: {Authorization: true}, querystrings: {q: false}}
      errors:
        - {status: 400, pattern: '.*Bad.*', template: '{"m": "bad"}'}
    - {method: GET, path: '/items/{id}', integration: {request_template: {inline: '{}'}}}
    - {method: ANY, path: '/{proxy+}', integration: {type: AWS_PROXY}, cors: false}
    - {method: GET, path: /own, cors: {allow_methods: [GET], expose_headers: [X-Id], max_age: 60}}
  cors: {allow_origin: 'https://app.example.com', allow_credentials: true}
domain:
  name: api.example.com
  base_path: v1
  certificate_arn: arn:aws:acm:ap-northeast-2:123456789012:certificate/abc
  hosted_zone: example.com
stage:
  name: live
  variables: {env: x}
  logging: {level: INFO, metrics: true, data_trace: true, access_logs: true}
  tracing: true
function:
  reserved_concurrency: 5
  environment: {A: b}
"""


def tfvars_of(project: Path, stage: str, package: PackageRef = LOCAL) -> dict:
    files = render(load_stage(project, stage), Target("aws"), package)
    return json.loads(files["terraform.tfvars.json"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_shipped_stages_render_exactly_what_the_module_declares(project: Path, stage: str) -> None:
    assert check_tfvars(tfvars_of(project, stage), VARIABLES) == []
    assert check_tfvars(tfvars_of(project, stage, IN_S3), VARIABLES) == []


def test_every_option_renders_keys_the_module_declares(project: Path) -> None:
    (project / "stages" / "dev.yaml").write_text(EVERYTHING)
    values = tfvars_of(project, "dev")
    assert check_tfvars(values, VARIABLES) == []
    assert values["stage"]["enable_access_logs"] is True  # access logs reach the module
    assert values["stage"]["xray_tracing_enabled"] is True
    assert [p["path"] for p in values["api"]["preflights"]] == ["/", "/items/{id}", "/own"]
    assert values["api"]["routes"][2]["cors"] is None and values["domain"]["base_path"] == "v1"


def test_a_renamed_key_is_caught(project: Path) -> None:
    values = tfvars_of(project, "dev")
    renamed = copy.deepcopy(values)
    renamed["stage"]["access_logs_enabled"] = renamed["stage"].pop("enable_access_logs")
    assert check_tfvars(renamed, VARIABLES) == [
        "stage.access_logs_enabled: not declared by the module (Terraform would drop it)"
    ]
    nested = copy.deepcopy(values)
    nested["api"]["routes"][0]["responses"][0]["status"] = nested["api"]["routes"][0]["responses"][0].pop(
        "status_code")
    problems = check_tfvars(nested, VARIABLES)
    assert "api.routes[0].responses[0].status: not declared by the module (Terraform would drop it)" in problems
    assert "api.routes[0].responses[0].status_code: required by the module but not sent" in problems


def test_a_missing_required_key_and_a_wrong_type_are_caught(project: Path) -> None:
    values = tfvars_of(project, "dev")
    del values["function"]["handler"]
    values["function"]["memory_size"] = "128"
    assert sorted(check_tfvars(values, VARIABLES)) == [
        "function.handler: required by the module but not sent",
        "function.memory_size: expected number, got str '128'",
    ]
    del values["region"]
    assert "region: required variable not sent" in check_tfvars(values, VARIABLES)


def test_the_reader_sees_the_module_types() -> None:
    """Guard against a reader that finds nothing (and so could never fail)."""
    assert set(VARIABLES) == {"region", "stage_name", "tags", "function", "api", "stage", "domain",
                              "secret_environment"}
    assert VARIABLES["secret_environment"][1]  # optional: orch passes it as TF_VAR_, never in the tfvars
    stage_type, has_default = VARIABLES["stage"]
    assert has_default and "enable_access_logs" in stage_type.attributes
    routes = VARIABLES["api"][0].attributes["routes"][0]
    assert routes.kind == "list" and routes.element is not None
    assert routes.element.attributes["method"][1] is False  # required
    assert routes.element.attributes["responses"][1] is True  # optional
