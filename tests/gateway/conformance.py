"""The generic conformance runner: every case in ``ORCH_CONFORMANCE_DIR`` through the real gateway.

A case file (``../shared/conformance/apigw/case_N.json``, recorded on real AWS) carries a
machine-readable setup: its ``apigateway`` block is replayed on a real moto server with boto3
exactly as the folder's README says, its ``lambda`` functions become real handler code that the
gateway's real workers run, its ``http_backends`` are served on loopback and its
``aws_resources`` (SQS queues) are created in moto. Its recorded invocations are then sent
through the real gateway with python-requests (the recorder's own client) and compared as the
README's "Comparing" section says. This module must not know any case by number: everything
a case needs comes from its file. The case files are read in place, never copied.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO.parent / "shared" / "conformance"

# README, "Comparing": the global ignore set (case-insensitive) and its prefixes.
IGNORED_KEYS = frozenset(
    key.lower()
    for key in (
        "requestId extendedRequestId requestTime requestTimeEpoch deploymentId resourceId "
        "domainName domainPrefix apiId accountId sourceIp Host Via X-Cache X-Amzn-Trace-Id "
        "X-Forwarded-For X-Forwarded-Port X-Forwarded-Proto Accept-Encoding Date Content-Length "
        "Server x-amz-apigw-id x-amzn-RequestId x-amzn-Remapped-Date MessageId ReceiptHandle "
        "MD5OfBody"
    ).split()
)
IGNORED_PREFIXES = ("cloudfront-", "x-amz-cf-")
PLACEHOLDER = re.compile(r"^<[^<>]+>$")
SETUP_PLACEHOLDER = re.compile(
    r"<(lambda|lambda-name|region|account|role-arn|request-validator|http|sqs-queue-name|"
    r"sqs-queue-url)(?::([^<>]+))?>"
)
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RUNS = itertools.count(1)  # a case built twice in one moto gets new function and queue names


def conformance_dir() -> Path:
    """``ORCH_CONFORMANCE_DIR`` (default ``../shared/conformance`` beside the repo)."""
    configured = os.environ.get("ORCH_CONFORMANCE_DIR")
    return Path(configured) if configured else DEFAULT_DIR


def case_files(folder: Path) -> list[Path]:
    """The case files under ``<folder>/apigw``, in case-number order."""
    found = list((folder / "apigw").glob("case_*.json"))

    def number(path: Path) -> tuple[int, str]:
        digits = path.stem.rpartition("_")[2]
        return (int(digits) if digits.isdigit() else 1 << 30, path.stem)

    return sorted(found, key=number)


# --- comparing -------------------------------------------------------------------------


def json_path(parent: str, key: str | int) -> str:
    """``$.a``, ``$['x-y']``, ``$[0]``: a JSONPath to a member, readable in a report."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _SIMPLE_KEY.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


def normalise(value: Any, *, in_list: bool = False) -> Any:
    """What the recorder stored: strings starting with '{' that parse as JSON become the parsed
    value (recursively), except strings directly inside lists."""
    if isinstance(value, str) and not in_list and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return normalise(parsed)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, in_list=True) for v in value]
    return value


@dataclass(frozen=True)
class Ignore:
    """The keys a case ignores: the global set plus ``ignore_keys`` minus ``also_check_keys``."""

    extra: frozenset[str] = frozenset()
    checked: frozenset[str] = frozenset()

    @classmethod
    def for_case(cls, compare: dict[str, Any]) -> Ignore:
        return cls(
            frozenset(k.lower() for k in compare.get("ignore_keys") or ()),
            frozenset(k.lower() for k in compare.get("also_check_keys") or ()),
        )

    def __call__(self, key: str) -> bool:
        lowered = key.lower()
        if lowered in self.checked:
            return False
        return lowered in IGNORED_KEYS or lowered in self.extra or lowered.startswith(IGNORED_PREFIXES)


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    return type(expected) is type(actual) and expected == actual


def diff(
    expected: Any,
    actual: Any,
    path: str = "$",
    *,
    ignore: Callable[[str], bool] = Ignore(),
    ordered_under: frozenset[str] = frozenset(),
    ordered: bool = False,
) -> list[str]:
    """Every difference as ``<JSONPath>: <what>``; placeholders match anything, ignored keys are
    dropped from both sides, key order counts only under the ``ordered_under`` members."""
    if isinstance(expected, str) and PLACEHOLDER.match(expected):
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {_short(actual)}"]
        exp_keys = [k for k in expected if not ignore(k)]
        act_keys = [k for k in actual if not ignore(k)]
        problems = []
        for key in exp_keys:
            if key not in actual:
                problems.append(f"{json_path(path, key)}: missing (expected {_short(expected[key])})")
        for key in act_keys:
            if key not in expected:
                problems.append(f"{json_path(path, key)}: unexpected (got {_short(actual[key])})")
        if ordered and not problems and exp_keys != act_keys:
            problems.append(f"{path}: key order {act_keys} (expected {exp_keys})")
        for key in exp_keys:
            if key in actual:
                problems += diff(
                    expected[key],
                    actual[key],
                    json_path(path, key),
                    ignore=ignore,
                    ordered_under=ordered_under,
                    ordered=ordered or key in ordered_under,
                )
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {_short(actual)}"]
        if len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {len(actual)}: {_short(actual)}"]
        problems = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems += diff(
                e, a, json_path(path, index), ignore=ignore, ordered_under=ordered_under, ordered=ordered
            )
        return problems
    if not _same_scalar(expected, actual):
        return [f"{path}: expected {_short(expected)}, got {_short(actual)}"]
    return []


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --- the functions ---------------------------------------------------------------------

HANDLER_SOURCE = '''\
"""A conformance-case function: behaves as the case's `lambda` block says (spec.json)."""
import base64
import builtins
import json
import os

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "spec.json")) as _f:
    SPEC = json.load(_f)


def _error_class(name):
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return type(name, (Exception,), {})


def _select_key(event, by):
    value = event
    for step in by.lstrip("$").split(".")[1:]:
        value = value.get(step) if isinstance(value, dict) else None
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def run(spec, event):
    kind = spec["kind"]
    if kind == "echo":
        return event
    if kind == "proxy_echo":
        return {"statusCode": 200, "body": json.dumps(event), "isBase64Encoded": False}
    if kind == "return":
        return spec["value"]
    if kind == "raise":
        raise _error_class(spec["errorType"])(spec["errorMessage"])
    if kind == "from_body":
        body = event["body"]
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body)
        return json.loads(body)
    if kind == "select":
        chosen = spec["cases"].get(_select_key(event, spec["by"]), spec.get("default"))
        if chosen is None:
            raise KeyError("no case for this event and no default")
        return run(chosen, event)
    raise ValueError("unknown kind " + repr(kind))


def handler(event, context):
    return run(SPEC, event)
'''


def function_files(spec: dict[str, Any]) -> dict[str, str]:
    """The deployment package of one case function: the generic handler and its spec."""
    clean = {k: v for k, v in spec.items() if k not in ("source", "notes", "runtime_recorded")}
    return {"handler.py": HANDLER_SOURCE, "spec.json": json.dumps(clean, indent=1)}


# --- HTTP backends ---------------------------------------------------------------------


class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "echo_body"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.kind == "httpbin_post":
            text = data.decode("utf-8", errors="replace")
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            body = json.dumps(
                {
                    "args": {},
                    "data": text,
                    "headers": dict(self.headers.items()),
                    "json": parsed,
                    "url": f"http://{self.headers.get('Host', '')}{self.path}",
                }
            ).encode()
        else:
            body = data
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer


class HttpBackends:
    """One loopback server per backend kind; ``url(kind)`` is its base URL."""

    KINDS = ("httpbin_post", "echo_body")

    def __init__(self) -> None:
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    def url(self, kind: str) -> str:
        if kind not in self.KINDS:
            raise ValueError(f"unknown http_backends kind {kind!r}")
        server = self._servers.get(kind)
        if server is None:
            handler = type(f"Backend_{kind}", (_BackendHandler,), {"kind": kind})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._servers[kind] = server
            self._threads.append(thread)
        host, port = server.server_address[:2]
        return f"http://{host}:{port}/{kind}"

    def close(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)


# --- one case --------------------------------------------------------------------------


@dataclass
class CaseResult:
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class Environment:
    """What every case shares: the moto clients, the gateway, the project's package store."""

    aws: Any  # tests.gateway.conftest.Aws
    gateway_url: str
    project_dir: Path
    region: str
    backends: HttpBackends


class CaseRunner:
    """Builds one case's API and functions, sends its invocations, compares the answers."""

    def __init__(self, env: Environment, path: Path) -> None:
        self.env = env
        self.path = path
        self.name = path.stem
        self.case = json.loads(path.read_text())
        self.functions: dict[str, dict[str, str]] = {}
        self.validators: dict[str, str] = {}
        self.queues: dict[str, str] = {}
        self.backend_urls: dict[str, str] = {}
        self.api_id = ""
        self.stage = ""
        self.prefix = f"conf{next(_RUNS)}-{self.name.replace('_', '-')}"

    # setup
    def setup(self) -> None:
        case = self.case
        for name, spec in (case.get("lambda") or {}).items():
            self.functions[name] = self._deploy_function(name, spec)
        for name, spec in (case.get("http_backends") or {}).items():
            self.backend_urls[name] = self.env.backends.url(spec["kind"])
        for name in (case.get("aws_resources") or {}).get("sqs_queues", []):
            queue_name = f"{self.prefix}-{name}"
            self.queues[name] = self.env.aws.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        self._build_api(case["apigateway"])

    def _deploy_function(self, name: str, spec: dict[str, Any]) -> dict[str, str]:
        from tests.gateway.conftest import deploy_function

        function_name = f"{self.prefix}-{name.replace('_', '-')}"
        arn = deploy_function(self.env.aws, self.env.project_dir, function_name, function_files(spec), timeout=30)
        return {"name": function_name, "arn": arn}

    def _placeholder(self, match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        env = self.env
        account = self.env.aws.role_arn.split(":")[4]
        if kind == "lambda":
            arn = self.functions[name]["arn"]
            return f"arn:aws:apigateway:{env.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        if kind == "lambda-name":
            return self.functions[name]["name"]
        if kind == "region":
            return env.region
        if kind == "account":
            return account
        if kind == "role-arn":
            return env.aws.role_arn
        if kind == "request-validator":
            return self.validators[name]
        if kind == "http":
            return self.backend_urls[name]
        if kind == "sqs-queue-url":
            return self.queues[name]
        if kind == "sqs-queue-name":
            return self.queues[name].rstrip("/").rsplit("/", 1)[1]
        raise KeyError(match.group(0))

    def _fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return SETUP_PLACEHOLDER.sub(self._placeholder, value)
        if isinstance(value, dict):
            return {k: self._fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v) for v in value]
        return value

    def _build_api(self, block: dict[str, Any]) -> None:
        apigw = self.env.aws.apigw
        api_id = apigw.create_rest_api(**self._fill(block["rest_api"]))["id"]
        self.api_id = api_id
        for media_type in block.get("binary_media_types") or ():
            escaped = media_type.replace("~", "~0").replace("/", "~1")
            apigw.update_rest_api(
                restApiId=api_id,
                patchOperations=[
                    {"op": "add", "path": "/binaryMediaTypes/" + escaped, "value": media_type}
                ],
            )
        for model in block.get("models") or ():
            apigw.create_model(restApiId=api_id, **self._fill(model))
        for validator in block.get("request_validators") or ():
            created = apigw.create_request_validator(restApiId=api_id, **self._fill(validator))
            self.validators[validator["name"]] = created["id"]
        ids = {"/": next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")}
        for resource in block.get("resources") or ():
            resource_id = self._resource(api_id, resource["path"], ids)
            for method in resource.get("methods") or ():
                method = self._fill(method)
                common = {"restApiId": api_id, "resourceId": resource_id}
                apigw.put_method(**common, **method["put_method"])
                for item in method.get("put_method_response") or ():
                    apigw.put_method_response(**common, **item)
                apigw.put_integration(**common, **method["put_integration"])
                for item in method.get("put_integration_response") or ():
                    apigw.put_integration_response(**common, **item)
        for item in block.get("gateway_responses") or ():
            apigw.put_gateway_response(restApiId=api_id, **self._fill(item))
        stage = self._fill(block["stage"])
        self.stage = stage["stageName"]
        kwargs: dict[str, Any] = {"restApiId": api_id, "stageName": self.stage}
        if stage.get("variables"):
            kwargs["variables"] = stage["variables"]
        apigw.create_deployment(**kwargs)

    def _resource(self, api_id: str, path: str, ids: dict[str, str]) -> str:
        current = ""
        for part in [p for p in path.split("/") if p]:
            parent = ids[current or "/"]
            current = f"{current}/{part}"
            if current not in ids:
                ids[current] = self.env.aws.apigw.create_resource(
                    restApiId=api_id, parentId=parent, pathPart=part
                )["id"]
        return ids[current or "/"]

    # invocations
    def url(self, recorded_path: str, query: str) -> str:
        """``/stage/a`` -> ``<gateway>/restapis/<id>/stage/_user_request_/a``; a doubled leading
        slash before the stage stays doubled, slashes after it stay as written."""
        match = re.match(rf"^(/+){re.escape(self.stage)}(?=/|$)(.*)$", recorded_path)
        if match is None:
            raise ValueError(f"invocation path {recorded_path!r} does not start with the stage")
        leading = match.group(1)
        url = f"{self.env.gateway_url}{leading}restapis/{self.api_id}/{self.stage}/_user_request_{match.group(2)}"
        return f"{url}?{query}" if query else url

    def send(self, invocation: dict[str, Any]) -> requests.Response:
        headers = {k: v for k, v in (invocation.get("headers") or {}).items() if not k.startswith("_")}
        query = invocation.get("query_on_wire_derived", invocation.get("query") or "")
        body = invocation.get("body")
        with requests.Session() as session:  # python-requests' defaults, as the recorder had
            return session.request(
                invocation["method"],
                self.url(invocation["path"], query),
                headers=headers,
                data=body.encode() if body is not None else None,
                timeout=60,
            )

    def view(self, spec: Any, response: requests.Response) -> Any:
        """The README's ``view`` directives evaluated on one HTTP response."""
        if isinstance(spec, dict):
            return {k: self.view(v, response) for k, v in spec.items()}
        if isinstance(spec, list):
            return [self.view(v, response) for v in spec]
        if not isinstance(spec, str) or not spec.startswith("$"):
            return spec
        data = response.content
        if spec == "$status":
            return response.status_code
        if spec == "$body.json":
            return json.loads(data)
        if spec == "$body.text":
            return data.decode("utf-8")
        if spec == "$body.json_or_text":
            try:
                return json.loads(data)
            except ValueError:
                return data.decode("utf-8")
        if spec == "$body.bytes_repr":
            return repr(data)
        if spec == "$body.base64":
            return base64.b64encode(data).decode()
        if spec in ("$headers", "$headers.lower"):
            raw = response.raw.headers
            names = list(dict.fromkeys(raw.keys()))
            out = {name: raw[name] for name in names}
            return {k.lower(): v for k, v in out.items()} if spec == "$headers.lower" else out
        if spec.startswith("$header:"):
            return response.headers.get(spec[len("$header:") :])
        if spec.startswith("$body.json:"):
            value: Any = json.loads(data)
            for step in spec[len("$body.json:") :].split("."):
                if isinstance(value, dict):
                    value = value.get(step)
                elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
                    value = value[int(step)]
                else:
                    value = None
            return value
        if spec.startswith("$sqs:"):
            queue_url = self.queues[spec[len("$sqs:") :]]
            received = self.env.aws.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            return [{k: m.get(k) for k in ("MessageId", "ReceiptHandle", "MD5OfBody", "Body")} for m in received]
        raise ValueError(f"unknown view directive {spec!r}")

    def check(self, invocation: dict[str, Any], response: requests.Response) -> list[str]:
        key = invocation["snapshot_key"]
        where = key + "".join(f"/{p}" for p in invocation.get("snapshot_path") or ())
        problems = []
        wanted = invocation.get("status")
        got = response.status_code
        if (
            (isinstance(wanted, int) and got != wanted)
            or (wanted == "ok" and got >= 400)
            or (wanted == "error" and got < 400)
        ):
            problems.append(f"{where}: status {got} (expected {wanted}); body {_short(response.content)}")
        try:
            actual = normalise(self.view(invocation["view"], response))
        except (ValueError, UnicodeDecodeError) as exc:
            return [*problems, f"{where}: the view {invocation['view']!r} failed: {exc}"]
        expected: Any = self.case["expected"]["by_snapshot_key"][key]
        for step in invocation.get("snapshot_path") or ():
            expected = expected[step]
        compare = self.case.get("compare") or {}
        problems += [
            f"{where}: {line}"
            for line in diff(
                expected,
                actual,
                ignore=Ignore.for_case(compare),
                ordered_under=frozenset(compare.get("ordered_keys_under") or ()),
            )
        ]
        for assertion in invocation.get("assertions") or ():
            problems += self._assert(where, assertion, response)
        return problems

    def _assert(self, where: str, assertion: dict[str, Any], response: requests.Response) -> list[str]:
        value = self.view(assertion["view"], response)
        op, wanted = assertion["op"], assertion["value"]
        if op == "equals":
            ok = value == wanted and type(value) is type(wanted)
        elif op == "contains":
            ok = isinstance(value, str) and wanted in value
        elif op == "not_contains":
            ok = isinstance(value, str) and wanted not in value
        elif op == "matches":
            ok = isinstance(value, str) and re.search(wanted, value) is not None
        else:
            return [f"{where}: unknown assertion op {op!r}"]
        if ok:
            return []
        return [f"{where}: assertion {assertion['view']} {op} {_short(wanted)} failed (got {_short(value)})"]

    def run(self) -> CaseResult:
        result = CaseResult(self.name)
        try:
            self.setup()
        except Exception as exc:  # a case that cannot be built is a failing case, named
            result.problems.append(f"setup failed: {type(exc).__name__}: {exc}")
            return result
        for invocation in self.case["request"]["invocations"]:
            try:
                response = self.send(invocation)
            except requests.RequestException as exc:
                result.problems.append(f"{invocation['snapshot_key']}: request failed: {exc}")
                continue
            result.problems += self.check(invocation, response)
        return result


def run_cases(env: Environment, paths: list[Path]) -> Iterator[CaseResult]:
    for path in paths:
        yield CaseRunner(env, path).run()


def report(results: list[CaseResult]) -> str:
    """``N/M cases pass`` and, for each failing case, the JSON path of every difference."""
    passing = sum(1 for r in results if r.passed)
    lines = [f"API Gateway conformance: {passing}/{len(results)} cases pass"]
    for result in results:
        if not result.passed:
            lines.append(f"{result.name}: FAIL")
            lines.extend(f"  {problem}" for problem in result.problems)
    return "\n".join(lines)
