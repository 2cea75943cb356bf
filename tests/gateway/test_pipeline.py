"""The request pipeline and the HTTP server: routing, validation, mapping, errors.

Most tests run the pipeline on an in-memory DeployedApi with a fake worker pool (fast, and
each failure mode on demand); the server tests use the real HTTP server, moto and workers.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.gateway.conftest import ECHO_HANDLER, REGION, invoke_url, lambda_uri

from helpers import wait_for
from orch.gateway.events import GatewayRequest
from orch.gateway.model import (
    DeployedApi,
    FunctionRef,
    Integration,
    IntegrationResponse,
    Method,
    PackageMissing,
    Resource,
)
from orch.gateway.pipeline import MAX_BODY_BYTES, Gateway, Router
from orch.gateway.workers import InvokeResult
from orch.render import passthrough_template

FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"
URI = lambda_uri(FN_ARN)

PASSTHROUGH_TEMPLATE = passthrough_template(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Spec:
    name: str = "fn"
    version: str = "1"
    code_dir: Path = Path("/nonexistent")
    handler: str = "handler.handler"
    runtime: str = "python3.12"
    timeout: int = 10
    memory_size: int = 128
    environment: dict = None  # type: ignore[assignment]
    arn: str = FN_ARN


class FakePool:
    """Answers with whatever ``behaviour(event)`` returns; records the events it got."""

    def __init__(self, behaviour=None):
        self.behaviour = behaviour or (lambda event: InvokeResult(payload=event, error=None))
        self.events: list[bytes] = []
        self.specs: list[Any] = []

    def invoke(self, spec, event, request_id):
        self.events.append(event)
        self.specs.append(spec)
        return self.behaviour(event)


class FakeRegistry:
    def __init__(self, api, spec=None, missing_package=False):
        self.api, self.spec, self.missing_package = api, spec or Spec(), missing_package

    def get_api(self, rest_api_id, stage_name):
        from orch.gateway.model import ApiNotFound

        if (rest_api_id, stage_name) != (self.api.rest_api_id, self.api.stage_name):
            raise ApiNotFound("no such stage")
        return self.api

    def get_function(self, ref: FunctionRef):
        if self.missing_package:
            raise PackageMissing("The deployed function's package x.zip is missing")
        return self.spec


def integration(
    type_="AWS",
    templates=None,
    responses=None,
    passthrough="WHEN_NO_MATCH",
    timeout_ms=29000,
    request_parameters=None,
):
    return Integration(
        type=type_,
        uri=URI if type_ != "MOCK" else None,
        http_method="POST",
        request_templates=templates or {},
        request_parameters=request_parameters or {},
        passthrough_behavior=passthrough,
        content_handling=None,
        timeout_ms=timeout_ms,
        responses=tuple(
            responses if responses is not None else [IntegrationResponse("200", None, {}, {})]
        ),
    )


def method(verb, integ, params=None, validate=False):
    return Method(verb, "NONE", params or {}, validate, integ, {"200": {}})


def api_with(*resources):
    return DeployedApi(
        rest_api_id="api1",
        name="t",
        stage_name="dev",
        deployment_id="dep1",
        stage_variables={"env": "dev"},
        resources=tuple(resources),
        region=REGION,
        account_id="123456789012",
    )


def resource(path, methods, rid="r"):
    parts = tuple(p for p in path.split("/") if p)
    return Resource(rid + path, path, parts, {m.http_method: m for m in methods})


def request(method_="GET", path="/", query="", headers=None, body=b""):
    return GatewayRequest(
        method_, path, query, list((headers or {}).items()), body, server_port=9000
    )


def gateway(api, pool=None, **kw):
    logs: list[str] = []
    gw = Gateway(FakeRegistry(api, **kw), pool or FakePool(), log=logs.append)
    gw.logs = logs  # type: ignore[attr-defined]
    return gw


def body_of(response):
    return json.loads(response.body)


# --- routing -----------------------------------------------------------------------------


def test_router_prefers_literal_then_param_then_greedy():
    api = api_with(
        resource("/", []),
        resource("/a", []),
        resource("/a/b", []),
        resource("/a/{id}", []),
        resource("/{proxy+}", []),
    )
    router = Router(api.resources)
    assert router.match("/a/b").resource.path == "/a/b"
    found = router.match("/a/x")
    assert (found.resource.path, found.path_parameters) == ("/a/{id}", {"id": "x"})
    greedy = router.match("/a/x/y/")
    assert (greedy.resource.path, greedy.path_parameters) == ("/{proxy+}", {"proxy": "a/x/y"})
    assert router.match("/").resource.path == "/"


def test_unknown_route_and_wrong_method_are_missing_authentication_token():
    integ = integration("MOCK", templates={"application/json": '{"statusCode": 200}'})
    gw = gateway(api_with(resource("/", []), resource("/items", [method("GET", integ)])))
    for verb, path in (("GET", "/nope"), ("DELETE", "/items"), ("GET", "/")):
        response = gw.handle("api1", "dev", request(verb, path))
        assert response.status == 403
        assert body_of(response) == {"message": "Missing Authentication Token"}
    assert gw.handle("api1", "dev", request("GET", "/items")).status == 200


def test_an_unknown_routes_403_is_logged_with_the_stages_routes():
    integ = integration("MOCK", templates={"application/json": '{"statusCode": 200}'})
    lam = integration("AWS_PROXY")
    gw = gateway(api_with(resource("/", [method("POST", lam)]), resource("/items/{id}", [method("GET", integ)])))
    assert gw.handle("api1", "dev", request("GET", "/itemz/1")).status == 403
    assert gw.logs == [
        "gateway: 403 for GET /itemz/1: stage 'dev' of REST API api1 has no such route; "
        "its routes: POST /, GET /items/{id}"
    ]
    from orch.gateway.model import routes

    assert routes(gw.registry.get_api("api1", "dev")) == [
        ("POST", "/", "AWS_PROXY lambda fn:live"),
        ("GET", "/items/{id}", "MOCK"),
    ]


def test_unknown_stage_is_forbidden():
    gw = gateway(api_with(resource("/", [])))
    response = gw.handle("api1", "prod", request())
    assert (response.status, body_of(response)) == (403, {"message": "Forbidden"})


MOCK_200 = {"application/json": '{"statusCode": 200}'}


def test_any_method_catches_every_verb():
    gw = gateway(api_with(resource("/x", [method("ANY", integration("MOCK", templates=MOCK_200))])))
    for verb in ("GET", "POST", "PATCH"):
        assert gw.handle("api1", "dev", request(verb, "/x")).status == 200


def test_mock_without_a_status_code_is_500_and_a_lenient_template_is_read():
    """AWS logs "Unable to parse statusCode" and answers 500 when the MOCK request template
    gives no statusCode (none at all here); ``{statusCode: 200}`` is not JSON but works
    (case 21)."""
    gw = gateway(api_with(resource("/x", [method("GET", integration("MOCK"))])))
    response = gw.handle("api1", "dev", request("GET", "/x"))
    assert (response.status, body_of(response)) == (500, {"message": "Internal server error"})
    lenient = integration("MOCK", templates={"application/json": "{statusCode: 201}"},
                          responses=[IntegrationResponse("201", "2\\d{2}", {}, {})])
    gw = gateway(api_with(resource("/x", [method("GET", lenient)])))
    assert gw.handle("api1", "dev", request("GET", "/x")).status == 201


# --- method request ----------------------------------------------------------------------


def test_required_parameters_are_enforced_only_with_a_validator():
    params = {
        "method.request.querystring.deptno-param": True,
        "method.request.header.Authorization": True,
    }
    integ = integration("MOCK", templates=MOCK_200)
    validated = gateway(api_with(resource("/", [method("GET", integ, params, validate=True)])))
    response = validated.handle("api1", "dev", request())
    assert response.status == 400
    assert body_of(response) == {
        # in the order of the sorted method.request.* keys: headers first (case 13)
        "message": "Missing required request parameters: [Authorization, deptno-param]"
    }
    ok = validated.handle(
        "api1", "dev", request(query="deptno-param=10", headers={"authorization": "x"})
    )
    assert ok.status == 200
    # like AWS (case 6): without a request validator the required flags are not checked
    lax = gateway(api_with(resource("/", [method("GET", integ, params)])))
    assert lax.handle("api1", "dev", request()).status == 200


# --- AWS (non-proxy) Lambda --------------------------------------------------------------


def test_prototype_request_through_the_console_passthrough_template():
    pool = FakePool()
    integ = integration(
        templates={"application/json": PASSTHROUGH_TEMPLATE}, passthrough="WHEN_NO_TEMPLATES"
    )
    gw = gateway(
        api_with(
            resource(
                "/",
                [
                    method(
                        "POST",
                        integ,
                        {
                            "method.request.header.Authorization": False,
                            "method.request.querystring.deptno-param": False,
                        },
                    )
                ],
            )
        ),
        pool,
    )
    response = gw.handle(
        "api1",
        "dev",
        request(
            "POST",
            "",
            "deptno-param=10",
            {
                "Host": "127.0.0.1:9000",
                "Authorization": "Bearer abc",
                "User-Agent": "curl/8",
                "Content-Type": "application/json",
                "Content-Length": "13",
            },
            b'{"deptno": 10}',
        ),
    )
    assert response.status == 200
    event = json.loads(pool.events[0])
    assert event["body-json"] == {"deptno": 10}
    assert event["params"] == {
        "path": {},
        "querystring": {"deptno-param": "10"},
        "header": {
            "Host": "127.0.0.1:9000",
            "Authorization": "Bearer abc",
            "User-Agent": "curl/8",
            "Content-Type": "application/json",
        },
    }
    assert event["stage-variables"] == {"env": "dev"}
    context = event["context"]
    assert context["http-method"] == "POST" and context["stage"] == "dev"
    assert context["resource-path"] == "/" and context["user-agent"] == "curl/8"
    assert context["request-id"] == response.request_id
    assert context["source-ip"] == "127.0.0.1" and context["api-key"] == ""
    assert json.loads(response.body) == event  # the echo comes back through the default
    headers = dict(response.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["x-amzn-RequestId"] == response.request_id
    assert "x-amz-apigw-id" in headers and headers["X-Amzn-Trace-Id"].startswith("Root=1-")


def test_no_content_type_uses_the_application_json_template():
    pool = FakePool()
    integ = integration(templates={"application/json": '{"q": "$input.params(\'q\')"}'})
    gw = gateway(api_with(resource("/", [method("GET", integ)])), pool)
    gw.handle("api1", "dev", request(query="q=a+b&Signature=1"))
    assert json.loads(pool.events[0]) == {"q": "a b"}


@pytest.mark.parametrize(
    ("behaviour", "templates", "status"),
    [
        ("NEVER", {"application/json": "{}"}, 415),
        ("WHEN_NO_TEMPLATES", {"application/json": "{}"}, 415),
        ("WHEN_NO_MATCH", {"application/json": "{}"}, 200),
        ("WHEN_NO_TEMPLATES", {}, 200),
    ],
)
def test_passthrough_behaviour_for_an_unmapped_content_type(behaviour, templates, status):
    pool = FakePool()
    integ = integration(templates=templates, passthrough=behaviour)
    gw = gateway(api_with(resource("/", [method("POST", integ)])), pool)
    response = gw.handle(
        "api1", "dev", request("POST", "/", headers={"Content-Type": "text/plain"}, body=b'"raw"')
    )
    assert response.status == status
    if status == 415:
        assert body_of(response) == {"message": "Unsupported Media Type"}
        assert pool.events == []
    else:
        assert pool.events == [b'"raw"']


def test_a_rendered_lambda_payload_that_is_not_json_is_a_400_and_no_invocation():
    pool = FakePool()
    integ = integration(templates={"application/json": '{"v": "$util.escapeJavaScript($input.params(\'v\'))"}'})
    gw = gateway(api_with(resource("/", [method("GET", integ)])), pool)
    response = gw.handle("api1", "dev", request("GET", "/", query="v=it%27s"))
    assert response.status == 400
    assert body_of(response)["message"].startswith("Could not parse request body into json")
    assert pool.events == []
    # the same template with a harmless value reaches the function
    assert gw.handle("api1", "dev", request("GET", "/", query="v=fine")).status == 200
    assert json.loads(pool.events[0]) == {"v": "fine"}


def test_a_body_that_is_not_json_is_a_json_string_to_input_json():
    pool = FakePool()
    integ = integration(templates={"application/json": '{"raw": $input.json(\'$\')}'})
    gw = gateway(api_with(resource("/", [method("POST", integ)])), pool)
    assert gw.handle("api1", "dev", request("POST", "/", body=b"{oops")).status == 200
    assert json.loads(pool.events[0]) == {"raw": "{oops"}


def test_json_nested_100000_deep_is_a_400_everywhere_it_is_parsed():
    deep = b"[" * 100_000 + b"]" * 100_000
    pool = FakePool()
    templated = integration(templates={"application/json": "$input.json('$')"})
    passthrough = integration()  # WHEN_NO_MATCH, no templates: the body goes to Lambda as is
    gw = gateway(
        api_with(
            resource("/t", [method("POST", templated)], rid="a"),
            resource("/p", [method("POST", passthrough)], rid="b"),
        ),
        pool,
    )
    for path in ("/t", "/p"):
        response = gw.handle("api1", "dev", request("POST", path, body=deep))
        assert response.status == 400, (path, response)
        assert body_of(response)["message"].startswith("Could not parse request body into json")
    assert pool.events == []


def test_template_errors_are_500_not_a_crash():
    integ = integration(templates={"application/json": "#foreach($x in 5)$x#end"})
    gw = gateway(api_with(resource("/", [method("POST", integ)])))
    response = gw.handle("api1", "dev", request("POST", "/"))
    assert (response.status, body_of(response)) == (500, {"message": "Internal server error"})
    bad_response = integration(
        responses=[
            IntegrationResponse("200", None, {"application/json": "#foreach($x in 5)$x#end"}, {})
        ]
    )
    gw = gateway(api_with(resource("/", [method("POST", bad_response)])))
    assert gw.handle("api1", "dev", request("POST", "/")).status == 500


def _failing(message):
    return FakePool(
        lambda event: InvokeResult(
            payload=None,
            error={"errorMessage": message, "errorType": "Exception", "stackTrace": []},
        )
    )


def test_handler_error_selects_the_integration_response_whose_pattern_full_matches():
    responses = [
        IntegrationResponse("200", "", {}, {}),
        IntegrationResponse(
            "400",
            r".*\[BadRequest\].*",
            {"application/json": '{"error": "$input.path(\'$.errorMessage\')"}'},
            {},
        ),
    ]
    gw = gateway(
        api_with(resource("/", [method("POST", integration(responses=responses))])),
        _failing("[BadRequest] no deptno"),
    )
    response = gw.handle("api1", "dev", request("POST", "/"))
    assert (response.status, body_of(response)) == (400, {"error": "[BadRequest] no deptno"})


def test_handler_error_without_a_matching_pattern_uses_the_default_response_like_aws():
    responses = [
        IntegrationResponse("200", "", {}, {}),
        IntegrationResponse("400", "BadRequest", {}, {}),
    ]  # not a full match
    gw = gateway(
        api_with(resource("/", [method("POST", integration(responses=responses))])),
        _failing("oops BadRequest"),
    )
    response = gw.handle("api1", "dev", request("POST", "/"))
    assert response.status == 200
    assert body_of(response)["errorMessage"] == "oops BadRequest"


def test_handler_error_with_no_default_response_is_500():
    responses = [IntegrationResponse("400", "never", {}, {})]
    gw = gateway(
        api_with(resource("/", [method("POST", integration(responses=responses))])),
        _failing("boom"),
    )
    response = gw.handle("api1", "dev", request("POST", "/"))
    assert (response.status, body_of(response)) == (500, {"message": "Internal server error"})


def test_integration_timeout_is_504_and_caps_the_function_timeout():
    pool = FakePool(
        lambda event: InvokeResult(payload=None, error={"errorMessage": "t"}, timed_out=True)
    )
    integ = integration(timeout_ms=2000)
    gw = gateway(api_with(resource("/", [method("POST", integ)])), pool)
    response = gw.handle("api1", "dev", request("POST", "/"))
    assert (response.status, body_of(response)) == (504, {"message": "Endpoint request timed out"})
    assert pool.specs[0].timeout == 2


def test_response_parameters_override_and_remapping():
    responses = [
        IntegrationResponse(
            "200",
            None,
            {
                "application/json": "#set($context.responseOverride.status = 201)"
                "#set($context.responseOverride.header.X-Over = 'o')$input.body"
            },
            {
                "method.response.header.X-Static": "'s'",
                "method.response.header.X-From-Body": "integration.response.body.a",
                "method.response.header.Authorization": "'secret'",
                "method.response.header.Transfer-Encoding": "'chunked'",
            },
        )
    ]
    pool = FakePool(lambda event: InvokeResult(payload=b'{"a": "A"}', error=None))
    gw = gateway(api_with(resource("/", [method("GET", integration(responses=responses))])), pool)
    response = gw.handle("api1", "dev", request())
    headers = dict(response.headers)
    assert response.status == 201
    assert headers["X-Static"] == "s" and headers["X-From-Body"] == "A"
    assert headers["X-Over"] == "o"
    assert headers["x-amzn-Remapped-Authorization"] == "secret"
    assert "Authorization" not in headers and "Transfer-Encoding" not in headers


def test_mock_integration_selects_by_the_rendered_status_code():
    responses = [
        IntegrationResponse("200", None, {"application/json": '{"ok": true}'}, {}),
        IntegrationResponse("404", "404", {"application/json": '{"ok": false}'}, {}),
    ]
    integ = integration(
        "MOCK",
        responses=responses,
        templates={"application/json": "{\"statusCode\": $input.params('code')}"},
    )
    gw = gateway(api_with(resource("/", [method("GET", integ)])))
    missing = gw.handle("api1", "dev", request(query="code=404"))
    assert (missing.status, body_of(missing)) == (404, {"ok": False})
    found = gw.handle("api1", "dev", request(query="code=200"))
    assert (found.status, body_of(found)) == (200, {"ok": True})


def test_missing_package_is_502_with_a_hint_and_a_log_line():
    gw = gateway(api_with(resource("/", [method("GET", integration())])), missing_package=True)
    response = gw.handle("api1", "dev", request())
    assert response.status == 502
    assert "package" in dict(response.headers)["x-orch-error"]
    assert any("package" in line for line in gw.logs)


def test_oversized_body_is_413():
    gw = gateway(api_with(resource("/", [method("POST", integration())])))
    response = gw.handle("api1", "dev", request("POST", "/", body=b"x" * (MAX_BODY_BYTES + 1)))
    assert (response.status, body_of(response)) == (413, {"message": "Request Too Long"})


def test_lambda_integration_mapping_a_forbidden_header_fails_like_aws():
    integ = integration(request_parameters={"integration.request.header.Connection": "'x'"})
    gw = gateway(api_with(resource("/", [method("GET", integ)])))
    response = gw.handle("api1", "dev", request())
    assert response.status == 500
    assert dict(response.headers)["x-amzn-ErrorType"] == "InternalServerErrorException"


# --- AWS_PROXY ---------------------------------------------------------------------------


def _proxy_gateway(payload=None, **result):
    pool = FakePool(
        lambda event: (
            InvokeResult(payload=payload, error=None, **result)
            if payload is not None or result
            else InvokeResult(
                payload=json.dumps({"statusCode": 200, "body": event.decode()}).encode(), error=None
            )
        )
    )
    gw = gateway(api_with(resource("/{proxy+}", [method("ANY", integration("AWS_PROXY"))])), pool)
    return gw, pool


def test_proxy_event_shape():
    gw, pool = _proxy_gateway()
    response = gw.handle(
        "api1",
        "dev",
        request(
            "POST",
            "//a//b/",
            "x=1&x=2&y=%2B+",
            {
                "Content-Type": "text/plain",
                "authorization": "t",
                "X-Custom": "v",
                "Connection": "keep-alive",
                "Content-Length": "2",
            },
            b"hi",
        ),
    )
    assert response.status == 200
    event = json.loads(pool.events[0])
    assert list(event) == [
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    ]
    assert event["path"] == "/a//b/"
    assert event["pathParameters"] == {"proxy": "a//b"}
    assert event["requestContext"]["path"] == "/dev//a//b/"
    assert event["queryStringParameters"] == {"x": "2", "y": "+ "}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["+ "]}
    assert event["headers"]["Authorization"] == "t" and event["headers"]["X-Custom"] == "v"
    assert "Connection" not in event["headers"] and "Content-Length" not in event["headers"]
    assert event["body"] == "hi" and event["isBase64Encoded"] is False
    assert event["stageVariables"] == {"env": "dev"}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"null",
        b'{"statusCode": 200, "body": {"a": 1}}',
        b'{"statusCode": "test"}',
        b'{"multiValueHeaders": {"a": "not a list"}}',
        b'{"statusDescription": "200 OK"}',
        b'{"statusCode": 200, "extra": 1}',
    ],
)
def test_malformed_proxy_response_is_502(payload):
    gw, _ = _proxy_gateway(payload)
    response = gw.handle("api1", "dev", request("GET", "/x"))
    assert (response.status, body_of(response)) == (502, {"message": "Internal server error"})


def test_proxy_response_headers_and_base64_body():
    payload = json.dumps(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "aGk=",
            "isBase64Encoded": True,
        }
    ).encode()
    gw, _ = _proxy_gateway(payload)
    # no binary media types: the base64 text is sent as it is (case 10)
    response = gw.handle("api1", "dev", request("GET", "/x", headers={"Accept": "image/png"}))
    assert response.status == 201 and response.body == b"aGk="
    assert ("Set-Cookie", "a=1") in response.headers and ("Set-Cookie", "b=2") in response.headers
    assert ("Content-Type", "application/json") in response.headers
    # with one, decoded only when the first type the client accepts is binary (case 11)
    gw.registry.api = replace(gw.registry.api, binary_media_types=("image/png",))
    decoded = gw.handle("api1", "dev", request("GET", "/x", headers={"Accept": "image/png"}))
    assert decoded.body == b"hi"
    for accept in ("image/*", "*/*", "text/html,image/png", ""):
        text = gw.handle("api1", "dev", request("GET", "/x", headers={"Accept": accept}))
        assert text.body == b"aGk=", accept


@pytest.mark.parametrize(
    ("payload", "status", "body"),
    [
        (b"{}", 200, b""),
        (b'{"headers": {"test-header": "value"}}', 200, b""),
        (b'{"body": "x"}', 200, b"x"),
        (b'{"statusCode": "201", "headers": null}', 201, b""),
    ],
)
def test_every_proxy_response_field_is_optional(payload, status, body):
    gw, _ = _proxy_gateway(payload)
    response = gw.handle("api1", "dev", request("GET", "/x"))
    assert (response.status, response.body) == (status, body)


def test_proxy_function_error_is_502_and_timeout_504():
    gw, _ = _proxy_gateway(None, crashed=True)
    assert gw.handle("api1", "dev", request("GET", "/x")).status == 502
    pool = FakePool(lambda event: InvokeResult(payload=None, error={}, timed_out=True))
    gw = gateway(
        api_with(resource("/{proxy+}", [method("ANY", integration("AWS_PROXY", timeout_ms=1000))])),
        pool,
    )
    assert gw.handle("api1", "dev", request("GET", "/x")).status == 504


# --- the HTTP server (real moto, real workers) -------------------------------------------


@pytest.fixture(scope="module")
def served_api(aws, make_function, gateway_server):
    fn = make_function(ECHO_HANDLER)
    api = aws.apigw.create_rest_api(name="served")
    api_id = api["id"]
    root = aws.apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    aws.apigw.put_method(
        restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE"
    )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri=lambda_uri(fn),
        requestTemplates={"application/json": PASSTHROUGH_TEMPLATE},
        passthroughBehavior="WHEN_NO_TEMPLATES",
    )
    aws.apigw.put_integration_response(
        restApiId=api_id, resourceId=root, httpMethod="POST", statusCode="200", selectionPattern=""
    )
    missing = make_function(ECHO_HANDLER + "# never packaged\n", store=False)
    res = aws.apigw.create_resource(restApiId=api_id, parentId=root, pathPart="missing")["id"]
    aws.apigw.put_method(
        restApiId=api_id, resourceId=res, httpMethod="GET", authorizationType="NONE"
    )
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=res,
        httpMethod="GET",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=lambda_uri(missing),
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName="dev", variables={"env": "dev"})
    return invoke_url(gateway_server, api_id, "dev")


def test_server_prototype_request_end_to_end(served_api, gateway_server):
    response = requests.post(
        served_api + "/",
        params={"deptno-param": "10"},
        headers={"Authorization": "Bearer abc"},
        json={"deptno": 10},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["body-json"] == {"deptno": 10}
    assert event["params"]["querystring"] == {"deptno-param": "10"}
    assert event["params"]["header"]["Authorization"] == "Bearer abc"
    assert event["stage-variables"] == {"env": "dev"}
    assert event["context"]["resource-path"] == "/"
    assert event["context"]["request-id"] == response.headers["x-amzn-RequestId"]
    # the server logs a request after sending its answer, so the line may come a moment later
    wait_for(lambda: any("POST /restapis/" in line and " 200 " in line for line in gateway_server.log_lines),
             "the request's access-log line")


def test_server_survives_bad_input(served_api, gateway_server):
    base = gateway_server.url
    assert requests.get(base + "/_orch/health", timeout=5).json()["status"] == "ok"
    assert requests.get(base + "/elsewhere", timeout=5).status_code == 404
    assert requests.get(served_api + "/nope", timeout=5).status_code == 403
    assert requests.delete(served_api + "/", timeout=5).status_code == 403
    deep = requests.post(
        served_api + "/",
        data=b"[" * 100_000 + b"]" * 100_000,
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert deep.status_code == 400, deep.text
    assert deep.json()["message"].startswith("Could not parse request body into json")
    missing = requests.get(served_api + "/missing", timeout=30)
    assert missing.status_code == 502 and "orch package" in missing.headers["x-orch-error"]
    # a body over 10 MB is refused before it is read, and the connection is closed
    host, port = gateway_server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        path = served_api.split(str(port), 1)[1] + "/"
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}"
            "\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(4096):  # the server closes the connection after answering
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b"Request Too Long" in reply
    # garbage instead of HTTP
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage\r\n\r\n")
        assert b"400" in sock.recv(4096)  # stdlib answers a non-HTTP line HTTP/0.9-style
    # a chunked body is read
    chunked = requests.post(
        served_api + "/",
        data=iter([b'{"a"', b": 1}"]),
        timeout=10,
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 200 and chunked.json()["body-json"] == {"a": 1}
    # and the server still answers, concurrently
    results: list[int] = []

    def call():
        results.append(requests.post(served_api + "/", json={}, timeout=30).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
