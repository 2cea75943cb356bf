"""Stage settings of issue 9: a custom domain and CORS are refused at config time (exit 3,
file and field named, nothing started) when AWS or browsers would refuse them later, and
what the stage says reaches Terraform's variables as the modules expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import assert_clean_failure, cli
from orch.config import load_stage
from orch.errors import ConfigError
from orch.render import PackageRef, tfvars

CERT = "arn:aws:acm:{region}:123456789012:certificate/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"


def stage_file(project: Path, text: str, name: str = "edge") -> Path:
    path = project / "stages" / f"{name}.yaml"
    path.write_text(text)
    return path


def test_an_edge_domain_with_a_certificate_outside_us_east_1_is_refused_at_config_time(project: Path) -> None:
    """Acceptance 2: exit 3 naming the file and the field, before anything starts."""
    path = stage_file(project, f"domain:\n  name: api.example.com\n  endpoint_type: EDGE\n"
                               f"  certificate_arn: {CERT.format(region='eu-west-1')}\n")
    result = cli("apply", "edge", "--sandbox", cwd=project)
    assert_clean_failure(result, 3, f"{path}: domain.certificate_arn", "us-east-1", "eu-west-1")
    assert not (project / ".orch").exists()  # no sandbox, no package, nothing rendered
    stage_file(project, f"domain:\n  name: api.example.com\n  endpoint_type: EDGE\n"
                        f"  certificate_arn: {CERT.format(region='us-east-1')}\n")
    assert load_stage(project, "edge").config.domain.certificate_region == "us-east-1"


@pytest.mark.parametrize(("domain", "field", "words"), [
    ("{name: api.example.com, certificate_arn: " + CERT.format(region="us-west-2") + "}",
     "domain.certificate_arn", "stage's region (ap-northeast-2)"),
    ("{name: api.example.com, base_path: v1/orders, create_certificate: true, hosted_zone: example.com}",
     "domain.base_path", "one path segment"),
    ("{name: 'api_x.example.com', create_certificate: true, hosted_zone: example.com}",
     "domain.name", "not a valid host name"),
    ("{name: api.example.com., create_certificate: true, hosted_zone: example.com}",
     "domain.name", "not a valid host name"),
    ("{name: api.example.com, create_certificate: true}", "domain", "needs hosted_zone"),
    ("{name: api.example.com, create_certificate: true, hosted_zone: other.com}", "domain", "not inside"),
    ("{name: api.example.com}", "domain", "exactly one"),
    ("{name: api.example.com, certificate_arn: 'arn:aws:iam::1:x'}", "domain.certificate_arn",
     "not an ACM certificate ARN"),
])
def test_what_aws_would_reject_late_is_refused_with_the_field(project: Path, domain: str, field: str,
                                                              words: str) -> None:
    path = stage_file(project, f"domain: {domain}\n")
    with pytest.raises(ConfigError) as caught:
        load_stage(project, "edge")
    assert f"{path}: {field}" in caught.value.message and words in caught.value.message


def test_a_private_api_cannot_have_a_custom_domain(project: Path) -> None:
    stage_file(project, "api: {endpoint_type: PRIVATE}\n"
                        "domain: {name: api.example.com, create_certificate: true, hosted_zone: example.com}\n")
    with pytest.raises(ConfigError, match="PRIVATE API cannot be mapped"):
        load_stage(project, "edge")


@pytest.mark.parametrize(("cors", "words"), [
    ("{allow_origin: '*', allow_credentials: true}", "needs a named allow_origin"),
    ("{allow_origin: 'https://app.example.com/'}", "is not an origin"),
    ("{allow_origin: 'https://a.example.com https://b.example.com'}", "is not an origin"),
    ("{allow_headers: ['Bad Header']}", "not a valid HTTP header name"),
    ("{max_age: 100000}", "less than or equal to 86400"),
])
def test_cors_settings_browsers_would_refuse_are_refused(project: Path, cors: str, words: str) -> None:
    path = stage_file(project, f"api:\n  cors: {cors}\n")
    with pytest.raises(ConfigError) as caught:
        load_stage(project, "edge")
    assert f"{path}: api.cors" in caught.value.message and words in caught.value.message


def test_routes_sharing_a_path_share_one_preflight(project: Path) -> None:
    stage_file(project, "api:\n  cors: true\n  routes:\n"
                        "    - {method: POST, path: /}\n"
                        "    - {method: GET, path: /, cors: {max_age: 5}}\n")
    with pytest.raises(ConfigError, match="share the path '/' .* different CORS settings"):
        load_stage(project, "edge")
    stage_file(project, "api:\n  cors: true\n  routes:\n"
                        "    - {method: POST, path: /}\n    - {method: OPTIONS, path: /}\n")
    with pytest.raises(ConfigError, match="its own OPTIONS route"):
        load_stage(project, "edge")


def test_cors_reaches_terraform_as_the_modules_expect(project: Path) -> None:
    stage_file(project, "api:\n  cors: {allow_origin: 'https://app.example.com', max_age: 60}\n  routes:\n"
                        "    - {method: POST, path: /}\n"
                        "    - {method: GET, path: /}\n"
                        "    - {method: ANY, path: '/{proxy+}', integration: {type: AWS_PROXY}}\n"
                        "    - {method: GET, path: /private, cors: false}\n")
    values = tfvars(load_stage(project, "edge"), PackageRef("c2hh", filename="/p.zip"))
    preflights = {p.path: p for p in values.api.preflights}
    assert set(preflights) == {"/", "/{proxy+}"}  # not /private: CORS off there
    assert preflights["/"].allow_methods == ["GET", "OPTIONS", "POST"]
    assert preflights["/{proxy+}"].allow_methods == ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    assert preflights["/"].max_age == 60 and preflights["/"].allow_origin == "https://app.example.com"
    routes = {f"{r.method} {r.path}": r for r in values.api.routes}
    assert routes["POST /"].cors.allow_origin == "https://app.example.com" and routes["GET /private"].cors is None
    assert values.api.error_cors.allow_origin == "https://app.example.com"
    assert values.domain is None


def test_the_sample_stages_show_each_feature(project: Path) -> None:
    dev, prod = load_stage(project, "dev").config, load_stage(project, "prod").config
    assert dev.api.error_cors() is not None and dev.domain is None
    assert prod.api.error_cors() is None and prod.domain.create_certificate and prod.domain.hosted_zone
    main_tf = cli("render", "prod", "--file", "main.tf", cwd=project)
    assert main_tf.code == 0 and 'alias  = "us_east_1"' in main_tf.stdout
    assert "aws.us_east_1 = aws.us_east_1" in main_tf.stdout  # the root hands the stack both providers
