"""Integration: the real terraform binary and AWS provider against a real moto server.

One throwaway project goes through a stage's life in order (the tests below share it and
run top to bottom): refuse an unconfirmed protected apply, refuse prod a package dev never
passed, deploy dev (access logs on, CORS on, smoke checks), a dry run that changes nothing, a
no-op plan, the prototype's request through the local gateway, dev's CORS and OpenAPI
document (issue 9), `orch smoke`, `logs` and `invoke`, the prod confirmation through a
pseudo-terminal, the promotion guard, deploy prod beside dev with its custom domain (issue
9), `orch ci` on a pull request (both stages planned, one PR comment, nothing applied) and
on a push to main (dev applied and smoke-checked, Slack told), the edit loop (a saved
handler served at once, a code-only `orch sync`, an apply that converges after it, watched
on a terminal), a bad release rolled back through Terraform, detect and apply changes,
refuse a stale plan, a rollback by hand, destroy dev only (its URL answers 403 at once),
survive a sandbox stop, deploy a package over 50 MB through the sandbox's S3, converge
after a kill -9 during an apply, and keep a secret out of every output.
Terraform runs are counted: each is 5-15 s.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

from helpers import (
    REPO,
    TERMINAL_CODES,
    assert_clean_failure,
    free_port,
    make_project,
    orch,
    screen_text,
    wait_for,
)
from orch.planner import REDEPLOY

REDEPLOY_RAN = f"] {REDEPLOY}"

pytestmark = pytest.mark.deploy

if shutil.which("terraform") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("terraform is not on PATH; CI needs it")
    pytest.skip("terraform is not on PATH", allow_module_level=True)


ACCESS_LOGS = "  logging: {access_logs: true}\n"


def dev_yaml(text: str) -> str:
    """dev.yaml with access logs on (only here: on AWS they need the account's API Gateway role)."""
    assert text.count("stage:\n") == 1
    return text.replace("stage:\n", "stage:\n" + ACCESS_LOGS)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory):
    path = make_project(tmp_path_factory.mktemp("integration") / "proj")
    (path / "stages" / "dev.yaml").write_text(dev_yaml((REPO / "stages" / "dev.yaml").read_text()))
    try:
        yield path
    finally:
        orch("sandbox", "stop", cwd=path)


def aws(proj: Path, service: str):
    state = json.loads((proj / ".orch" / "sandbox" / "state.json").read_text())
    return boto3.client(
        service, endpoint_url=state["endpoint"], region_name="ap-northeast-2",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


def functions(proj: Path) -> set[str]:
    return {f["FunctionName"] for f in aws(proj, "lambda").list_functions()["Functions"]}


def apis(proj: Path) -> dict[str, str]:
    return {a["name"]: a["id"] for a in aws(proj, "apigateway").get_rest_apis()["items"]}


def outputs(proj: Path, stage: str) -> dict:
    result = orch("output", stage, "--sandbox", "--json", cwd=proj)
    assert result.code == 0, result.output
    return json.loads(result.stdout)


def test_protected_stage_is_not_changed_without_confirmation(proj: Path) -> None:
    result = orch("apply", "prod", "--sandbox", cwd=proj)
    assert_clean_failure(result, 130, "protected stage 'prod'", "--yes")
    assert not (proj / ".orch").exists()  # refused before the sandbox started or anything was built


def test_promotion_refuses_prod_a_package_dev_never_passed(proj: Path) -> None:
    """Issue 7 acceptance 6, first half: prod promotes from dev, dev has passed nothing yet.
    Refused after the package is built and before Terraform runs (no Terraform run here)."""
    result = orch("apply", "prod", "--sandbox", "--yes", cwd=proj)
    assert_clean_failure(result, 3, "promotes from 'dev'", "never passed the smoke checks of stage 'dev'",
                         "--skip-promotion-check")
    assert "terraform apply" not in result.stderr and "terraform init" not in result.stderr
    assert not (proj / ".orch/work/sandbox/prod/terraform.tfstate").exists()


def test_apply_dev_deploys_and_prints_the_invoke_url(proj: Path) -> None:
    result = orch("apply", "dev", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    assert "smoke checks passed: 9/9" in result.stderr  # orch apply ran its checks (CORS preflight: the 9th)
    assert "passed its smoke checks" in result.stderr
    url = result.stdout.strip().splitlines()[-1]
    api_id = apis(proj)["orch-loopback-dev"]
    assert url.startswith("http://127.0.0.1:") and url.endswith(f"/restapis/{api_id}/dev/_user_request_")
    assert "orch-loopback-dev" in functions(proj)
    alias = aws(proj, "lambda").get_alias(FunctionName="orch-loopback-dev", Name="dev")
    assert alias["FunctionVersion"] != "$LATEST"
    stage = aws(proj, "apigateway").get_stage(restApiId=api_id, stageName="dev")
    assert stage["variables"] == {"env": "dev", "greeting": "hello-from-dev"}
    # access logs reached Terraform: the stage writes them to the log group the module made
    group = f"API-Gateway-Access-Logs_{api_id}/dev"
    groups = aws(proj, "logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    settings = stage["accessLogSettings"]
    assert settings["destinationArn"].rstrip(":*") == groups[0]["arn"].rstrip(":*")
    assert '"requestId":"$context.requestId"' in settings["format"]


def emulator_and_files(proj: Path) -> dict:
    """What a dry run must leave alone: every file under .orch/ and what the emulator holds."""
    files = {str(p.relative_to(proj)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in (proj / ".orch").rglob("*") if "sandbox.log" not in p.name}
    apigw = aws(proj, "apigateway")
    return {
        "files": files,
        "functions": sorted((f["FunctionName"], f["Version"], f["CodeSha256"])
                            for f in aws(proj, "lambda").list_functions()["Functions"]),
        "apis": {a["id"]: [(s["stageName"], s.get("deploymentId")) for s in apigw.get_stages(restApiId=a["id"])["item"]]
                 for a in apigw.get_rest_apis()["items"]},
        "buckets": sorted(b["Name"] for b in aws(proj, "s3").list_buckets()["Buckets"]),
    }


def test_dry_run_changes_nothing(proj: Path) -> None:
    before = emulator_and_files(proj)
    (proj / "stages" / "dev.yaml").write_text(
        dev_yaml((REPO / "stages" / "dev.yaml").read_text().replace("hello-from-dev", "dry"))
    )
    try:
        result = orch("apply", "dev", "--sandbox", "--dry-run", cwd=proj)
        destroy = orch("destroy", "dev", "--sandbox", "--dry-run", "--yes", cwd=proj)
    finally:
        (proj / "stages" / "dev.yaml").write_text(dev_yaml((REPO / "stages" / "dev.yaml").read_text()))
    assert result.code == 0 and destroy.code == 0, result.output + destroy.output
    assert "use the running sandbox" in result.stdout and "terraform destroy" in destroy.stdout
    assert emulator_and_files(proj) == before


def test_plan_right_after_apply_has_no_changes(proj: Path) -> None:
    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 0, result.output
    assert "terraform init" not in result.stderr  # init runs only when needed


def test_prototype_request_reaches_the_function_as_documented(proj: Path) -> None:
    url = outputs(proj, "dev")["invoke_url"]
    resp = requests.post(f"{url}?deptno-param=x", headers={"Authorization": "y"}, data='{"a":1}', timeout=30)
    assert resp.status_code == 200, resp.text
    event = resp.json()["event"]
    # The API invokes the stage's alias, and the function's context says so.
    assert resp.json()["context"]["invoked_function_arn"].endswith(":function:orch-loopback-dev:dev")
    assert event["body-json"] == {"a": 1}
    assert event["params"]["path"] == {}
    assert event["params"]["querystring"] == {"deptno-param": "x"}
    assert event["params"]["header"]["Authorization"] == "y"
    assert event["stage-variables"] == {"env": "dev", "greeting": "hello-from-dev"}
    assert event["context"]["http-method"] == "POST"
    assert event["context"]["stage"] == "dev"
    # The stage's error mappings: the function's "[BadRequest] ..." error becomes a 400.
    bad = requests.post(url, json={"fail": "bad-request"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["errorMessage"].startswith("[BadRequest]")
    assert requests.post(url, json={"fail": "internal"}, timeout=30).status_code == 500


# --- issue 9 on dev (CORS on in stages/dev.yaml) -----------------------------------------

ORIGIN = "https://app.example.com"


def test_cors_preflight_post_and_403_carry_the_configured_headers(proj: Path) -> None:
    """Acceptance 3, CORS on: the preflight (a MOCK Terraform deployed), the function's
    response and API Gateway's own 403 all carry Access-Control-Allow-Origin."""
    url = outputs(proj, "dev")["invoke_url"]
    preflight = requests.options(url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "Content-Type"}, timeout=30)
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Allow-Methods"] == "OPTIONS,POST"
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"].split(",")
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    post = requests.post(url, json={"a": 1}, headers={"Origin": ORIGIN}, timeout=30)
    assert post.status_code == 200 and post.headers["Access-Control-Allow-Origin"] == "*"
    unknown = requests.get(url + "/unknown", headers={"Origin": ORIGIN}, timeout=30)
    assert unknown.status_code == 403 and unknown.headers["Access-Control-Allow-Origin"] == "*"
    failed = requests.post(url, json={"fail": "internal"}, headers={"Origin": ORIGIN}, timeout=30)
    assert failed.status_code == 500 and failed.headers["Access-Control-Allow-Origin"] == "*"


def deployed_routes(proj: Path, rest_api_id: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every method of the deployed API, read through boto3."""
    items = aws(proj, "apigateway").get_resources(restApiId=rest_api_id, embed=["methods"])["items"]
    return {(method, item["path"]) for item in items for method in item.get("resourceMethods", {})}


def test_openapi_of_dev_lists_the_deployed_routes(proj: Path) -> None:
    """Acceptance 4: `orch openapi dev` validates and lists what API Gateway holds (the
    sandbox's get_export is a skeleton, so the resources and methods are compared)."""
    from openapi_spec_validator import OpenAPIV30SpecValidator

    from orch.openapi import routes

    result = orch("openapi", "dev", cwd=proj)
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert list(OpenAPIV30SpecValidator(document).iter_errors()) == []
    deployed = deployed_routes(proj, outputs(proj, "dev")["rest_api_id"])
    assert routes(document) == deployed == {("POST", "/"), ("OPTIONS", "/")}


def test_docs_page_is_published_to_the_stages_docs_bucket(proj: Path) -> None:
    """`orch docs STAGE --publish --sandbox`: the page goes to `docs.bucket` in the emulator's S3
    (a bucket orch creates there, as for state), under `<project>/<stage>/index.html`."""
    (proj / "stages" / "site.yaml").write_text("docs: {bucket: orch-docs}\n")
    try:
        result = orch("docs", "site", "--publish", "--sandbox", cwd=proj)
    finally:
        (proj / "stages" / "site.yaml").unlink()
    assert result.code == 0, result.output
    assert "published s3://orch-docs/orch/site/index.html" in result.stderr
    page = aws(proj, "s3").get_object(Bucket="orch-docs", Key="orch/site/index.html")
    assert page["ContentType"] == "text/html; charset=utf-8"
    assert page["Body"].read().decode() == Path(result.stdout.strip()).read_text()


def test_smoke_passes_with_json_and_junit(proj: Path, tmp_path: Path) -> None:
    """Issue 7 acceptance 1: after the apply (which ran its checks), `orch smoke --json` passes
    every check, and `--junit` writes a file that parses and names every check."""
    from junitparser import JUnitXml

    junit = tmp_path / "smoke.xml"
    result = orch("smoke", "dev", "--sandbox", "--json", "--junit", str(junit), cwd=proj)
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    names = [check["name"] for check in report["checks"]]
    assert report["passed"] is True and all(check["passed"] for check in report["checks"]), report
    assert {"alias points at the released version", "API may invoke the function",
            "prototype request comes back", "error mapping gives 400"} <= set(names)
    assert "CORS preflight /" in names  # issue 9: dev has CORS on, so a preflight is checked too
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert [case.name for case in cases] == names and all(case.is_passed for case in cases)
    records = list((proj / ".orch/work/sandbox/dev/releases").glob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["passed"] is True


def test_logs_show_the_handlers_lines_between_start_and_report(proj: Path) -> None:
    """Issue 7 acceptance 4: the smoke requests' handler output, framed by Lambda's own lines.
    The gateway ships logs about once a second: wait for them, bounded."""
    deadline = time.monotonic() + 20
    while True:  # each `orch logs` takes about a second: that is the polling interval
        result = orch("logs", "dev", "--sandbox", "--since", "30m", cwd=proj)
        assert result.code == 0, result.output
        framed = {rid: lines for rid, lines in _invocations(result.stdout).items()
                  if any('"loopback invoked"' in line for line in lines) and lines[-1].startswith("REPORT")}
        if framed or time.monotonic() > deadline:
            break
    assert framed, result.stdout[-3000:]
    for lines in framed.values():
        assert lines[0].startswith("START RequestId:") and lines[-1].startswith("REPORT RequestId:")
        assert "END RequestId:" in lines[-2] and "Billed Duration:" in lines[-1] and "Max Memory Used:" in lines[-1]
    filtered = orch("logs", "dev", "--sandbox", "--since", "30m", "--filter", "REPORT", cwd=proj)
    assert filtered.code == 0 and filtered.stdout.strip()
    assert all("REPORT RequestId:" in line for line in filtered.stdout.strip().splitlines())


def _invocations(text: str) -> dict[str, list[str]]:
    """RequestId -> its log lines (messages), from `orch logs` output (`<time> [<version>] <message>`)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        message = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
        if message.startswith("START RequestId: "):
            current = message.split()[2]
            found[current] = []
        if current is not None:
            found[current].append(message)
        if message.startswith("REPORT RequestId: "):
            current = None
    return found


def test_invoke_calls_the_function_through_its_alias(proj: Path) -> None:
    """Issue 7 acceptance 5: `orch invoke` prints the handler's answer (the event is the data)."""
    result = orch("invoke", "dev", "--sandbox", "--data", '{"a":1}', "--log", cwd=proj)
    assert result.code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["event"] == {"a": 1}
    assert answer["context"]["invoked_function_arn"].endswith(":function:orch-loopback-dev:dev")
    assert "START RequestId:" in result.stderr and "REPORT RequestId:" in result.stderr
    bad = orch("invoke", "dev", "--sandbox", "--data", "{a:1}", cwd=proj)
    assert_clean_failure(bad, 3, "--data: not JSON")


def test_prod_confirmation_through_a_terminal_shows_terraforms_counts(proj: Path) -> None:
    """Acceptance 1: under a pseudo-terminal Terraform colours its output; the counts in orch's
    question must still equal Terraform's own `Plan:` line. Answering no costs one plan."""
    import pexpect

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    child = pexpect.spawn(sys.executable, ["-m", "orch.cli", "apply", "prod", "--sandbox"], cwd=str(proj),
                          env=env, encoding="utf-8", timeout=300, dimensions=(50, 200))
    try:
        child.expect(r"Apply (.*) to protected stage 'prod'\? \[y/N\]: ")
        raw = child.before
        shown = screen_text(raw)  # as the terminal shows it (colours, the live status line)
        question_counts = child.match.group(1)
        child.sendline("n")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert "\x1b[" in raw  # on a terminal Terraform's plan is coloured (what broke the old regex)
    plan_lines = re.findall(r"^Plan: (.*)\.\s*$", shown, re.M)
    assert plan_lines, shown[-2000:]
    assert question_counts == plan_lines[-1]
    assert child.exitstatus == 130
    assert "orch-loopback-prod" not in functions(proj)


def test_promotion_follows_the_package(proj: Path) -> None:
    """Issue 7 acceptance 6: a package dev never passed is refused for prod (no Terraform run);
    the package dev passed (the next test) applies."""
    extra = proj / "functions" / "loopback" / "extra.txt"
    extra.write_text("a change dev has not seen\n")
    try:
        result = orch("apply", "prod", "--sandbox", "--yes", cwd=proj)
    finally:
        extra.unlink()
    assert_clean_failure(result, 3, "never passed the smoke checks of stage 'dev'")
    assert "terraform apply" not in result.stderr


def test_prod_is_a_separate_function_api_and_stage(proj: Path) -> None:
    result = orch("apply", "prod", "--sandbox", "--yes", cwd=proj)
    assert result.code == 0, result.output
    assert "passed the smoke checks of stage 'dev'" in result.stderr  # the promotion check let it through
    assert "smoke checks passed" in result.stderr
    dev, prod = outputs(proj, "dev"), outputs(proj, "prod")
    assert dev["rest_api_id"] != prod["rest_api_id"]
    assert dev["function_name"] != prod["function_name"]
    assert (dev["stage_name"], prod["stage_name"]) == ("dev", "prod")
    assert (proj / ".orch/work/sandbox/dev/terraform.tfstate").exists()
    assert (proj / ".orch/work/sandbox/prod/terraform.tfstate").exists()
    resp = requests.post(prod["invoke_url"], json={"a": 1}, timeout=30)
    assert resp.status_code == 200 and resp.json()["stage"] == "prod"


# --- issue 9 on prod (a custom domain with create_certificate in stages/prod.yaml) -------

DOMAIN, ZONE = "api.orch.example.com", "orch.example.com"


def test_prod_custom_domain_exists_with_its_certificate_mapping_and_records(proj: Path) -> None:
    """Acceptance 1: the certificate, the domain name, the base path mapping and the alias
    record exist in the emulator (the zone was created by orch, as in the sandbox it must)."""
    prod = outputs(proj, "prod")
    certificates = aws(proj, "acm").list_certificates()["CertificateSummaryList"]
    arn = next(c["CertificateArn"] for c in certificates if c["DomainName"] == DOMAIN)
    assert aws(proj, "acm").describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    apigw = aws(proj, "apigateway")
    domain = apigw.get_domain_name(domainName=DOMAIN)
    assert domain["regionalCertificateArn"] == arn and domain["securityPolicy"] == "TLS_1_2"
    mappings = apigw.get_base_path_mappings(domainName=DOMAIN)["items"]
    assert [(m["basePath"], m["restApiId"], m["stage"]) for m in mappings] == [("v1", prod["rest_api_id"], "prod")]
    route53 = aws(proj, "route53")
    zone = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"][0]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    alias = [r for r in records if r["Name"].rstrip(".") == DOMAIN and r["Type"] == "A"]
    assert alias and alias[0]["AliasTarget"]["DNSName"].rstrip(".") == domain["regionalDomainName"]
    assert any(r["Type"] == "CNAME" and r["Name"].endswith(f"{DOMAIN}.") for r in records)  # DNS validation
    assert prod["custom_domain_target"] == domain["regionalDomainName"]


def test_a_request_to_the_custom_domain_under_the_base_path_reaches_the_function(proj: Path) -> None:
    """Acceptance 1: `orch output` shows the custom URL; a request with Host: <domain> under
    the base path reaches prod's function, another base path is API Gateway's 403."""
    prod = outputs(proj, "prod")
    url = prod["custom_domain_url"]  # http://api.orch.example.com:<gateway port>/v1 in the sandbox
    assert url.startswith(f"http://{DOMAIN}:") and url.endswith("/v1")
    port = url.split(":")[2].split("/")[0]
    direct = f"http://127.0.0.1:{port}"
    response = requests.post(f"{direct}/v1", json={"a": 1}, headers={"Host": f"{DOMAIN}:{port}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "prod" and response.json()["event"]["body-json"] == {"a": 1}
    other = requests.post(f"{direct}/v2", json={}, headers={"Host": DOMAIN}, timeout=30)
    assert other.status_code == 403


def test_prod_smoke_checks_pass_on_both_urls(proj: Path) -> None:
    """Acceptance 1: the smoke checks (which passed in the apply above) run each declared request
    against the invoke URL and again through the custom domain (the gateway, Host: <domain>)."""
    result = orch("smoke", "prod", "--sandbox", "--json", cwd=proj)
    assert result.code == 0, result.output
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    for name in ("prototype request comes back", "error mapping gives 400"):
        assert checks[name]["passed"] and checks[f"{name} via {DOMAIN}/v1"]["passed"], checks
    assert not [name for name in checks if name.startswith("CORS")]  # CORS is off on prod


def test_cors_off_on_prod_means_no_access_control_headers(proj: Path) -> None:
    """Acceptance 3, CORS off: no preflight method, and no Access-Control headers anywhere."""
    url = outputs(proj, "prod")["invoke_url"]
    answers = [
        requests.options(url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}, timeout=30),
        requests.post(url, json={"a": 1}, headers={"Origin": ORIGIN}, timeout=30),
        requests.get(url + "/unknown", headers={"Origin": ORIGIN}, timeout=30),
    ]
    assert [a.status_code for a in answers] == [403, 200, 403]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers


# ---------------------------------------------------------------------------- orch ci (issue 8)


def ci_env(**extra: str) -> dict[str, str | None]:
    """A simulated Travis build for `orch ci` (tests/test_ci_decide.py has every kind)."""
    from test_ci_decide import travis

    kind = extra.pop("kind")
    cleared: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("TRAVIS", "GITHUB_", "SLACK_"))}
    return cleared | travis(kind) | extra


def deployed_state(proj: Path) -> dict:
    """What a plan must leave alone in the emulator: functions, versions, aliases, stages."""
    lam, apigw = aws(proj, "lambda"), aws(proj, "apigateway")
    names = sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])
    return {
        "versions": {n: sorted(v["Version"] for v in lam.list_versions_by_function(FunctionName=n)["Versions"])
                     for n in names},
        "aliases": {n: [(a["Name"], a["FunctionVersion"]) for a in lam.list_aliases(FunctionName=n)["Aliases"]]
                    for n in names},
        "stages": {a["id"]: [(s["stageName"], s.get("deploymentId"), s.get("variables"))
                             for s in apigw.get_stages(restApiId=a["id"])["item"]]
                   for a in apigw.get_rest_apis()["items"]},
    }


def test_ci_pull_request_plans_both_stages_and_keeps_one_updated_comment(proj: Path) -> None:
    """Acceptance 1 (PR: plan only, emulator unchanged) and 2 (a handler and a stage variable
    change: the summary lists the changed resources and the package file; one comment, updated)."""
    import receivers

    handler = proj / "functions" / "loopback" / "handler.py"
    original = handler.read_text()
    policy = (proj / "stages" / "ci.yaml").read_text()
    before = deployed_state(proj)
    handler.write_text(original + "\n# changed in a pull request\n")
    _set_dev(proj, greeting="from-a-pull-request")
    try:
        with receivers.github() as gh:
            env = ci_env(kind="pr", GITHUB_TOKEN="ghp_integration", GITHUB_API_URL=gh.url)
            result = orch("ci", "--sandbox", cwd=proj, env=env)
            assert result.code == 0, result.output
            summary = (proj / ".orch" / "ci" / "plan-summary.md").read_text()
            dev, prod = summary.split("#### dev:")[1].split("#### prod:")
            assert "`~ module.stack.module.lambda.aws_lambda_function.this`" in dev
            assert "`~ module.stack.module.stage.aws_api_gateway_stage.this`" in dev
            assert "`~ module.stack.module.lambda.aws_lambda_function.this`" in prod
            assert "aws_api_gateway_stage" not in prod  # prod's variables did not change
            for section in (dev, prod):
                assert "| `handler.py` | changed |" in section and "+2 −0 lines" in section
            comments = gh.server.RequestHandlerClass.comments
            assert len(comments) == 1 and comments[0]["body"] == summary

            # another push to the pull request: one stage this time, the same comment updated
            (proj / "stages" / "ci.yaml").write_text("pull_requests: {plan: [dev]}\n")
            result = orch("ci", "--sandbox", cwd=proj, env=env)
            assert result.code == 0, result.output
            assert "pull-request comment updated" in result.stderr
            assert len(comments) == 1 and "#### prod" not in comments[0]["body"]
            assert [r[0] for r in gh.requests if r[0] != "GET"] == ["POST", "PATCH"]
    finally:
        handler.write_text(original)
        _set_dev(proj)
        (proj / "stages" / "ci.yaml").write_text(policy)
    assert deployed_state(proj) == before  # plans only: nothing was applied


def test_ci_push_to_main_applies_dev_and_tells_slack(proj: Path, tmp_path: Path) -> None:
    """Acceptance 1 (push to main: dev applied and smoke-checked in the sandbox) and 4 (Slack's
    fields), with the commit check against a local bare repository standing in for the remote."""
    import receivers
    from test_ci_run import fields, git

    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(proj, "init", "-q", "-b", "main")
    _set_dev(proj, greeting="from-main")
    git(proj, "add", "stages", "functions")
    git(proj, "commit", "-q", "-m", "change dev's greeting")
    git(proj, "remote", "add", "origin", str(bare))
    git(proj, "push", "-q", "origin", "main")
    head = git(proj, "rev-parse", "HEAD")
    with receivers.slack(200) as hook:
        env = ci_env(kind="main", TRAVIS_COMMIT=head, SLACK_WEBHOOK_URL=hook.url + "/services/T/B/integration")
        result = orch("ci", "--sandbox", cwd=proj, env=env)
    assert result.code == 0, result.output
    assert f"{head[:12]} is still main on origin" in result.stderr
    api = apis(proj)["orch-loopback-dev"]
    assert aws(proj, "apigateway").get_stage(restApiId=api, stageName="dev")["variables"]["greeting"] == "from-main"
    assert "orch-loopback-prod" in functions(proj)
    (_, path, _, payload), = hook.requests
    got = fields(payload)
    assert path == "/services/T/B/integration" and got["Outcome"] == "deployed" and got["Commit"] == head[:12]
    assert got["Stage"] == "dev (sandbox)" and got["Invoke URL"] == outputs(proj, "dev")["invoke_url"]
    assert got["Trigger"].startswith("push to main")
    # the apply ran the stage's smoke checks: in the apply report, the payload and exit code 0
    assert got["Smoke"] == "passed" and "smoke checks passed" in json.dumps(payload)
    assert re.search(r"orch: stage dev \(sandbox\): deployed: smoke checks passed: (\d+)/\1", result.stdout)


# --- the edit loop (issue 11): hot reload, orch sync, and an apply that converges after them ---

HOT_EDIT = ('answer: dict[str, Any] = {"stage": stage,', 'answer: dict[str, Any] = {"hot": "reloaded", "stage": stage,')


def test_a_saved_handler_answers_within_a_second_and_plan_shows_it_pending(proj: Path) -> None:
    """Acceptance 3: the sandbox's gateway runs the stage's source folder (hot reload), so a
    saved edit answers at once, without Terraform; Terraform still has the old code."""
    url = outputs(proj, "dev")["invoke_url"]
    assert "hot" not in requests.post(url, json={"a": 1}, timeout=30).json()
    handler = proj / "functions" / "loopback" / "handler.py"
    assert HOT_EDIT[0] in handler.read_text()
    handler.write_text(handler.read_text().replace(*HOT_EDIT))
    saved = time.monotonic()
    while requests.post(url, json={"a": 1}, timeout=30).json().get("hot") != "reloaded":
        assert time.monotonic() - saved < 1.0, "the saved edit was not served within 1 s"
    served = time.monotonic() - saved
    assert served < 1.0, f"the saved edit was served after {served:.2f} s"
    # Every gateway process sees the save on its own and only the main one logs it, so the
    # edit can be served by a helper a moment before the line is written.
    log_file = proj / ".orch" / "sandbox" / "sandbox.log"
    wait_for(lambda: "functions/loopback/handler.py saved" in log_file.read_text(), "the save logged", 10)
    served_from = "hot reload: orch-loopback-dev (stage 'dev') runs its source folder functions/loopback"
    assert served_from in log_file.read_text()

    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 2, result.output
    assert "source_code_hash" in result.stdout


def test_sync_releases_the_code_without_terraform_and_plan_shows_it_pending(proj: Path) -> None:
    """Acceptance 4 (the release; bench/sync.py times it): the function's code, a new version
    and the alias move; Terraform's state is untouched, so the next plan shows the release."""
    refused = orch("sync", "prod", "--sandbox", cwd=proj)
    assert_clean_failure(refused, 3, "stage 'prod' is protected", "orch apply prod --sandbox")
    state = proj / ".orch" / "work" / "sandbox" / "dev" / "terraform.tfstate"
    state_before = state.read_bytes()
    version_before = aws(proj, "lambda").get_alias(FunctionName="orch-loopback-dev", Name="dev")["FunctionVersion"]

    result = orch("sync", "dev", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    assert "terraform" not in result.output.replace("without Terraform", "").lower()
    assert state.read_bytes() == state_before
    alias = aws(proj, "lambda").get_alias(FunctionName="orch-loopback-dev", Name="dev")
    assert int(alias["FunctionVersion"]) > int(version_before)
    assert f"released version {alias['FunctionVersion']} of orch-loopback-dev (was {version_before})" in result.stderr
    live = aws(proj, "lambda").get_function(FunctionName="orch-loopback-dev", Qualifier="dev")["Configuration"]
    sha_hex = orch("package", "dev", cwd=proj).stdout.split("sha256:")[1].strip()
    assert base64.b64decode(live["CodeSha256"]).hex() == sha_hex  # the alias serves exactly the package
    again = orch("sync", "dev", "--sandbox", cwd=proj)
    assert again.code == 0 and "nothing to release" in again.stderr

    # --watch: a save is released; Ctrl-C ends the watch cleanly
    watch = subprocess.Popen([sys.executable, "-m", "orch.cli", "sync", "dev", "--sandbox", "--watch"], cwd=proj,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = StderrLines(watch)
    try:
        lines.until("watching ")
        handler = proj / "functions" / "loopback" / "handler.py"
        handler.write_text(handler.read_text() + "# saved while watching\n")
        released = lines.until("stage 'dev': released version ")
        lines.until("watching ")
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
    rest = lines.rest()
    assert watch.returncode == 0 and "stopped watching" in rest and "Traceback" not in rest, rest
    newest = aws(proj, "lambda").get_alias(FunctionName="orch-loopback-dev", Name="dev")["FunctionVersion"]
    assert f"released version {newest} " in released

    # a release that fails the stage's smoke checks: the alias goes back, exit 6, still no Terraform
    handler = proj / "functions" / "loopback" / "handler.py"
    good = handler.read_text()
    marker = "def handler(event: Any, context: Any) -> dict[str, Any]:\n"
    assert marker in good
    handler.write_text(good.replace(marker, marker + '    raise RuntimeError("a bad sync")\n'))
    try:
        bad = orch("sync", "dev", "--sandbox", cwd=proj)
    finally:
        handler.write_text(good)
    assert_clean_failure(bad, 6, "failed its smoke checks", f"moved back to version {newest}", "a bad sync")
    assert aws(proj, "lambda").get_alias(FunctionName="orch-loopback-dev", Name="dev")["FunctionVersion"] == newest
    assert state.read_bytes() == state_before

    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 2, result.output
    assert "source_code_hash" in result.stdout


class StderrLines:
    """A process's stderr lines, read by a thread of their own, waited for with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        import queue
        import threading

        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, needle: str, timeout: float = 120) -> str:
        """The first line (from here on) holding `needle`; fails after `timeout` seconds."""
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            assert line is not None, f"no {needle!r}:\n" + "".join(self.seen)
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float = 60) -> str:
        """Every line until the stream ends."""
        while (line := self.lines.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def test_apply_after_sync_converges_with_a_live_display_on_a_terminal(proj: Path) -> None:
    """The pending release applied by Terraform (no surprise: it changes the function and its
    alias, and the next plan is empty), watched on a pseudo-terminal: the live status line
    while Terraform works, Terraform's own lines, the closing summary with the time."""
    import pexpect

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(sys.executable, ["-m", "orch.cli", "apply", "dev", "--sandbox"], cwd=str(proj),
                          env=env, encoding="utf-8", timeout=600, dimensions=(50, 220))
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close()
    raw = child.before
    text = TERMINAL_CODES.sub("", raw)  # every redraw of the live line is kept (screen_text keeps the last)
    assert child.exitstatus == 0, text[-3000:]
    live = re.findall(r"\[(\d+)/(\d+)\] terraform apply \(plan and apply in one run\)  (\d+) s\b", text)
    assert live, "no live status line while Terraform applied"
    assert "Apply complete! Resources: 0 added" in text  # Terraform's own lines still show
    summary = re.search(r"orch: stage 'dev' deployed in [\d.]+ s \(0 to add, (\d+) to change, 0 to destroy\)", text)
    assert summary and int(summary.group(1)) >= 1, text[-2000:]
    assert "invoke URL (served by orch's local gateway)" in text
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")  # the cursor is back

    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 0, result.output  # converged
    url = outputs(proj, "dev")["invoke_url"]
    assert requests.post(url, json={"a": 1}, timeout=30).json()["hot"] == "reloaded"
    handler = proj / "functions" / "loopback" / "handler.py"
    handler.write_text((REPO / "functions" / "loopback" / "handler.py").read_text())  # as the repo has it


PROTOTYPE = {"params": {"querystring": {"deptno-param": "x"}}}


def test_a_bad_release_is_rolled_back_through_terraform(proj: Path) -> None:
    """Issue 7 acceptance 2: a handler that raises fails the checks; orch rolls the alias back
    through Terraform (one apply), checks again, exits 6; the URL answers as before, `orch
    smoke` passes, and `orch plan` shows the failed release as pending and says so."""
    handler = proj / "functions" / "loopback" / "handler.py"
    good = handler.read_text()
    before = outputs(proj, "dev")
    marker = "def handler(event: Any, context: Any) -> dict[str, Any]:\n"
    assert marker in good
    handler.write_text(good.replace(marker, marker + '    raise RuntimeError("a bad release")\n'))
    try:
        result = orch("apply", "dev", "--sandbox", "--yes", cwd=proj)
        assert_clean_failure(result, 6, "failed its smoke checks", "whose checks pass again",
                             f"rolled back to version {before['function_version']}")
        assert "a bad release" in result.stderr  # the failing answer is shown
        after = outputs(proj, "dev")
        assert after["function_version"] == before["function_version"]  # the alias, through Terraform
        assert int(after["published_version"]) > int(before["function_version"])  # the bad one stays published
        assert after["deployment_id"] == before["deployment_id"]  # the API did not change: not redeployed
        url = after["invoke_url"]
        resp = requests.post(f"{url}?deptno-param=x", headers={"Authorization": "y"}, data='{"a":1}', timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["event"]["params"]["querystring"] == {"deptno-param": "x"}
        assert resp.json()["context"]["function_version"] == before["function_version"]
        smoke = orch("smoke", "dev", "--sandbox", cwd=proj)
        assert smoke.code == 0, smoke.output
        assert "rolled back" in smoke.stderr
        plan = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
        assert plan.code == 2, plan.output
        assert "stage 'dev' is rolled back to version" in plan.stderr
        assert re.search(r'function_version\s+= "\d+" -> "\d+"', plan.stdout), plan.stdout[-3000:]
    finally:
        handler.write_text(good)
    records = sorted((proj / ".orch/work/sandbox/dev/releases").glob("*.json"))
    kinds = [(json.loads(r.read_text())["kind"], json.loads(r.read_text())["passed"]) for r in records]
    assert kinds[-2:] == [("apply", False), ("rollback", True)]
    assert not (proj / ".orch/work/sandbox/dev/orch-rollback.tfvars.json").exists()


def _set_dev(proj: Path, *, greeting: str = "hello-from-dev", memory: int | None = None,
             api: str = "") -> None:
    """dev.yaml as in the repo with another greeting (a stage variable), memory size or API."""
    text = dev_yaml((REPO / "stages" / "dev.yaml").read_text())
    assert "greeting: hello-from-dev" in text and text.count("function:\n") == 1
    text = text.replace("hello-from-dev", greeting)
    if memory is not None:
        text = text.replace("function:\n", f"function:\n  memory_size: {memory}\n")
    if api:  # under dev's own `api:` (its CORS settings), not a second one
        assert api.startswith("api:\n") and text.count("api:\n") == 1
        text = text.replace("api:\n", api, 1)
    (proj / "stages" / "dev.yaml").write_text(text)


def test_changes_are_planned_applied_and_a_stale_plan_refused(proj: Path, tmp_path: Path) -> None:
    """A stage variable, the memory size and a request template changed at once: one plan shows
    each (one Terraform run, not three: the deploy tier's time is mostly Terraform's), saved
    to a file that the apply after it makes stale."""
    before = outputs(proj, "dev")
    stale = tmp_path / "changes.tfplan"
    (proj / "custom.vtl").write_text('{"body-json": $input.json(\'$\'), "context": {"stage": "$context.stage"}}')
    custom_api = (
        "api:\n  routes:\n    - method: POST\n      path: /\n"
        "      integration: {request_template: {file: custom.vtl}}\n"
    )
    _set_dev(proj, greeting="changed", memory=512, api=custom_api)
    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", "--out", str(stale), cwd=proj)
    assert result.code == 2, result.output
    assert stale.is_file()
    for attribute in ("memory_size", "request_templates", '"changed"'):
        assert attribute in result.stdout, attribute
    # Acceptance 1 without a terminal: orch's summary equals Terraform's own Plan: line
    terraform_says = re.findall(r"^Plan: (.*)\.$", result.stdout, re.M)
    assert terraform_says and f"plan for stage 'dev': {terraform_says[-1]}" in result.stderr

    # the custom template drops the request's params, which the declared checks look for
    result = orch("apply", "dev", "--sandbox", "--no-smoke", cwd=proj)
    assert result.code == 0, result.output
    after = outputs(proj, "dev")
    assert after["deployment_id"] != before["deployment_id"], "a template change must redeploy the API"
    integration = aws(proj, "apigateway").get_integration(
        restApiId=after["rest_api_id"],
        resourceId=aws(proj, "apigateway").get_resources(restApiId=after["rest_api_id"])["items"][0]["id"],
        httpMethod="POST",
    )
    assert '"context": {"stage": "$context.stage"}' in integration["requestTemplates"]["application/json"]
    resp = requests.post(after["invoke_url"], json={"a": 1}, timeout=30)
    assert resp.status_code == 200 and resp.json()["event"] == {"body-json": {"a": 1}, "context": {"stage": "dev"}}

    result = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 0, result.output

    result = orch("apply", "dev", "--sandbox", "--plan", str(stale), cwd=proj)
    assert_clean_failure(result, 4, "stale")


def test_rollback_by_hand_restores_the_earlier_api(proj: Path) -> None:
    """`orch rollback`: back to the last release that passed (the rolled-back one above), whose
    API differs: the stage gets a new deployment of that API and its alias the earlier version."""
    before = outputs(proj, "dev")
    result = orch("rollback", "dev", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    assert "rolled back to version" in result.stderr and "smoke checks passed" in result.stderr
    after = outputs(proj, "dev")
    assert after["deployment_id"] != before["deployment_id"]  # the earlier API, deployed again
    assert after["function_version"] != before["function_version"]
    resp = requests.post(f"{after['invoke_url']}?deptno-param=x", json={"a": 1}, timeout=30)
    assert resp.status_code == 200 and resp.json()["event"]["params"]["querystring"] == {"deptno-param": "x"}
    plan = orch("plan", "dev", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert plan.code == 2 and "is rolled back" in plan.stderr, plan.output


def test_serve_runs_a_foreground_gateway_for_a_stage(proj: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch.cli", "serve", "prod", "--sandbox", "--port", str(port)],
        cwd=proj, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        # As a script's `cmd &` or nohup starts it: SIGINT ignored. Ctrl-C must still stop it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        lines = []
        for line in proc.stderr:  # blocks until the gateway says where it serves
            lines.append(line)
            if "serving stage 'prod' at " in line:
                break
        url = lines[-1].split(" at ")[1].split(" ")[0]
        assert url.startswith(f"http://127.0.0.1:{port}/restapis/")
        # the route table comes first
        assert any(re.search(r"orch:   POST +/ +AWS lambda orch-loopback-prod:prod$", line) for line in lines), lines
        resp = requests.post(url, json={"a": 1}, timeout=30)
        assert resp.status_code == 200 and resp.json()["stage"] == "prod"
        assert requests.get(url + "/nope", timeout=30).status_code == 403
        for line in proc.stderr:  # the 403 is logged with the stage's routes
            if "403 for GET /nope" in line:
                assert line.rstrip().endswith("its routes: POST /"), line
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0


def test_destroy_dev_leaves_prod(proj: Path) -> None:
    prod_api = outputs(proj, "prod")["rest_api_id"]
    old_url = outputs(proj, "dev")["invoke_url"]
    assert requests.post(old_url, json={}, timeout=30).status_code == 200  # the gateway has it cached
    generation = (proj / ".orch" / "sandbox" / "generation").read_text()
    result = orch("destroy", "dev", "--sandbox", "--yes", cwd=proj)
    assert result.code == 0, result.output
    assert (proj / ".orch" / "sandbox" / "generation").read_text() != generation  # the gateway was told
    assert "orch-loopback-dev" not in functions(proj)
    assert "orch-loopback-dev" not in apis(proj)
    assert "orch-loopback-prod" in functions(proj)
    assert apis(proj)["orch-loopback-prod"] == prod_api
    # the first gateway request after destroy (the checks above talk to the emulator only)
    first = requests.post(old_url, json={}, timeout=30)
    assert first.status_code == 403, first.text


def test_restarted_sandbox_starts_the_stage_clean(proj: Path) -> None:
    assert orch("sandbox", "stop", cwd=proj).code == 0
    status = orch("sandbox", "status", "--json", cwd=proj)
    assert json.loads(status.stdout)["running"] is False
    # the sandbox never lies: no unreachable URL with exit 0
    gone = orch("output", "prod", "--sandbox", cwd=proj)
    assert_clean_failure(gone, 8, "stage 'prod' is not deployed in the sandbox", "sandbox is not running",
                         "Apply it first: `orch apply prod --sandbox`")
    assert "execute-api" not in gone.stdout
    result = orch("plan", "prod", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 2, result.output
    assert "sandbox was restarted" in result.stderr
    status = json.loads(orch("sandbox", "status", "--json", cwd=proj).stdout)
    assert status["running"] is True and status["endpoint"].startswith("http://127.0.0.1:")


def test_s3_backend_with_lockfile_keeps_state_in_the_bucket(proj: Path) -> None:
    (proj / "stages" / "remote.yaml").write_text("backend: {type: s3, bucket: orch-state}\n")
    result = orch("apply", "remote", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    state = aws(proj, "s3").get_object(Bucket="orch-state", Key="orch/orch/remote/terraform.tfstate")
    assert "orch-loopback-remote" in state["Body"].read().decode()
    assert not (proj / ".orch/work/sandbox/remote/terraform.tfstate").exists()
    keys = [o["Key"] for o in aws(proj, "s3").list_objects_v2(Bucket="orch-state").get("Contents", [])]
    assert not [k for k in keys if k.endswith(".tflock")], "the lock file must be released after apply"
    assert outputs(proj, "remote")["function_name"] == "orch-loopback-remote"
    result = orch("plan", "remote", "--sandbox", "--detailed-exitcode", cwd=proj)
    assert result.code == 0, result.output


def test_package_over_50_mb_deploys_through_the_sandbox_s3(proj: Path) -> None:
    big = proj / "functions" / "big"
    shutil.copytree(proj / "functions" / "loopback", big)
    (big / "blob.bin").write_bytes(os.urandom(51 * 1024 * 1024))  # incompressible
    (proj / "stages" / "big.yaml").write_text(
        "function: {source: functions/big}\nartifacts: {bucket: orch-artifacts}\n"
    )
    first = orch("package", "big", cwd=proj)
    second = orch("package", "big", cwd=proj)
    assert first.code == 0 and first.stdout == second.stdout  # same sha256
    result = orch("apply", "big", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    assert "s3://orch-artifacts" in result.stderr
    sha = first.stdout.split("sha256:")[1].strip()
    head = aws(proj, "s3").head_object(Bucket="orch-artifacts", Key=f"orch/packages/{sha}.zip")
    assert head["ContentLength"] > 50 * 1024 * 1024
    config = aws(proj, "lambda").get_function(FunctionName="orch-loopback-big")["Configuration"]
    assert config["CodeSize"] == head["ContentLength"]


def test_node_example_deploys_and_answers_through_the_gateway(proj: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    (proj / "stages" / "node.yaml").write_text(
        "function:\n  name: loopback-node\n  source: functions/loopback-node\n"
        "  handler: index.handler\n  runtime: nodejs20.x\n"
        "stage:\n  variables: {env: node}\n"
        "api:\n  routes:\n    - {method: POST, path: /}\n    - {method: GET, path: /extra}\n"
        # these routes map no errors to statuses, so the defaults' check of that does not apply
        "smoke:\n  checks:\n    error mapping gives 400: {enabled: false}\n"
    )
    result = orch("apply", "node", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    url = result.stdout.strip().splitlines()[-1]
    resp = requests.post(f"{url}?deptno-param=7", headers={"Authorization": "n"}, data='{"a":1}', timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["event"]["body-json"] == {"a": 1}
    assert body["event"]["params"]["querystring"] == {"deptno-param": "7"}
    assert body["event"]["context"]["stage"] == "node"
    assert "orch-loopback-node-node" in json.dumps(body["context"])
    assert requests.get(f"{url}/extra", timeout=30).status_code == 200


def test_removing_a_route_redeploys_without_it(proj: Path, tmp_path: Path) -> None:
    before = outputs(proj, "node")
    with_extra = (proj / "stages" / "node.yaml").read_text()
    text = with_extra.replace("    - {method: GET, path: /extra}\n", "")
    (proj / "stages" / "node.yaml").write_text(text)
    result = orch("apply", "node", "--sandbox", cwd=proj)
    assert result.code == 0, result.output
    assert REDEPLOY_RAN in result.stderr and f"skipped: {REDEPLOY}" not in result.stderr
    after = outputs(proj, "node")
    assert after["deployment_id"] != before["deployment_id"]
    assert requests.get(f"{after['invoke_url']}/extra", timeout=30).status_code == 403
    assert requests.post(after["invoke_url"], json={}, timeout=30).status_code == 200
    assert orch("plan", "node", "--sandbox", "--detailed-exitcode", cwd=proj).code == 0
    # `orch apply --plan FILE` finds a removed route the same way, from `terraform show -json` of
    # the saved plan: tests/test_planner.py (saved Terraform JSON), without three more Terraform runs here.


# ---------------------------------------------------------------------------- issue 12: a killed apply, a secret

VAULT_SECRET = "vault-Pa55-5ecret-7c1b9e"
VAULT_ENV = {"ORCH_TEST_DB_PASSWORD": VAULT_SECRET}


def kill_tree_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILL orch and every process under it (Terraform, its provider) once `ready()` holds:
    a machine or CI runner gone, the hardest interruption (SIGTERM and a kill of orch alone,
    which Terraform survives, are scenarios of bench/faults.py)."""
    import psutil

    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the apply ended before the kill point"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.2)  # polling the emulator for the condition, bounded by the deadline
    tree = [psutil.Process(proc.pid), *(p for p in psutil.Process(proc.pid).children(recursive=True)
                                         if "orch.sandboxd" not in " ".join(p.cmdline()))]  # the sandbox stays
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)
    psutil.wait_procs(tree, timeout=30)


def test_a_kill_during_apply_is_converged_by_the_next_apply(proj: Path) -> None:
    """Acceptance 2 of issue 12: kill -9 of orch and its Terraform once the function exists in
    AWS (before the API is complete); the next `orch apply --yes` adopts what the run left
    outside the state and exits 0, then `orch plan --detailed-exitcode` exits 0."""
    leaky = proj / "functions" / "leaky"
    shutil.copytree(proj / "functions" / "loopback", leaky)
    (leaky / "handler.py").write_text((leaky / "handler.py").read_text().replace(
        '    summary = _context_summary(context)\n',
        '    summary = _context_summary(context)\n    print("connecting with", os.environ.get("DB_PASSWORD"))\n'))
    (proj / "stages" / "vault.yaml").write_text(
        "function:\n  source: functions/leaky\n  secrets:\n    DB_PASSWORD: {env: ORCH_TEST_DB_PASSWORD}\n")
    assert orch("sandbox", "start", cwd=proj).code == 0  # running already in the whole story
    env = {**os.environ, "NO_COLOR": "1", **VAULT_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "orch.cli", "apply", "vault", "--sandbox", "--yes"], cwd=proj,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def function_exists() -> bool:
            if not (proj / ".orch" / "sandbox" / "state.json").is_file():
                return False  # the sandbox is still starting
            return any("vault" in name for name in functions(proj))

        kill_tree_when(proc, function_exists)
        killed_output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert VAULT_SECRET not in killed_output
    result = orch("apply", "vault", "--sandbox", "--yes", cwd=proj, env=VAULT_ENV)
    assert result.code == 0, result.output
    assert "adopt" in result.output, result.output  # it said what it took back into the state
    assert VAULT_SECRET not in result.output
    result = orch("plan", "vault", "--sandbox", "--detailed-exitcode", cwd=proj, env=VAULT_ENV)
    assert result.code == 0, result.output


def test_a_secret_appears_in_no_output(proj: Path, tmp_path: Path) -> None:
    """Acceptance 3 of issue 12: the secret of stage vault (deployed above, the handler prints
    it) appears in no output of plan, apply, render, output, smoke, logs, invoke or errors,
    nor in any file orch wrote except Terraform's state (which holds it, as README says)."""
    outputs_seen: list[str] = []

    def run(*args: str, env: dict | None = None, code: int | None = 0) -> None:
        result = orch(*args, cwd=proj, env=VAULT_ENV if env is None else env)
        outputs_seen.append(result.output)
        if code is not None:
            assert result.code == code, result.output

    run("plan", "vault", "--sandbox")
    run("apply", "vault", "--sandbox", "--yes")
    run("render", "vault", "--sandbox")
    run("output", "vault", "--sandbox", "--json")
    url = outputs(proj, "vault")["invoke_url"]
    assert requests.post(url, json={}, timeout=30).status_code == 200  # the handler prints the secret
    junit = tmp_path / "smoke.xml"
    run("smoke", "vault", "--sandbox", "--json", "--junit", str(junit))
    run("invoke", "vault", "--sandbox", "--log", "--data", "{}")
    run("logs", "vault", "--sandbox", "--since", "1h")
    assert any("connecting with ***" in text for text in outputs_seen), "the handler's line must show, masked"
    with_literal = proj / "stages" / "vault.yaml"
    good = with_literal.read_text()
    try:  # errors: a literal value where a source belongs, and a missing source
        with_literal.write_text(good.replace("{env: ORCH_TEST_DB_PASSWORD}", VAULT_SECRET))
        run("plan", "vault", "--sandbox", code=3)
    finally:
        with_literal.write_text(good)
    run("plan", "vault", "--sandbox", env={"ORCH_TEST_DB_PASSWORD": None}, code=3)
    run("plan", "vault", "--sandbox", env={**VAULT_ENV, "TF_LOG": "DEBUG", "TF_LOG_PATH": str(tmp_path / "tf.log")})
    assert outputs_seen[-1].count("TF_LOG=DEBUG is set") == 1, outputs_seen[-1]  # warned, once
    for text in outputs_seen:
        assert VAULT_SECRET not in text, text
    assert VAULT_SECRET not in junit.read_text()
    leaks = []
    for path in (proj / ".orch").rglob("*"):
        if not path.is_file() or ".terraform" in path.parts or path.name.startswith("terraform.tfstate"):
            continue
        if VAULT_SECRET.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(proj)))
    assert not leaks, leaks
