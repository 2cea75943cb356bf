"""The local gateway against API Gateway recordings made on real AWS (../shared/conformance).

Each case is set up as its ``setup`` describes in a real moto server, its recorded requests
go through the real HTTP server with ``requests``, and the result is compared with
``expected.by_snapshot_key`` as parsed JSON, skipping volatile fields (README + notes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.gateway.conftest import (
    ECHO_HANDLER,
    MAPPING_RESPONSES_HANDLER,
    PROXY_ECHO_HANDLER,
    REGION,
    invoke_url,
    lambda_uri,
)

from orch.gateway.generation import Generation
from orch.gateway.model import ApiRegistry, load_api
from orch.sandbox import generation_path, mark_changed

pytestmark = pytest.mark.conformance

# Volatile per README ("always ignore") and the cases' notes.ignore lists.
IGNORED_KEYS = {
    k.lower()
    for k in (
        "requestId",
        "extendedRequestId",
        "requestTime",
        "requestTimeEpoch",
        "deploymentId",
        "resourceId",
        "domainName",
        "domainPrefix",
        "apiId",
        "accountId",
        "sourceIp",
        "Host",
        "Via",
        "X-Amz-Cf-Id",
        "X-Cache",
        "X-Amzn-Trace-Id",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "Accept-Encoding",
        "Date",
        "Content-Length",
        "Server",
        "x-amz-apigw-id",
        "x-amzn-RequestId",
        "x-amzn-Remapped-Date",
        "MessageId",
        "ReceiptHandle",
        "MD5OfBody",
    )
}
IGNORED_PREFIXES = ("cloudfront-", "x-amz-cf-")
PLACEHOLDER = re.compile(r"^<[^<>]+>$")
RESULTS: dict[str, bool] = {}


def _ignored(key: str) -> bool:
    lowered = key.lower()
    return lowered in IGNORED_KEYS or lowered.startswith(IGNORED_PREFIXES)


def _parse_like_snapshot(value: Any) -> Any:
    """localstack-snapshot parses strings that start with '{' as JSON; do the same."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return _parse_like_snapshot(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _parse_like_snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parse_like_snapshot(v) for v in value]
    return value


def diff(expected: Any, actual: Any, path: str = "$", *, ordered: bool = False) -> list[str]:
    """Differences, skipping ignored keys and placeholder values; key order when ordered."""
    if isinstance(expected, str) and PLACEHOLDER.match(expected):
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        exp_keys = [k for k in expected if not _ignored(k)]
        act_keys = [k for k in actual if not _ignored(k)]
        problems = []
        missing = [k for k in exp_keys if k not in actual]
        extra = [k for k in act_keys if k not in expected]
        if missing:
            problems.append(f"{path}: missing keys {missing}")
        if extra:
            problems.append(f"{path}: unexpected keys {extra}")
        if ordered and not missing and not extra and exp_keys != act_keys:
            problems.append(f"{path}: key order {act_keys} != {exp_keys}")
        for key in exp_keys:
            if key in actual:
                problems += diff(expected[key], actual[key], f"{path}.{key}", ordered=ordered)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        problems = []
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems += diff(e, a, f"{path}[{index}]", ordered=ordered)
        return problems
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def load_case(conformance_dir: Path, name: str) -> dict:
    return json.loads((conformance_dir / f"{name}.json").read_text())


def url_for(server: Any, api_id: str, stage: str, recorded_path: str, query: str) -> str:
    """'/api/test' -> <invoke url>/test; '//stage/x' keeps the extra leading slash."""
    match = re.match(rf"^(/+){re.escape(stage)}(.*)$", recorded_path)
    assert match, recorded_path
    base = invoke_url(server, api_id, stage)
    extra = "/" * (len(match.group(1)) - 1)
    if extra:
        base = base.replace("/restapis/", f"/{extra}restapis/", 1)
    url = base + match.group(2)
    return f"{url}?{query}" if query else url


def send(server: Any, api_id: str, stage: str, invocation: dict) -> requests.Response:
    headers = {k: v for k, v in (invocation.get("headers") or {}).items() if not k.startswith("_")}
    query = invocation.get("query_on_wire_derived", invocation.get("query") or "")
    body = invocation.get("body")
    return requests.request(
        invocation["method"],
        url_for(server, api_id, stage, invocation["path"], query),
        headers=headers,
        data=body.encode() if body is not None else None,
        timeout=30,
    )


def new_api(aws: Any, name: str) -> tuple[str, str]:
    api = aws.apigw.create_rest_api(name=name)
    root = aws.apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
    return api["id"], root


def add_resource(aws: Any, api_id: str, parent: str, part: str) -> str:
    return aws.apigw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]


def check(case: str, problems: list[str]) -> None:
    RESULTS[case] = RESULTS.get(case, True) and not problems
    assert not problems, "\n".join(problems)


# --- the six cases ---------------------------------------------------------------------


def test_case_1_query_param_template(conformance_dir, aws, make_function, gateway_server):
    case = load_case(conformance_dir, "case_1")
    setup = case["setup"]
    fn = make_function(ECHO_HANDLER)
    api_id, root = new_api(aws, "case1")
    res = add_resource(aws, api_id, root, "test")
    aws.apigw.put_method(
        restApiId=api_id,
        resourceId=res,
        httpMethod="GET",
        authorizationType="NONE",
        requestParameters=setup["method"]["requestParameters"],
    )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=res,
        httpMethod="GET",
        type="AWS",
        integrationHttpMethod="POST",
        uri=lambda_uri(fn),
        requestTemplates={"application/json": case["template"]},
    )
    aws.apigw.put_integration_response(
        restApiId=api_id, resourceId=res, httpMethod="GET", statusCode="200", selectionPattern=""
    )
    aws.apigw.put_method_response(
        restApiId=api_id, resourceId=res, httpMethod="GET", statusCode="200"
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName=case["request"]["stage"])
    problems = []
    for invocation in case["request"]["invocations"]:
        response = send(gateway_server, api_id, case["request"]["stage"], invocation)
        key = invocation["snapshot_key"]
        if response.status_code != case["expected"]["status_code"]:
            problems.append(f"{key}: status {response.status_code}: {response.text}")
            continue
        problems += diff(case["expected"]["by_snapshot_key"][key], response.json(), key)
    check("case_1", problems)


def test_case_2_header_params_and_remapping(conformance_dir, aws, make_function, gateway_server):
    case = load_case(conformance_dir, "case_2")
    setup = case["setup"]
    stage = case["request"]["stage"]
    fn = make_function(PROXY_ECHO_HANDLER)
    api_id, root = new_api(aws, "case2")
    method_params = setup["method_all_resources"]["requestParameters"]
    method_response_params = setup["method_response_all_resources"]["responseParameters"]
    routes = {"no-param": None, "full": None}
    for invocation in case["request"]["invocations"][2:]:
        target, _, value = invocation["mapping"].partition(" = ")
        routes[invocation["path"].rsplit("/", 1)[1]] = {target: json.loads(value)}
    for part, mapping in routes.items():
        res = add_resource(aws, api_id, root, part)
        aws.apigw.put_method(
            restApiId=api_id,
            resourceId=res,
            httpMethod="GET",
            authorizationType="NONE",
            requestParameters=method_params,
        )
        aws.apigw.put_method_response(
            restApiId=api_id,
            resourceId=res,
            httpMethod="GET",
            statusCode="200",
            responseParameters=method_response_params,
        )
        integration: dict[str, Any] = {
            "type": "AWS",
            "integrationHttpMethod": "POST",
            "uri": lambda_uri(fn),
        }
        response_params = {}
        if part == "full":
            integration["requestParameters"] = setup["integration_full"]["requestParameters"]
            integration["requestTemplates"] = {"application/json": case["template"]}
            response_params = setup["integration_response_full"]["responseParameters"]
        elif mapping:
            integration["requestParameters"] = mapping
        aws.apigw.put_integration(restApiId=api_id, resourceId=res, httpMethod="GET", **integration)
        aws.apigw.put_integration_response(
            restApiId=api_id,
            resourceId=res,
            httpMethod="GET",
            statusCode="200",
            responseParameters=response_params,
        )
    aws.apigw.create_deployment(restApiId=api_id, stageName=stage)

    problems = []
    for invocation in case["request"]["invocations"]:
        key = invocation["snapshot_key"]
        expected = case["expected"]["by_snapshot_key"][key]
        response = send(gateway_server, api_id, stage, invocation)
        actual: dict[str, Any] = {
            "response-headers": dict(response.raw.headers.items()),
        }
        data = response.json()
        if "headers" in expected:
            actual["body"] = json.loads(data["body"]) if "body" in data else data
            actual["headers"] = data.get("headers")
        else:
            actual["body"] = data
        problems += diff(expected, actual, key)
    check("case_2", problems)


def test_case_3_context_and_response_override(conformance_dir, aws, make_function, gateway_server):
    case = load_case(conformance_dir, "case_3")
    stage = case["request"]["stage"]
    fn = make_function(MAPPING_RESPONSES_HANDLER)
    api_id, root = new_api(aws, "case3")
    res = add_resource(aws, api_id, root, "test")
    aws.apigw.put_method(
        restApiId=api_id, resourceId=res, httpMethod="POST", authorizationType="NONE"
    )
    for status in case["setup"]["method_responses"]:
        aws.apigw.put_method_response(
            restApiId=api_id, resourceId=res, httpMethod="POST", statusCode=status
        )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=res,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri=lambda_uri(fn),
        requestTemplates={"application/json": case["template"]["request"]},
    )
    aws.apigw.put_integration_response(
        restApiId=api_id,
        resourceId=res,
        httpMethod="POST",
        statusCode="200",
        selectionPattern="",
        responseTemplates={"application/json": case["template"]["response"]},
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName=stage)
    problems = []
    for invocation in case["request"]["invocations"]:
        key = invocation["snapshot_key"]
        response = send(gateway_server, api_id, stage, invocation)
        actual = {"statusCode": response.status_code, "body": response.json()}
        problems += diff(case["expected"]["by_snapshot_key"][key], actual, key)
    check("case_3", problems)


def test_case_4_full_context_into_sqs(conformance_dir, aws, gateway_server):
    case = load_case(conformance_dir, "case_4")
    setup = case["setup"]
    stage = case["request"]["stage"]
    queue_url = aws.sqs.create_queue(QueueName="orch-case4")["QueueUrl"]
    account = queue_url.rstrip("/").split("/")[-2]
    api_id, root = new_api(aws, "case4")
    res = add_resource(aws, api_id, root, "sqs")
    aws.apigw.put_method(
        restApiId=api_id, resourceId=res, httpMethod="POST", authorizationType="NONE"
    )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=res,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:sqs:path/{account}/orch-case4",
        requestParameters=setup["integration"]["requestParameters"],
        requestTemplates={"application/json": case["template"].replace("<queue-url>", queue_url)},
        passthroughBehavior="NEVER",
    )
    for item in setup["integration_responses"]:
        aws.apigw.put_method_response(
            restApiId=api_id, resourceId=res, httpMethod="POST", statusCode=item["statusCode"]
        )
        aws.apigw.put_integration_response(
            restApiId=api_id,
            resourceId=res,
            httpMethod="POST",
            statusCode=item["statusCode"],
            selectionPattern=item.get("selectionPattern", ""),
            responseTemplates=item["responseTemplates"],
        )
    aws.apigw.create_deployment(restApiId=api_id, stageName=stage)
    invocation = case["request"]["invocations"][0]
    response = send(gateway_server, api_id, stage, invocation)
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "great success!"}
    messages = aws.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages", [])
    expected = case["expected"]["by_snapshot_key"][invocation["snapshot_key"]]
    # moto may add keys the recording's receive call did not ask for; compare the recorded ones
    actual = [_parse_like_snapshot({k: m.get(k) for k in expected[0]}) for m in messages]
    # Body was a JSON string at record time: AWS's key order is kept, so compare it too.
    check("case_4", diff(expected, actual, "sqs-messages", ordered=True))


def _proxy_api(aws: Any, fn: str, name: str, parts: list[str]) -> str:
    api_id, root = new_api(aws, name)
    for part in parts:
        res = add_resource(aws, api_id, root, part)
        aws.apigw.put_method(
            restApiId=api_id, resourceId=res, httpMethod="ANY", authorizationType="NONE"
        )
        aws.apigw.put_integration(
            restApiId=api_id,
            resourceId=res,
            httpMethod="ANY",
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=lambda_uri(fn),
        )
    return api_id


def test_case_5_proxy_event(conformance_dir, aws, make_function, gateway_server):
    case = load_case(conformance_dir, "case_5")
    stage = case["request"]["stage"]
    fn = make_function(PROXY_ECHO_HANDLER)
    api_id = _proxy_api(aws, fn, "case5", ["{proxy+}", "hardcoded"])
    aws.apigw.create_deployment(restApiId=api_id, stageName=stage)
    problems = []
    for invocation in case["request"]["invocations"]:
        key = invocation["snapshot_key"]
        response = send(gateway_server, api_id, stage, invocation)
        if response.status_code != 200:
            problems.append(f"{key}: status {response.status_code}: {response.text}")
            continue
        event = _parse_like_snapshot(response.json())
        problems += diff(case["expected"]["by_snapshot_key"][key], event, key)
    check("case_5", problems)


def test_case_6_proxy_path_variable(conformance_dir, aws, make_function, gateway_server):
    case = load_case(conformance_dir, "case_6")
    setup = case["setup"]
    stage = case["request"]["stage"]
    fn = make_function(PROXY_ECHO_HANDLER)
    api_id, root = new_api(aws, "case6")
    res = add_resource(aws, api_id, root, "{pathVariable}")
    aws.apigw.put_method(
        restApiId=api_id,
        resourceId=res,
        httpMethod="ANY",
        authorizationType="NONE",
        requestParameters=setup["method"]["requestParameters"],
    )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=res,
        httpMethod="ANY",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=lambda_uri(fn),
        requestParameters=setup["integration"]["requestParameters"],
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName=stage)
    invocation = case["request"]["invocations"][0]
    key = invocation["snapshot_key"]
    response = send(gateway_server, api_id, stage, invocation)
    actual = {
        "content": _parse_like_snapshot(response.json()),
        "status_code": response.status_code,
    }
    check("case_6", diff(case["expected"]["by_snapshot_key"][key], actual, key))


def test_zz_conformance_summary(conformance_dir, capsys):
    """Prints how many of the six recorded cases pass (run last in this module)."""
    passing = sorted(k for k, ok in RESULTS.items() if ok)
    with capsys.disabled():
        print(f"\nAPI Gateway conformance: {len(passing)}/6 cases pass ({', '.join(passing)})")
    assert set(RESULTS) <= {f"case_{i}" for i in range(1, 7)}


def test_load_api_reads_what_case_6_deployed(aws, make_function):
    fn = make_function(PROXY_ECHO_HANDLER)
    api_id = _proxy_api(aws, fn, "load-check", ["{pathVariable}"])
    aws.apigw.create_deployment(restApiId=api_id, stageName="test", variables={"a": "1"})
    api = load_api(aws.apigw, aws.lambda_, api_id, "test")
    (resource,) = [r for r in api.resources if r.path == "/{pathVariable}"]
    method = resource.methods["ANY"]
    assert resource.parts == ("{pathVariable}",)
    assert method.integration.type == "AWS_PROXY"
    assert method.integration.uri == lambda_uri(fn)
    assert method.integration.timeout_ms == 29000
    assert api.stage_variables == {"a": "1"}
    assert api.deployment_id


def test_registry_picks_up_a_new_deployment(aws, make_function, project_dir):
    fn = make_function(PROXY_ECHO_HANDLER)
    api_id = _proxy_api(aws, fn, "reload-check", ["one"])
    aws.apigw.create_deployment(restApiId=api_id, stageName="dev")
    registry = ApiRegistry(
        aws.apigw, aws.lambda_, project_dir, generation=Generation(generation_path(project_dir))
    )
    first = registry.get_api(api_id, "dev")
    assert registry.get_api(api_id, "dev") is first  # same generation: no boto3 call
    root = [r for r in first.resources if r.path == "/"][0].id
    res = add_resource(aws, api_id, root, "two")
    aws.apigw.put_method(
        restApiId=api_id, resourceId=res, httpMethod="GET", authorizationType="NONE"
    )
    aws.apigw.put_integration(restApiId=api_id, resourceId=res, httpMethod="GET", type="MOCK")
    aws.apigw.create_deployment(restApiId=api_id, stageName="dev")
    assert registry.get_api(api_id, "dev") is first  # not told yet
    mark_changed(project_dir)
    second = registry.get_api(api_id, "dev")
    assert second.deployment_id != first.deployment_id
    assert "/two" in {r.path for r in second.resources}


def test_comparer_flags_real_differences_and_skips_only_volatile_fields():
    expected = {"a": "1", "requestId": "<uuid:1>", "Host": "h", "n": {"x": None, "y": "<p:1>"}}
    assert diff(expected, {"a": "1", "requestId": "r", "n": {"x": None, "y": "any"}}) == []
    assert diff(expected, {"a": "2", "n": {"x": None, "y": 1}})  # wrong value
    assert diff(expected, {"a": "1", "n": {"y": 1}})  # missing key
    assert diff(expected, {"a": "1", "b": 0, "n": {"x": None, "y": 1}})  # extra key
    assert diff({"a": 1, "b": 2}, {"b": 2, "a": 1}, ordered=True)  # AWS order matters there
