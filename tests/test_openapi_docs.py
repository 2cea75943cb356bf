"""`orch openapi` and `orch docs` (issue 9): the stage's OpenAPI 3.0 document, checked with
openapi-spec-validator, and the Swagger UI page, opened in headless Chromium with the
network cut off. The comparison with a deployed API is in tests/integration/."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator

from helpers import assert_clean_failure, cli
from orch import docs, openapi
from orch.cli import main
from orch.config import load_stage

EVERYTHING = """
api:
  cors: {allow_origin: 'https://app.example.com', allow_credentials: true, expose_headers: [X-Id], max_age: 60}
  routes:
    - method: POST
      path: /
      description: "Create an order.\\nThe body is the order."
      parameters: {headers: {Authorization: true}, querystrings: {dry-run: false}}
      errors: [{status: 400, pattern: '.*Bad.*'}]
    - {method: GET, path: '/orders/{id}', parameters: {paths: {id: true}}}
    - {method: ANY, path: '/{proxy+}', integration: {type: AWS_PROXY}, cors: false}
domain: {name: api.example.com, base_path: v1, create_certificate: true, hosted_zone: example.com}
"""


def stage_with(project: Path, text: str, name: str = "full"):
    (project / "stages" / f"{name}.yaml").write_text(text)
    return load_stage(project, name)


def test_shipped_stages_are_valid_openapi_3_0_with_and_without_extensions(project: Path) -> None:
    for name in ("dev", "prod"):
        for extensions in (False, True):
            data = openapi.as_dict(openapi.document(load_stage(project, name), extensions=extensions))
            assert list(OpenAPIV30SpecValidator(data).iter_errors()) == []
            assert data["openapi"].startswith("3.0.")
    dev = openapi.as_dict(openapi.document(load_stage(project, "dev")))
    assert openapi.routes(dev) == {("POST", "/"), ("OPTIONS", "/")}  # dev has CORS: its preflight is a route
    prod = openapi.as_dict(openapi.document(load_stage(project, "prod")))
    assert prod["servers"][0]["url"] == "https://api.orch.example.com/v1"  # the custom domain first


def test_every_setting_reaches_the_document(project: Path) -> None:
    data = openapi.as_dict(openapi.document(stage_with(project, EVERYTHING), extensions=True))
    assert list(OpenAPIV30SpecValidator(data).iter_errors()) == []
    post = data["paths"]["/"]["post"]
    assert post["summary"] == "Create an order." and "The body is the order." in post["description"]
    params = {(p["in"], p["name"]): p["required"] for p in post["parameters"]}
    assert params == {("header", "Authorization"): True, ("query", "dry-run"): False}
    assert set(post["requestBody"]["content"]) == {"application/json"}  # the integration's content_types
    assert set(post["responses"]) == {"200", "400"}
    assert post["responses"]["400"]["headers"]["Access-Control-Allow-Origin"]["description"].endswith(
        "https://app.example.com")
    integration = post["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws" and integration["uri"].endswith(
        ":function:orch-loopback-full:full/invocations")
    assert integration["responses"][".*Bad.*"]["statusCode"] == "400"
    assert integration["responses"]["default"]["responseParameters"][
        "method.response.header.Access-Control-Allow-Credentials"] == "'true'"
    get = data["paths"]["/orders/{id}"]["get"]
    assert {(p["in"], p["name"], p["required"]) for p in get["parameters"]} == {("path", "id", True)}
    assert "requestBody" not in get and get["x-amazon-apigateway-request-validator"] == "required-parameters"
    preflight = data["paths"]["/orders/{id}"]["options"]
    headers = preflight["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
    assert headers["method.response.header.Access-Control-Allow-Methods"] == "'GET,OPTIONS'"
    assert headers["method.response.header.Access-Control-Max-Age"] == "'60'"
    proxy = data["paths"]["/{proxy+}"]
    assert set(proxy) == {"x-amazon-apigateway-any-method"}  # no CORS there: no preflight
    assert proxy["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    gateway = data["x-amazon-apigateway-gateway-responses"]["DEFAULT_4XX"]["responseParameters"]
    assert gateway["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://app.example.com'"
    plain = openapi.as_dict(openapi.document(stage_with(project, EVERYTHING)))
    assert not [k for k in json.dumps(plain).split('"') if k.startswith("x-amazon")]
    assert {m for m, p in openapi.routes(plain) if p == "/{proxy+}"} == {
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}  # ANY as every method a renderer shows


def test_the_validator_catches_a_broken_document() -> None:
    broken = {"openapi": "3.0.3", "info": {"title": "x"}, "paths": {}}  # info.version missing
    with pytest.raises(Exception, match="not valid OpenAPI 3.0"):
        openapi.validate(broken)


def test_cli_prints_json_or_yaml_and_writes_a_file(project: Path, capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(project)
    assert main(["openapi", "dev"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["openapi", "dev", "--format", "yaml", "--extensions"]) == 0
    as_yaml = yaml.safe_load(capsys.readouterr().out)
    assert openapi.routes(as_json) == openapi.routes(as_yaml) == {("POST", "/"), ("OPTIONS", "/")}
    assert "x-amazon-apigateway-integration" in as_yaml["paths"]["/"]["post"]
    assert main(["openapi", "prod", "--out", str(tmp_path / "prod.json")]) == 0
    assert json.loads((tmp_path / "prod.json").read_text())["info"]["title"] == "orch-loopback-prod"
    assert main(["openapi", "dev", "--format", "xml"]) == 64


def test_vendored_swagger_ui_matches_its_record() -> None:
    record = json.loads((docs.UI_DIR / "VENDORED.json").read_text())
    assert record["package"] == "swagger-ui-dist" and record["license"] == "Apache-2.0"
    for name, digest in record["sha256"].items():
        assert hashlib.sha256((docs.UI_DIR / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (docs.UI_DIR / "LICENSE").read_text()


def test_the_page_embeds_the_document_and_loads_nothing_remote(project: Path) -> None:
    data = openapi.as_dict(openapi.document(stage_with(project, EVERYTHING)))
    data["info"]["description"] = "ends a script? </script><script>alert(1)</script>"
    page = docs.page(data)
    embedded = re.search(r'<script id="openapi-document" type="application/json">(.*?)</script>', page, re.S)
    assert embedded and json.loads(embedded.group(1)) == data  # "</" escaped, the same JSON
    assert "validatorUrl: null" in page
    assert not re.search(r'(src|href)="https?:', page)  # scripts and styles are inline data
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in csp
    assert "connect-src https://*.execute-api.ap-northeast-2.amazonaws.com https://api.example.com" in csp


def test_docs_publish_without_a_bucket_is_a_clean_failure_that_writes_nothing(project: Path) -> None:
    result = cli("docs", "dev", "--publish", cwd=project)
    assert_clean_failure(result, 3, "sets no docs bucket", "docs: {bucket: my-docs-bucket}")
    assert not (project / ".orch" / "docs").exists()  # refused before anything was written
    written = cli("docs", "dev", cwd=project)
    assert written.code == 0, written.output
    path = Path(written.stdout.strip())
    assert path == project / ".orch" / "docs" / "dev" / "index.html" and path.stat().st_mode & 0o044


# --- the page in a browser -------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    # no network at all: every host name fails to resolve and any proxy use goes nowhere
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=10000", "--window-size=1280,2000",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (CI=true: .ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed: apt-get install chromium (Debian's package)")
    return found


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.browser
def test_docs_page_opens_offline_in_headless_chromium_and_shows_every_route(
    project: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    binary = chromium()
    stage = stage_with(project, EVERYTHING, "dev")  # every kind of route, the preflights, ANY
    monkeypatch.chdir(project)
    assert main(["docs", "dev"]) == 0
    page = Path(capsys.readouterr().out.strip())
    expected = openapi.routes(openapi.as_dict(openapi.document(stage)))
    shot = tmp_path / "docs.png"
    # one page load: Chromium's headless mode dumps the DOM and takes the screenshot of it
    # once the virtual time budget has run (no wall-clock waiting)
    result = run_chromium(binary, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    shown = set(re.findall(r'opblock-summary-method">([A-Z]+)</span>.{0,400}?data-path="([^"]*)"', result.stdout, re.S))
    assert shown == expected, result.stdout[-3000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one (a blank 1280x2000 PNG is ~10 KB)
