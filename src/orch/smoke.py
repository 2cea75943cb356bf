"""Post-deploy smoke checks: is the stage Terraform just applied really serving, as declared?

This module owns the checks (the control plane read through orch.aws: API, stage,
deployment, stage variables, alias, function state, invoke permission; the data plane as
real HTTP requests to the invoke URL, declared in the stage's `smoke:` section), running
them again with backoff until one bound, and the typed report (`SmokeReport`) with its table,
JSON and JUnit renderings. It changes nothing deployed and runs no Terraform: release
records and rollback belong to orch.releases and the deploy steps.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from orch.config import PLACEHOLDER_RE, SmokeRequest, SmokeSettings, Stage
from orch.errors import AwsError

# The bound on one run when the stage sets no `smoke.timeout` (seconds). On AWS a new
# deployment and alias take seconds to reach every API Gateway and Lambda frontend; the
# sandbox's gateway is told of every apply and serves it at once, so a failure there is real.
DEFAULT_TIMEOUT = {"aws": 60.0, "sandbox": 10.0}
# Backoff between rounds of failing checks: 0.25 s doubling up to 4 s (tenacity's wait_exponential).
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 4.0
# Bounds on each control-plane call, so a silent endpoint cannot outlast the run's bound.
CONTROL_CLIENT_CONFIG = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 2, "mode": "standard"}}


def timeout_for(settings: SmokeSettings, target: str) -> float:
    """The bound in seconds on one run of the checks: `smoke.timeout`, else DEFAULT_TIMEOUT."""
    return settings.timeout if settings.timeout is not None else DEFAULT_TIMEOUT[target]


# ---------------------------------------------------------------------------- what was applied


@dataclass(frozen=True)
class Deployed:
    """What Terraform applied to a stage, which the checks compare AWS's answers with.

    Built from the root outputs (`orch output`) and the tfvars the apply used. In a rollback
    `function_version` is the version the alias was pinned to and `package_sha256` (hex)
    that version's package.
    """

    stage: str
    target: str  # "aws" or "sandbox"
    invoke_url: str
    rest_api_id: str
    stage_name: str
    function_name: str
    alias_name: str
    function_version: str
    deployment_id: str
    execution_arn: str
    stage_variables: Mapping[str, str] = field(default_factory=dict)
    routes: tuple[tuple[str, str], ...] = ()  # (method, path)
    package_sha256: str | None = None
    # `api.preflights[]` as applied (orch.render.PreflightVars as dicts): one CORS preflight check each
    preflights: tuple[Mapping[str, Any], ...] = ()
    # the custom domain's URL to request (https://api.example.com/v1; in the sandbox the local
    # gateway's address under the base path) and the Host header to send there (None: the URL's)
    custom_domain_url: str | None = None
    custom_domain_host: str | None = None

    @classmethod
    def from_terraform(cls, stage: str, target: str, outputs: Mapping[str, Any], tfvars: Mapping[str, Any], *,
                       invoke_url: str | None = None, package_sha256: str | None = None,
                       custom_domain: tuple[str, str | None] | None = None) -> Deployed:
        """From root outputs and the applied tfvars (KeyError when an output is missing).
        `custom_domain`: (URL, Host header) to reach the custom domain by; default the
        `custom_domain_url` output and its own host."""
        api = tfvars.get("api") or {}
        routes = tuple((str(r["method"]), str(r["path"])) for r in api.get("routes") or ())
        if custom_domain is None and outputs.get("custom_domain_url"):
            custom_domain = (str(outputs["custom_domain_url"]), None)
        domain_url, domain_host = custom_domain or (None, None)
        if package_sha256 is None:
            package = (tfvars.get("function") or {}).get("package") or {}
            package_sha256 = sha256_hex_of(package.get("source_code_hash"))
        return cls(
            stage=stage, target=target, invoke_url=invoke_url or str(outputs["invoke_url"]),
            rest_api_id=str(outputs["rest_api_id"]), stage_name=str(outputs["stage_name"]),
            function_name=str(outputs["function_name"]), alias_name=str(outputs["alias_name"]),
            function_version=str(outputs["function_version"]), deployment_id=str(outputs["deployment_id"]),
            execution_arn=str(outputs["execution_arn"]),
            stage_variables=dict((tfvars.get("stage") or {}).get("variables") or {}),
            routes=routes, package_sha256=package_sha256,
            preflights=tuple(dict(p) for p in api.get("preflights") or ()),
            custom_domain_url=domain_url, custom_domain_host=domain_host,
        )


def sha256_hex_of(source_code_hash: str | None) -> str | None:
    """Hex digest from Lambda's base64 `CodeSha256` / Terraform's `source_code_hash`."""
    if not source_code_hash:
        return None
    try:
        return base64.b64decode(source_code_hash, validate=True).hex()
    except ValueError:
        return None


def sha256_b64_of(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


# ---------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Attempt:
    """One try of one check."""

    passed: bool
    message: str
    latency_ms: float | None = None
    status: int | None = None


@dataclass
class Context:
    """What a check reaches the world through: `aws` (an orch.aws.Aws for the stage's
    control plane), `http` (a urllib3.PoolManager, or anything with its `request`)."""

    deployed: Deployed
    aws: Any
    http: Any


class Check(Protocol):
    """A check: `name` (unique in a run), `kind` ("control" or "http"), and one try of it
    that must end within `timeout` seconds."""

    name: str
    kind: str

    def attempt(self, ctx: Context, timeout: float) -> Attempt: ...


@dataclass(frozen=True)
class ControlCheck:
    """A control-plane check: `probe(ctx)` answers (passed, message); an AwsError is a failed try."""

    name: str
    probe: Callable[[Context], tuple[bool, str]]
    kind: str = "control"

    def attempt(self, ctx: Context, timeout: float) -> Attempt:
        try:
            passed, message = self.probe(ctx)
        except AwsError as exc:
            return Attempt(False, exc.message)
        return Attempt(passed, message)


@dataclass(frozen=True)
class HttpCheck:
    """A data-plane check: one HTTP request and what its answer must be.

    `url` is the full URL (the invoke URL plus path and query); `expect_json` maps RFC 9535
    JSONPaths to values; `expect_headers` names headers (any case) and their values.
    Generated checks (a CORS preflight, a custom domain) are HttpChecks too.
    """

    name: str
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect_status: int = 200
    expect_json: Mapping[str, Any] = field(default_factory=dict)
    expect_headers: Mapping[str, str] = field(default_factory=dict)
    max_latency_ms: int | None = None
    kind: str = "http"

    def attempt(self, ctx: Context, timeout: float) -> Attempt:
        import urllib3

        started = time.perf_counter()
        try:
            response = ctx.http.request(
                self.method, self.url, body=self.body, headers=dict(self.headers),
                timeout=urllib3.Timeout(total=max(timeout, 0.001)), retries=False, redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            return Attempt(False, f"no answer from {self.method} {self.url} within {timeout:.1f} s: {_reason(exc)}")
        latency = (time.perf_counter() - started) * 1000
        return evaluate(self, response.status, dict(response.headers.items()), response.data, latency)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "timed out" in text.lower():
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    return text.split(": ", 1)[-1][:200]


def evaluate(check: HttpCheck, status: int, headers: Mapping[str, str], body: bytes,
             latency_ms: float) -> Attempt:
    """Judge one HTTP answer against `check`'s expectations; pure. Every mismatch is named."""
    import jsonpath_rfc9535

    problems: list[str] = []
    if status != check.expect_status:
        problems.append(f"status {status}, expected {check.expect_status}")
    lower = {name.lower(): value for name, value in headers.items()}
    for name, expected in check.expect_headers.items():
        got = lower.get(name.lower())
        if got != expected:
            problems.append(f"header {name}: {_value(got)}, expected {_value(expected)}")
    if check.expect_json:
        try:
            document = json.loads(body)
        except ValueError:
            problems.append(f"the answer is not JSON: {_short(body.decode('utf-8', 'replace'))}")
        else:
            missing = []
            for path, expected in check.expect_json.items():
                nodes = jsonpath_rfc9535.find(path, document)
                if not nodes:
                    missing.append(path)
                elif nodes[0].value != expected:
                    problems.append(f"{path}: {_value(nodes[0].value)}, expected {_value(expected)}")
            if missing:
                problems.append(f"no value at {', '.join(missing)} in the answer {_short(document)}")
    if check.max_latency_ms is not None and latency_ms > check.max_latency_ms:
        problems.append(f"took {latency_ms:.0f} ms, over {check.max_latency_ms} ms")
    if problems:
        return Attempt(False, "; ".join(problems), latency_ms, status)
    return Attempt(True, f"{status} in {latency_ms:.0f} ms", latency_ms, status)


def _value(value: Any) -> str:
    """A JSON value as JSON (strings quoted, so "1" and 1 differ), shortened."""
    return _short(json.dumps(value, ensure_ascii=False))


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- control plane


def control_plane_checks(deployed: Deployed) -> list[Check]:
    """The checks every stage gets, read through AWS's API (boto3 via orch.aws)."""
    return [
        ControlCheck("REST API and stage exist", _api_and_stage),
        ControlCheck("stage serves the newest deployment", _newest_deployment),
        ControlCheck("stage variables as configured", _stage_variables),
        ControlCheck("alias points at the released version", _alias),
        ControlCheck("function is Active, last update Successful", _function_state),
        ControlCheck("API may invoke the function", _permission),
    ]


def _get_stage(ctx: Context) -> dict[str, Any]:
    d = ctx.deployed
    return ctx.aws.call("apigateway", "get_stage", f"reading stage {d.stage_name} of REST API {d.rest_api_id}",
                        restApiId=d.rest_api_id, stageName=d.stage_name)


def _api_and_stage(ctx: Context) -> tuple[bool, str]:
    d = ctx.deployed
    api = ctx.aws.call("apigateway", "get_rest_api", f"reading REST API {d.rest_api_id}", restApiId=d.rest_api_id)
    _get_stage(ctx)
    return True, f"{api.get('name', d.rest_api_id)} ({d.rest_api_id}), stage {d.stage_name}"


def _newest_deployment(ctx: Context) -> tuple[bool, str]:
    """GetDeployments lists the API's deployments with `createdDate`; the stage must serve the
    newest, and it must be the one Terraform created."""
    d = ctx.deployed
    stage = _get_stage(ctx)
    items: list[dict[str, Any]] = []
    position: dict[str, str] = {}
    while True:
        page = ctx.aws.call("apigateway", "get_deployments", f"listing deployments of {d.rest_api_id}",
                            restApiId=d.rest_api_id, limit=500, **position)
        items += page.get("items") or []
        if not page.get("position"):
            break
        position = {"position": page["position"]}
    serving = stage.get("deploymentId")
    if not items:
        return False, "the API has no deployment"
    newest = max(items, key=lambda item: _timestamp(item.get("createdDate")))["id"]
    if serving != newest:
        return False, f"the stage serves deployment {serving}, the newest is {newest}"
    if serving != d.deployment_id:
        return False, f"the stage serves deployment {serving}, Terraform applied {d.deployment_id}"
    return True, f"deployment {serving}"


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _stage_variables(ctx: Context) -> tuple[bool, str]:
    stage = _get_stage(ctx)
    got = dict(stage.get("variables") or {})
    expected = dict(ctx.deployed.stage_variables)
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        parts = [f"missing {missing}" if missing else "", f"not configured {extra}" if extra else "",
                 f"different {wrong}" if wrong else ""]
        return False, "stage variables differ: " + ", ".join(p for p in parts if p)
    return True, f"{len(got)} variable(s)"


def _alias(ctx: Context) -> tuple[bool, str]:
    d = ctx.deployed
    alias = ctx.aws.call("lambda", "get_alias", f"reading alias {d.alias_name} of {d.function_name}",
                         FunctionName=d.function_name, Name=d.alias_name)
    version = str(alias.get("FunctionVersion"))
    if version != d.function_version:
        return False, f"alias {d.alias_name} points at version {version}, expected {d.function_version}"
    if d.package_sha256:
        config = ctx.aws.call("lambda", "get_function_configuration", f"reading {d.function_name}:{version}",
                              FunctionName=d.function_name, Qualifier=version)
        got = sha256_hex_of(config.get("CodeSha256"))
        if got != d.package_sha256:
            return False, (f"version {version} runs package {str(got)[:12]}…, expected {d.package_sha256[:12]}…")
    return True, f"{d.alias_name} -> version {version}"


def _function_state(ctx: Context) -> tuple[bool, str]:
    """GetFunctionConfiguration's State and LastUpdateStatus of the alias's version:
    https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html"""
    d = ctx.deployed
    config = ctx.aws.call("lambda", "get_function_configuration", f"reading {d.function_name}:{d.alias_name}",
                          FunctionName=d.function_name, Qualifier=d.alias_name)
    state, update = config.get("State"), config.get("LastUpdateStatus")
    if state != "Active" or update != "Successful":
        reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or ""
        return False, f"State {state}, LastUpdateStatus {update}" + (f": {reason}" if reason else "")
    return True, f"{state}, {update}"


def _permission(ctx: Context) -> tuple[bool, str]:
    """The alias's resource policy must let API Gateway invoke it from every route of this
    API: a statement whose AWS:SourceArn pattern (ArnLike: `*` and `?`) matches
    `<execution ARN>/<stage>/<METHOD>/<path>`.
    https://docs.aws.amazon.com/apigateway/latest/developerguide/arn-format-reference.html"""
    d = ctx.deployed
    answer = ctx.aws.call("lambda", "get_policy", f"reading the resource policy of {d.function_name}:{d.alias_name}",
                          FunctionName=d.function_name, Qualifier=d.alias_name)
    patterns = []
    for statement in json.loads(answer.get("Policy") or "{}").get("Statement") or ():
        principal = statement.get("Principal") or {}
        service = principal.get("Service") if isinstance(principal, dict) else principal
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else list(actions or ())
        if statement.get("Effect") != "Allow" or service != "apigateway.amazonaws.com":
            continue
        if not {"lambda:InvokeFunction", "lambda:*"} & set(actions):
            continue
        condition = (statement.get("Condition") or {}).get("ArnLike") or {}
        source = condition.get("AWS:SourceArn") or condition.get("aws:SourceArn")
        if source:
            patterns.append(source)
    routes = d.routes or (("POST", "/"),)
    missing = [f"{m} {p}" for m, p in routes if not any(_arn_like(_request_arn(d, m, p), pat) for pat in patterns)]
    if missing:
        return False, f"no statement lets API {d.rest_api_id} invoke it for {', '.join(missing)}"
    return True, f"{len(routes)} route(s) allowed"


def _request_arn(d: Deployed, method: str, path: str) -> str:
    return f"{d.execution_arn}/{d.stage_name}/{'GET' if method == 'ANY' else method}{_concrete(path)}"


def _arn_like(arn: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(arn, pattern.replace("[", "[[]"))


# ---------------------------------------------------------------------------- data plane


def http_checks(checks: Mapping[str, SmokeRequest], deployed: Deployed, *, via_domain: bool = False) -> list[Check]:
    """The stage's declared requests (`smoke.checks`) against its invoke URL, `${stage}` filled in.
    `via_domain`: against its custom domain instead (`deployed.custom_domain_url`, with
    `custom_domain_host` as Host), each check's name ending in " via <domain>/<base path>"."""
    found: list[Check] = []
    base, host, suffix = deployed.invoke_url, None, ""
    if via_domain:
        if not deployed.custom_domain_url:
            return found
        base, host = deployed.custom_domain_url, deployed.custom_domain_host
        suffix = f" via {domain_label(deployed)}"
    for name, request in checks.items():
        if not request.enabled:
            continue
        values = {"stage": deployed.stage_name}
        url = base.rstrip("/") + (request.path if request.path != "/" else "/")
        query = _fill(dict(request.query), values)
        if query:
            url += "?" + urlencode(query)
        headers = _fill(dict(request.headers), values)
        if host is not None:
            headers = {**headers, "Host": host}
        body = _fill(request.body, values)
        data: bytes | None = None
        if isinstance(body, str):
            data = body.encode()
        elif body is not None:
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **headers}
        expect = request.expect
        found.append(HttpCheck(
            name=name + suffix, method=request.method, url=url, headers=headers, body=data, expect_status=expect.status,
            expect_json=_fill(dict(expect.json_), values), expect_headers=_fill(dict(expect.headers), values),
            max_latency_ms=expect.max_latency_ms,
        ))
    return found


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {_fill(k, values): _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def domain_label(deployed: Deployed) -> str:
    """The custom domain as a check's name shows it: `api.example.com/v1` (no scheme, no port)."""
    from urllib.parse import urlsplit

    url = urlsplit(deployed.custom_domain_url or "")
    host = urlsplit(f"//{deployed.custom_domain_host}").hostname if deployed.custom_domain_host else url.hostname
    return f"{host}{url.path.rstrip('/')}"


# An Origin for a preflight when the API allows any ('*'): a browser always sends one.
PREFLIGHT_ORIGIN = "https://smoke.orch.invalid"


def cors_preflights(stage: Stage, deployed: Deployed) -> list[Check]:
    """One check per CORS preflight Terraform applied (`api.preflights[]`): OPTIONS on the
    path with `Origin` and `Access-Control-Request-Method` (as a browser sends it) must answer
    200 with the configured Access-Control headers, as modules/cors maps them. API Gateway
    answers it from a MOCK integration, not the function:
    https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors.html"""
    found: list[Check] = []
    for preflight in deployed.preflights:
        origin = str(preflight["allow_origin"])
        methods = [str(m) for m in preflight["allow_methods"]]
        expect = {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ",".join(methods),
                  "Access-Control-Allow-Headers": ",".join(preflight.get("allow_headers") or ())}
        if preflight.get("expose_headers"):
            expect["Access-Control-Expose-Headers"] = ",".join(preflight["expose_headers"])
        if preflight.get("max_age") is not None:
            expect["Access-Control-Max-Age"] = str(preflight["max_age"])
        if preflight.get("allow_credentials"):
            expect["Access-Control-Allow-Credentials"] = "true"
        path = _concrete(str(preflight["path"]))
        asked = next((m for m in methods if m != "OPTIONS"), "GET")
        found.append(HttpCheck(
            name=f"CORS preflight {preflight['path']}", method="OPTIONS",
            url=deployed.invoke_url.rstrip("/") + path,
            headers={"Origin": PREFLIGHT_ORIGIN if origin == "*" else origin, "Access-Control-Request-Method": asked},
            expect_headers=expect,
        ))
    return found


def _concrete(path: str) -> str:
    """A request path for a resource path: each `{param}`/`{proxy+}` segment becomes `x`."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))


# Checks generated from a stage's configuration rather than declared in `smoke.checks`:
# functions (stage, deployed) -> checks, run after the declared ones (and after the declared
# ones again through the custom domain, when the stage has one). Build HttpChecks.
GENERATED: tuple[Callable[[Stage, Deployed], Iterable[Check]], ...] = (cors_preflights,)


def build_checks(stage: Stage, deployed: Deployed, settings: SmokeSettings | None = None) -> list[Check]:
    """Every check of one run: control plane, the declared requests (against the invoke URL,
    then the custom domain's URL), the generated ones."""
    settings = settings or stage.config.smoke
    checks: list[Check] = [*control_plane_checks(deployed), *http_checks(settings.checks, deployed),
                           *http_checks(settings.checks, deployed, via_domain=True)]
    for generate in GENERATED:
        checks += list(generate(stage, deployed))
    return checks


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True)
class CheckResult:
    """A check's last try: passed or not and why, after `attempts` tries over `seconds`."""

    name: str
    kind: str
    passed: bool
    message: str
    attempts: int
    seconds: float
    latency_ms: float | None = None
    status: int | None = None


@dataclass(frozen=True)
class SmokeReport:
    """One run of a stage's checks. `passed` when every check passed within `timeout` s."""

    stage: str
    target: str
    url: str
    checks: tuple[CheckResult, ...]
    seconds: float
    timeout: float
    started_at: str  # ISO 8601, UTC
    purpose: str = "release"  # "release", "rollback" (the checks after a rollback), "manual", "sync"

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def summary(self) -> str:
        good = sum(check.passed for check in self.checks)
        verdict = "passed" if self.passed else "FAILED"
        return f"smoke checks {verdict}: {good}/{len(self.checks)} in {self.seconds:.1f} s (bound {self.timeout:g} s)"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SmokeReport:
        checks = tuple(CheckResult(**check) for check in data.get("checks") or ())
        fields_ = {k: data[k] for k in ("stage", "target", "url", "seconds", "timeout", "started_at") if k in data}
        return cls(checks=checks, purpose=data.get("purpose", "release"), **fields_)


def run_checks(checks: Sequence[Check], ctx: Context, *, timeout: float, request_timeout: float = 10.0,
               sleep: Callable[[float], None] = time.sleep, purpose: str = "release") -> SmokeReport:
    """Run every check; run the failing ones again, with backoff (0.25 s doubling to 4 s),
    until all pass or the next round would start after `timeout` seconds. Each try is
    bounded by the time left (and `request_timeout`), so the run ends within the bound plus
    one control-plane call at most. Never raises for a failing check."""
    import tenacity

    names = [check.name for check in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"smoke check names must be unique: {names}")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    deadline = started + timeout
    last: dict[str, Attempt] = {}
    tries: dict[str, int] = dict.fromkeys(names, 0)
    spent: dict[str, float] = dict.fromkeys(names, 0.0)

    def one_round() -> list[Check]:
        failing = []
        for check in checks:
            if check.name in last and last[check.name].passed:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                last.setdefault(check.name, Attempt(False, f"not tried: the {timeout:g} s bound ran out"))
                failing.append(check)
                continue
            began = time.monotonic()
            last[check.name] = check.attempt(ctx, min(request_timeout, left))
            tries[check.name] += 1
            spent[check.name] += time.monotonic() - began
            if not last[check.name].passed:
                failing.append(check)
        return failing

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=BACKOFF_FIRST, min=BACKOFF_FIRST, max=BACKOFF_MAX),
        retry=tenacity.retry_if_result(bool),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
    )
    retrying(one_round)
    results = []
    for check in checks:
        attempt = last[check.name]
        message = attempt.message
        if not attempt.passed and tries[check.name] > 1:
            message += f" (after {tries[check.name]} tries in {timeout:g} s)"
        results.append(CheckResult(check.name, check.kind, attempt.passed, message, tries[check.name],
                                   round(spent[check.name], 3), attempt.latency_ms, attempt.status))
    return SmokeReport(ctx.deployed.stage, ctx.deployed.target, ctx.deployed.invoke_url, tuple(results),
                       round(time.monotonic() - started, 3), timeout, started_at, purpose)


def verify(stage: Stage, deployed: Deployed, *, aws: Any, settings: SmokeSettings | None = None,
           http: Any = None, sleep: Callable[[float], None] = time.sleep, purpose: str = "release",
           report: Callable[[SmokeReport], None] | None = None) -> SmokeReport:
    """Run `stage`'s smoke checks against `deployed` and hand the report to `report`.

    The one entry point for "check this stage and say how it went" (`orch apply`, `orch
    smoke`, `orch rollback`, and a code-only release such as `orch sync`, which passes a
    Deployed whose `function_version`/`package_sha256` it published itself). `aws` is an
    orch.aws.Aws for the stage's control plane, built with `client_config=CONTROL_CLIENT_CONFIG`
    so its calls end within the bound; `settings` default to the stage's `smoke:`.
    """
    import urllib3

    settings = settings or stage.config.smoke
    ctx = Context(deployed, aws, http or urllib3.PoolManager(num_pools=4, retries=False))
    result = run_checks(build_checks(stage, deployed, settings), ctx, timeout=timeout_for(settings, deployed.target),
                        request_timeout=settings.request_timeout, sleep=sleep, purpose=purpose)
    if report is not None:
        report(result)
    return result


# ---------------------------------------------------------------------------- renderings


def table_lines(report: SmokeReport, *, width: int = 110) -> list[str]:
    """The report as a table (rich), one string per line, without colour."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    title = f"smoke checks of stage {report.stage} ({report.target})"
    if report.purpose == "rollback":
        title += " after the rollback"
    table = Table(title=title, title_justify="left", expand=False, box=box.SIMPLE_HEAD)
    for column in ("", "check", "kind", "tries", "result"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row("ok" if check.passed else "FAIL", check.name, check.kind, str(check.attempts), check.message)
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False, legacy_windows=False).print(table)
    return [*(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines()), report.summary()]


def to_json(report: SmokeReport) -> str:
    """The report for scripts: `{"stage", "target", "url", "passed", "checks": [...], ...}`."""
    return json.dumps(report.as_dict(), indent=2)


def write_junit(reports: Sequence[SmokeReport], path: Path) -> None:
    """A JUnit XML file: one testsuite per report, one testcase per check (a failure
    element with the check's message when it failed), written with junitparser; registered
    secrets are masked (orch.redact) before anything reaches the file."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    from orch.redact import redact

    xml = JUnitXml("orch smoke")
    for report in reports:
        suite = TestSuite(f"orch smoke {report.stage} ({report.target}, {report.purpose})")
        suite.timestamp = report.started_at
        for check in report.checks:
            case = TestCase(redact(check.name), classname=f"orch.smoke.{report.stage}.{check.kind}",
                            time=check.seconds)
            if not check.passed:
                case.result = [Failure(redact(check.message))]
            suite.add_testcase(case)
        xml.add_testsuite(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
