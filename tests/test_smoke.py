"""orch.smoke, orch.releases and orch.observe without Terraform: how an answer is judged,
the bound on waiting (real sockets that never answer), each control-plane check against
AWS-shaped answers, release records in a folder and in S3 (an in-process moto server),
logs read once each, Lambda's Invoke on the local gateway, and the `smoke:` stage section."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orch import observe, releases, smoke
from orch.aws import Aws
from orch.config import load_stage
from orch.errors import AwsNotFound, ConfigError, SandboxError
from orch.executor import rollback_tfvars

DEPLOYED = smoke.Deployed(
    stage="dev", target="sandbox", invoke_url="http://127.0.0.1:9/restapis/abc/dev/_user_request_",
    rest_api_id="abc", stage_name="dev", function_name="orch-loopback-dev", alias_name="dev",
    function_version="4", deployment_id="d2", execution_arn="arn:aws:execute-api:ap-northeast-2:123456789012:abc",
    stage_variables={"env": "dev"}, routes=(("POST", "/"), ("GET", "/items/{id}")), package_sha256="ab" * 32,
)


# ---------------------------------------------------------------------------- judging an answer


def http_check(**expect: Any) -> smoke.HttpCheck:
    return smoke.HttpCheck("c", "POST", "http://x/", **expect)


def test_an_answer_meeting_every_expectation_passes() -> None:
    check = http_check(expect_json={"$.stage": "dev", "$.event['body-json'].a": 1}, expect_headers={"X-A": "b"},
                       max_latency_ms=100)
    body = json.dumps({"stage": "dev", "event": {"body-json": {"a": 1}}}).encode()
    attempt = smoke.evaluate(check, 200, {"x-a": "b"}, body, 12.0)
    assert attempt.passed and attempt.message == "200 in 12 ms"


def test_every_mismatch_is_named() -> None:
    check = http_check(expect_json={"$.stage": "dev", "$.gone": 1, "$.also": 2}, expect_headers={"X-A": "b"},
                       max_latency_ms=100)
    attempt = smoke.evaluate(check, 502, {}, json.dumps({"stage": "prod"}).encode(), 250.0)
    assert not attempt.passed
    for needle in ("status 502, expected 200", "header X-A", '$.stage: "prod", expected "dev"',
                   "no value at $.gone, $.also", "took 250 ms, over 100 ms"):
        assert needle in attempt.message


def test_an_answer_that_is_not_json_says_so() -> None:
    attempt = smoke.evaluate(http_check(expect_json={"$.a": 1}), 200, {}, b"<html>oops", 1.0)
    assert "not JSON: <html>oops" in attempt.message


# ---------------------------------------------------------------------------- the bound (acceptance 3)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/restapis/abc/dev/_user_request_"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/restapis/abc/dev/_user_request_"


@pytest.mark.parametrize("kind", ["silent", "refused"])
def test_a_url_that_never_answers_fails_within_the_bound(kind: str, request: pytest.FixtureRequest) -> None:
    import urllib3

    url = request.getfixturevalue("silent_server") if kind == "silent" else refused_url()
    deployed = smoke.Deployed(**{**DEPLOYED.__dict__, "invoke_url": url})
    checks = smoke.http_checks(load_stage(Path(__file__).parents[1], "dev").config.smoke.checks, deployed)
    bound = 1.5
    started = time.monotonic()
    report = smoke.run_checks(checks, smoke.Context(deployed, None, urllib3.PoolManager(retries=False)),
                              timeout=bound, request_timeout=10.0)
    elapsed = time.monotonic() - started
    assert elapsed < bound + 0.5, f"took {elapsed:.2f} s for a {bound} s bound"
    assert not report.passed and report.timeout == bound
    why = "timed out" if kind == "silent" else "connection refused"
    first = report.checks[0]
    assert first.message.startswith(f"no answer from POST {url}") and why in first.message, first.message
    for check in report.checks[1:]:  # a silent URL can use up the bound before the next check's turn
        assert check.message.startswith((f"no answer from POST {url}", "not tried: the 1.5 s bound ran out"))
    if kind == "refused":  # fails fast, so it is tried again with backoff until the bound
        assert first.attempts >= 3


def test_failing_checks_are_tried_again_with_backoff_until_they_pass() -> None:
    answers = iter([False, False, True])
    sleeps: list[float] = []

    class Flaky:
        name, kind = "flaky", "control"

        def attempt(self, ctx: Any, timeout: float) -> smoke.Attempt:
            return smoke.Attempt(next(answers), "propagating")

    steady = smoke.ControlCheck("steady", lambda ctx: (True, "fine"))
    report = smoke.run_checks([Flaky(), steady], smoke.Context(DEPLOYED, None, None), timeout=30, sleep=sleeps.append)
    assert report.passed and [c.attempts for c in report.checks] == [3, 1]  # a passing check runs once
    assert sleeps == [0.25, 0.5]  # exponential backoff, no fixed sleep


def test_the_default_bound_depends_on_the_target() -> None:
    settings = load_stage(Path(__file__).parents[1], "dev").config.smoke
    assert smoke.timeout_for(settings, "sandbox") == 10.0 and smoke.timeout_for(settings, "aws") == 60.0
    assert smoke.timeout_for(settings.model_copy(update={"timeout": 3.0}), "aws") == 3.0


# ---------------------------------------------------------------------------- the control plane


class FakeAws:
    """orch.aws.Aws.call answering from a table of (service, operation) -> answer."""

    def __init__(self, **answers: Any) -> None:
        self.answers = {
            "get_rest_api": {"id": "abc", "name": "orch-loopback-dev"},
            "get_stage": {"deploymentId": "d2", "variables": {"env": "dev"}},
            "get_deployments": {"items": [{"id": "d1", "createdDate": 1.0}, {"id": "d2", "createdDate": 2.0}]},
            "get_alias": {"FunctionVersion": "4"},
            "get_function_configuration": {"State": "Active", "LastUpdateStatus": "Successful",
                                           "CodeSha256": base64.b64encode(bytes.fromhex("ab" * 32)).decode()},
            "get_policy": {"Policy": json.dumps({"Statement": [
                {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                 "Action": "lambda:InvokeFunction",
                 "Condition": {"ArnLike": {"AWS:SourceArn": f"{DEPLOYED.execution_arn}/*/POST/"}}},
                {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                 "Action": "lambda:InvokeFunction",
                 "Condition": {"ArnLike": {"AWS:SourceArn": f"{DEPLOYED.execution_arn}/*/GET/items/*"}}},
            ]})},
            **answers,
        }

    def call(self, service: str, operation: str, what: str, **kwargs: Any) -> Any:
        answer = self.answers[operation]
        if isinstance(answer, Exception):
            raise answer
        return answer


def control(aws: FakeAws) -> dict[str, smoke.Attempt]:
    ctx = smoke.Context(DEPLOYED, aws, None)
    return {check.name: check.attempt(ctx, 5.0) for check in smoke.control_plane_checks(DEPLOYED)}


def test_a_healthy_stage_passes_every_control_plane_check() -> None:
    results = control(FakeAws())
    assert all(a.passed for a in results.values()), results
    assert results["alias points at the released version"].message == "dev -> version 4"


@pytest.mark.parametrize(("answers", "check", "needle"), [
    ({"get_stage": {"deploymentId": "d1", "variables": {"env": "dev"}}}, "stage serves the newest deployment",
     "serves deployment d1, the newest is d2"),
    ({"get_stage": {"deploymentId": "d2", "variables": {"env": "prod", "x": "1"}}}, "stage variables as configured",
     "not configured ['x'], different ['env']"),
    ({"get_alias": {"FunctionVersion": "3"}}, "alias points at the released version",
     "points at version 3, expected 4"),
    ({"get_function_configuration": {"State": "Failed", "LastUpdateStatus": "Failed", "StateReason": "no role"}},
     "function is Active, last update Successful", "State Failed, LastUpdateStatus Failed: no role"),
    ({"get_policy": {"Policy": json.dumps({"Statement": []})}}, "API may invoke the function",
     "no statement lets API abc invoke it for POST /, GET /items/{id}"),
    ({"get_rest_api": AwsNotFound("reading REST API abc: NotFoundException: Invalid API identifier")},
     "REST API and stage exist", "Invalid API identifier"),
])
def test_each_control_plane_check_names_what_is_wrong(answers: dict, check: str, needle: str) -> None:
    attempt = control(FakeAws(**answers))[check]
    assert not attempt.passed and needle in attempt.message, attempt.message


def test_the_alias_must_run_the_released_package() -> None:
    other = base64.b64encode(bytes.fromhex("cd" * 32)).decode()
    attempt = control(FakeAws(get_function_configuration={"CodeSha256": other}))["alias points at the released version"]
    assert not attempt.passed and "runs package cdcdcdcdcdcd…, expected abababababab…" in attempt.message


# ---------------------------------------------------------------------------- declared and generated checks


def test_declared_checks_become_requests_with_the_stage_filled_in(project: Path) -> None:
    stage = load_stage(project, "dev")
    checks = {c.name: c for c in smoke.build_checks(stage, DEPLOYED)}
    proto = checks["prototype request comes back"]
    assert proto.url == DEPLOYED.invoke_url + "/?deptno-param=smoke"
    assert json.loads(proto.body) == {"smoke": True} and proto.headers["Content-Type"] == "application/json"
    assert proto.expect_json["$.stage"] == "dev" and proto.expect_json["$.event.context.stage"] == "dev"
    assert checks["error mapping gives 400"].expect_status == 400
    assert len([c for c in checks.values() if c.kind == "control"]) == 6


def test_a_generated_check_is_one_function_away(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def preflight(stage: Any, deployed: smoke.Deployed) -> list[smoke.HttpCheck]:
        return [smoke.HttpCheck("CORS preflight", "OPTIONS", deployed.invoke_url,
                                expect_headers={"Access-Control-Allow-Origin": "*"})]

    monkeypatch.setattr(smoke, "GENERATED", (preflight,))
    names = [c.name for c in smoke.build_checks(load_stage(project, "dev"), DEPLOYED)]
    assert names[-1] == "CORS preflight"


OUTPUTS = {"invoke_url": "https://abc.execute-api.ap-northeast-2.amazonaws.com/{s}", "rest_api_id": "abc",
           "stage_name": "{s}", "function_name": "orch-loopback-{s}", "alias_name": "{s}", "function_version": "4",
           "deployment_id": "d2", "execution_arn": "arn:aws:execute-api:ap-northeast-2:123456789012:abc"}


def applied(project: Path, name: str, **outputs: Any) -> tuple[Any, smoke.Deployed]:
    """A stage of the sample project and what `orch apply` would have applied for it (its
    rendered tfvars, AWS-shaped outputs), without Terraform."""
    from orch import render
    from orch.deploy import render_only

    stage = load_stage(project, name)
    tfvars = json.loads(render_only(stage, False)[render.TFVARS_FILE])
    values = {k: v.replace("{s}", name) for k, v in OUTPUTS.items()} | outputs
    return stage, smoke.Deployed.from_terraform(name, "aws", values, tfvars)


def test_cors_on_adds_a_preflight_check_expecting_the_applied_headers(project: Path) -> None:
    """Issue 9: dev has CORS on, so its checks include the browser's preflight, expecting the
    headers modules/cors maps (from the applied `api.preflights`); prod (CORS off) has none."""
    stage, deployed = applied(project, "dev")
    checks = {c.name: c for c in smoke.build_checks(stage, deployed)}
    preflight = checks["CORS preflight /"]
    assert (preflight.method, preflight.url) == ("OPTIONS", deployed.invoke_url + "/")
    assert preflight.headers == {"Origin": smoke.PREFLIGHT_ORIGIN, "Access-Control-Request-Method": "POST"}
    assert preflight.expect_status == 200
    assert preflight.expect_headers == {
        "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "OPTIONS,POST",
        "Access-Control-Allow-Headers": "Content-Type,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token",
        "Access-Control-Max-Age": "600",
    }
    prod_stage, prod = applied(project, "prod")
    assert not [c for c in smoke.build_checks(prod_stage, prod) if c.name.startswith("CORS")]


def test_a_named_origin_with_credentials_and_path_parameters_shape_the_preflight(project: Path) -> None:
    (project / "stages" / "web.yaml").write_text(
        "api:\n  cors: {allow_origin: 'https://app.example.com', allow_credentials: true, expose_headers: [X-Id]}\n"
        "  routes:\n    - {method: GET, path: '/items/{id}'}\n"
        "smoke:\n  checks:\n    prototype request comes back: {enabled: false}\n"
        "    error mapping gives 400: {enabled: false}\n"
    )
    stage, deployed = applied(project, "web")
    [preflight] = [c for c in smoke.build_checks(stage, deployed) if c.name.startswith("CORS")]
    assert preflight.name == "CORS preflight /items/{id}" and preflight.url == deployed.invoke_url + "/items/x"
    assert preflight.headers == {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    assert preflight.expect_headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert preflight.expect_headers["Access-Control-Allow-Credentials"] == "true"
    assert preflight.expect_headers["Access-Control-Expose-Headers"] == "X-Id"
    assert "Access-Control-Max-Age" not in preflight.expect_headers


def test_custom_domain_request_on_the_local_gateway() -> None:
    from orch.sandbox import custom_domain_request

    for url in ("https://api.example.com/v1", "http://api.example.com:4567/v1"):
        assert custom_domain_request("http://127.0.0.1:4567", url) == ("http://127.0.0.1:4567/v1",
                                                                         "api.example.com:4567")
    assert custom_domain_request("http://127.0.0.1:4567", "https://api.example.com") == (
        "http://127.0.0.1:4567", "api.example.com:4567")


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[tuple[str, str, str | None]]]]:
    """A local HTTP server answering 200 `{}` to anything: (its URL, the (method, path, Host) it got)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append((self.command, self.path, self.headers.get("Host")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_OPTIONS = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_custom_domain_repeats_the_declared_checks_through_it(project: Path, recording_server: Any) -> None:
    """Issue 9: with a custom domain (prod), every declared request runs again against the
    domain's URL under its base path, sending the domain as Host (in the sandbox the local
    gateway picks the stage by it). Real requests to a local server, which records them."""
    import urllib3

    from orch.sandbox import custom_domain_request

    gateway, seen = recording_server
    port = gateway.rsplit(":", 1)[1]
    stage, deployed = applied(project, "prod", custom_domain_url="https://api.orch.example.com/v1")
    assert deployed.custom_domain_url == "https://api.orch.example.com/v1" and deployed.custom_domain_host is None
    deployed = smoke.Deployed(**{**deployed.__dict__, "custom_domain_url": None})  # none: no domain checks
    assert not [c for c in smoke.build_checks(stage, deployed) if " via " in c.name]
    url, host = custom_domain_request(gateway, "https://api.orch.example.com/v1")
    deployed = smoke.Deployed(**{**deployed.__dict__, "custom_domain_url": url, "custom_domain_host": host})
    checks = [c for c in smoke.build_checks(stage, deployed) if " via " in c.name]
    assert [c.name for c in checks] == ["prototype request comes back via api.orch.example.com/v1",
                                        "error mapping gives 400 via api.orch.example.com/v1"]
    ctx = smoke.Context(deployed, None, urllib3.PoolManager(retries=False))
    for check in checks:  # what each request looks like, whatever the answer
        check.attempt(ctx, 5.0)
    assert ("POST", "/v1/?deptno-param=smoke", f"api.orch.example.com:{port}") in seen
    assert ("POST", "/v1/", f"api.orch.example.com:{port}") in seen
    assert all(path.startswith("/v1/") and host_seen == f"api.orch.example.com:{port}" for _, path, host_seen in seen)


def test_the_report_renders_as_table_json_and_junit(tmp_path: Path) -> None:
    from junitparser import JUnitXml

    results = (smoke.CheckResult("a", "control", True, "ok", 1, 0.1),
               smoke.CheckResult("b", "http", False, "status 500, expected 200", 3, 1.2, 12.0, 500))
    report = smoke.SmokeReport("dev", "sandbox", "http://x", results, 1.5, 10.0, "2026-01-01T00:00:00+00:00")
    lines = smoke.table_lines(report)
    assert any("FAIL" in line and "status 500, expected 200" in line for line in lines)
    assert lines[-1] == "smoke checks FAILED: 1/2 in 1.5 s (bound 10 s)"
    data = json.loads(smoke.to_json(report))
    assert data["passed"] is False and [c["name"] for c in data["checks"]] == ["a", "b"]
    assert smoke.SmokeReport.from_dict(data) == report
    smoke.write_junit([report], tmp_path / "smoke.xml")
    cases = [(case.name, case.is_passed) for suite in JUnitXml.fromfile(str(tmp_path / "smoke.xml")) for case in suite]
    assert cases == [("a", True), ("b", False)]


# ---------------------------------------------------------------------------- the smoke: section


@pytest.mark.parametrize(("text", "needles"), [
    ("smoke: {checks: {x: {expect: {json: {'$.a-b': 1}}}}}",
     ["stages/dev.yaml", "smoke.checks.x.expect.json", "not an RFC 9535 JSONPath", "$.a['b-c']"]),
    ("smoke: {checks: {x: {query: {a: '${stag}'}}}}", ["smoke.checks.x.query", "unknown placeholder ${stag}"]),
    ("smoke: {timeout: 0}", ["smoke.timeout", "greater than 0"]),
    ("smoke: {checks: {x: {method: FETCH}}}", ["smoke.checks.x.method"]),
    ("promote_from: dev", ["promote_from", "cannot promote from itself"]),
    ("promote_from: qa", ["promote_from", "'qa' is not a stage"]),
])
def test_bad_smoke_settings_name_the_file_and_field(project: Path, text: str, needles: list[str]) -> None:
    (project / "stages" / "dev.yaml").write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_stage(project, "dev")
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_a_stage_adds_to_the_defaults_checks_key_by_key(project: Path) -> None:
    dev, prod = load_stage(project, "dev").config, load_stage(project, "prod").config
    assert list(dev.smoke.checks) == list(prod.smoke.checks)
    assert "$.event.context.stage" in dev.smoke.checks["prototype request comes back"].expect.json_
    assert "$.event.context.stage" not in prod.smoke.checks["prototype request comes back"].expect.json_
    assert prod.promote_from == "dev"


# ---------------------------------------------------------------------------- release records


def release(n: int, *, passed: bool | None = True, epoch: str | None = "e1", kind: str = "apply",
            package: str = "ab" * 32) -> releases.Release:
    return releases.Release(id=f"2026010{n}T000000.000000Z-{kind}", stage="dev", target="sandbox", kind=kind,
                            time=f"2026-01-0{n}", package_sha256=package, function_version=str(n),
                            deployment_id=f"d{n}", passed=passed, sandbox_epoch=epoch, reason="r")


def test_records_answer_the_questions_rollback_and_promotion_ask(tmp_path: Path) -> None:
    location = releases.Location("dev", "sandbox", folder=tmp_path / "releases")
    records = releases.Releases(releases.open_store(location, lambda region: None), location)
    assert records.latest() is None
    for item in (release(1), release(2, epoch="e0"), release(3, package="cd" * 32), release(4, passed=False)):
        records.write(item)
    assert records.latest().id == release(4, passed=False).id  # newest first
    assert [r.function_version for r in records.rollback_candidates(exclude=release(4).id, epoch="e1")] == ["3", "1"]
    assert records.passed_package("ab" * 32).function_version == "2"  # any sandbox run counts for promotion
    assert records.passed_package("ef" * 32) is None
    line = releases.status_line("dev", records.latest(), "orch apply dev --sandbox")
    assert "failed its smoke checks and there was nothing to roll back to" in line
    rolled = release(5, kind="rollback")
    assert "is rolled back to version 5" in releases.status_line("dev", rolled, "orch apply dev --sandbox")


def test_an_s3_backend_keeps_records_beside_the_state(project: Path, moto_endpoint: str) -> None:
    (project / "stages" / "dev.yaml").write_text("backend: {type: s3, bucket: team-state}\n")
    location = releases.location_of(load_stage(project, "dev"), "sandbox")
    assert (location.bucket, location.prefix) == ("team-state", "orch/orch/dev/releases/")
    aws = Aws.for_sandbox(moto_endpoint, "ap-northeast-2")
    aws.ensure_bucket("team-state")
    aws.put_json("team-state", "orch/orch/dev/terraform.tfstate", {})
    records = releases.Releases(releases.open_store(location, lambda region: aws), location)
    records.write(release(1))
    records.write(release(2, passed=False))
    assert [r.function_version for r in records] == ["2", "1"]
    keys = aws.list_keys("team-state", "orch/orch/dev/")
    assert f"orch/orch/dev/releases/{release(1).id}.json" in keys
    local = releases.location_of(load_stage(project, "prod"), "aws")
    assert local.folder == project / ".orch" / "work" / "aws" / "prod" / "releases"


def test_rollback_tfvars_keep_the_function_and_take_the_earlier_api_and_stage(project: Path) -> None:
    from orch.render import PackageRef, Target, render
    from tfcontract import check_tfvars, module_types

    def tfvars(text: str) -> dict:
        (project / "stages" / "dev.yaml").write_text(text)
        rendered = render(load_stage(project, "dev"), Target("aws"), PackageRef("c2hhMjU2", filename="/p.zip"))
        return json.loads(rendered["terraform.tfvars.json"])

    before = tfvars("stage: {variables: {env: old}}\n")
    current = tfvars("stage: {variables: {env: new}}\napi: {routes: [{method: GET, path: /}]}\n")
    values = rollback_tfvars(current, before, "3")
    assert values["function"] == {**current["function"], "alias_version": "3"}
    assert values["api"] == before["api"] and values["stage"]["variables"] == {"env": "old"}
    assert current["function"]["alias_version"] is None  # rendered from the stage files: follow the new version
    variables = module_types(Path(__file__).parents[1] / "modules" / "stack" / "variables.tf")
    assert check_tfvars(values, variables) == []  # the key the rollback adds is one the module declares


# ---------------------------------------------------------------------------- logs and invoke


class FakeLogs:
    def __init__(self, pages: list[list[dict]]) -> None:
        self.pages = pages
        self.starts: list[int] = []

    def log_events(self, group: str, *, start_ms: int, pattern: Any = None, token: Any = None) -> Any:
        self.starts.append(start_ms)
        if not self.pages:
            raise AwsNotFound("no group")
        return [e for e in self.pages.pop(0) if e["timestamp"] >= start_ms], None


def event(n: int, ts: int, message: str) -> dict:
    return {"eventId": str(n), "timestamp": ts, "message": message + "\n", "logStreamName": "2026/01/01/[4]abc"}


def test_follow_prints_each_event_once_and_stops_when_told() -> None:
    base = int(time.time() * 1000) - 5000
    first = [event(1, base, "START RequestId: r1 Version: 4"), event(2, base + 5, "hello")]
    second = [*first, event(3, base + 5, "REPORT RequestId: r1\tDuration: 1.00 ms")]  # same ms as the last one read
    aws = FakeLogs([first, second, []])
    lines: list[str] = []
    shown = observe.show_logs(aws, "fn", since_seconds=60, pattern=None, follow=True, emit=lines.append,
                              note=lines.append, sleep=lambda s: None, polls=3)
    assert shown == 3 and [line.split(" ", 2)[2] for line in lines] == [
        "START RequestId: r1 Version: 4", "hello", "REPORT RequestId: r1\tDuration: 1.00 ms"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[4\] START", lines[0]), lines[0]
    assert aws.starts[1:] == [base + 5, base + 5]  # polls from the newest event on


def test_events_of_one_millisecond_keep_their_order_and_an_error_shows_its_lines() -> None:
    base = int(time.time() * 1000) - 5000
    page = [event(9, base, "START RequestId: r1 Version: 4"),
            event(3, base, "[ERROR] Exception: boom\rTraceback (most recent call last):\r  File \"/var/task/h.py\""),
            event(5, base, "END RequestId: r1")]
    lines: list[str] = []
    observe.show_logs(FakeLogs([page]), "fn", since_seconds=60, pattern=None, follow=False, emit=lines.append,
                      note=lines.append)
    text = "\n".join(line.split(" ", 2)[2] for line in lines)
    assert text == ("START RequestId: r1 Version: 4\n[ERROR] Exception: boom\n    Traceback (most recent call last):"
                    "\n      File \"/var/task/h.py\"\nEND RequestId: r1")


def test_logs_without_the_group_say_so_and_bad_durations_are_refused() -> None:
    with pytest.raises(AwsNotFound, match="log group /aws/lambda/fn does not exist"):
        observe.show_logs(FakeLogs([]), "fn", since_seconds=60, pattern=None, follow=False, emit=print, note=print)
    assert observe.parse_since("10m") == 600 and observe.parse_since("2h") == 7200
    with pytest.raises(ConfigError, match="--since 10 minutes"):
        observe.parse_since("10 minutes")


def test_invoke_payload_must_be_json(tmp_path: Path) -> None:
    assert observe.payload_from(None, None) == b"{}"
    (tmp_path / "e.json").write_text('{"a": 1}')
    assert observe.payload_from(None, tmp_path / "e.json") == b'{"a": 1}'
    with pytest.raises(ConfigError, match="--data: not JSON"):
        observe.payload_from("{a:1}", None)
    with pytest.raises(ConfigError, match="not both"):
        observe.payload_from("{}", tmp_path / "e.json")


def test_the_gateway_answers_lambdas_invoke_call() -> None:
    from orch.gateway.invoke_api import LambdaInvokeApi
    from orch.gateway.workers import FunctionSpec, InvokeResult

    spec = FunctionSpec("fn", "4", Path("/x"), "h.h", "python3.12", 3, 128, {}, "arn:aws:lambda:r:1:function:fn:dev")
    seen: list[Any] = []

    class Registry:
        def get_function(self, ref: Any) -> FunctionSpec:
            seen.append(ref)
            if ref.function_arn != "fn":
                raise SandboxError("no such function")
            return spec

    class Pool:
        def __init__(self, result: InvokeResult) -> None:
            self.result = result

        def invoke(self, spec: Any, event: bytes, request_id: str) -> InvokeResult:
            return self.result

    ok = LambdaInvokeApi(Registry(), Pool(InvokeResult(b'{"ok": 1}', None, logs="START\nREPORT\n")))
    answer = ok("POST", "/2015-03-31/functions/fn/invocations", "Qualifier=dev", {"X-Amz-Log-Type": "Tail"}, b"{}")
    headers = dict(answer.headers)
    assert answer.status == 200 and answer.body == b'{"ok": 1}' and headers["X-Amz-Executed-Version"] == "4"
    assert base64.b64decode(headers["X-Amz-Log-Result"]) == b"START\nREPORT\n"
    assert seen[-1].qualifier == "dev"
    failing = LambdaInvokeApi(Registry(), Pool(InvokeResult(None, {"errorMessage": "boom"})))
    answer = failing("POST", "/2015-03-31/functions/fn:dev/invocations", "", {}, b"")
    assert dict(answer.headers)["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(answer.body)["errorMessage"] == "boom"
    assert seen[-1].qualifier == "dev"  # `name:alias` is a qualified name
    missing = ok("POST", "/2015-03-31/functions/other/invocations", "", {}, b"{}")
    assert missing.status == 404 and dict(missing.headers)["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert ok("POST", "/2015-03-31/functions/fn/invocations", "", {}, b"{nope").status == 400
    assert ok("GET", "/_orch/health", "", {}, b"") is None  # not its path: the server answers


# ---------------------------------------------------------------------------- the commands' bad input


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["logs", "dev", "--sandbox", "--since", "ten"], 3, "--since ten: expected a duration"),
    (["invoke", "dev", "--sandbox", "--data", "{a"], 3, "--data: not JSON"),
    (["invoke", "dev", "--data", "{}", "--data-file", "e.json"], 3, "give one of them, not both"),
    (["logs", "dev", "--sandbox"], 8, "the sandbox is not running"),
    (["invoke", "dev", "--sandbox"], 8, "the sandbox is not running"),
    (["smoke", "dev", "--sandbox"], 8, "stage 'dev' is not deployed in the sandbox: it was never applied there"),
    (["rollback", "dev", "--sandbox", "--dry-run"], 8, "Apply it first: `orch apply dev --sandbox`"),
])
def test_the_new_commands_fail_clearly_and_start_nothing(project: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                          code: int, needle: str) -> None:
    from orch.cli import main

    monkeypatch.chdir(project)
    (project / "e.json").write_text("{}")
    assert main(args) == code
    out = capsys.readouterr()
    assert needle in out.out + out.err and "Traceback" not in out.err
    assert not (project / ".orch").exists()  # no sandbox started, nothing written
