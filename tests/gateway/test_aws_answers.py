"""AWS's answers through the real gateway: a real moto server holds the API, real workers run
real handlers, requests go over HTTP. One test per kind of fault in issue 10 (with the
issue's own input), gateway responses as an API customizes them, and HTTP/HTTP_PROXY
integrations against a loopback backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from tests.gateway.conftest import invoke_url, lambda_uri

# A handler that hands back the event it got, so the client sees what Lambda received.
ECHO = "def handler(event, context):\n    return event\n"
PROXY_RETURNS = (
    "import json, os\n\n\ndef handler(event, context):\n"
    "    return json.loads(event['body'])\n"
)

# A form template in the shape of Serverless' default for application/x-www-form-urlencoded:
# split $input.path('$') on & and =, urlDecode each part.
FORM_TEMPLATE = """{
#foreach( $token in $input.path('$').split('&') )
  #set( $keyVal = $token.split('=') )
  #set( $key = $util.urlDecode($keyVal[0]) )
  #if( $keyVal.size() > 1 )#set( $val = $util.urlDecode($keyVal[1]) )#else#set( $val = '' )#end
  "$key": "$util.escapeJavaScript($val)"#if( $foreach.hasNext ),#end
#end
}"""


class Api:
    """A REST API built in moto for one test module, one resource per route."""

    def __init__(self, aws: Any, name: str) -> None:
        self.aws = aws
        self.id = aws.apigw.create_rest_api(name=name)["id"]
        self.root = aws.apigw.get_resources(restApiId=self.id)["items"][0]["id"]

    def route(
        self,
        path_part: str,
        method: str,
        integration: dict[str, Any],
        *,
        responses: list[dict[str, Any]] | None = None,
        parent: str | None = None,
        method_kwargs: dict[str, Any] | None = None,
    ) -> str:
        apigw = self.aws.apigw
        resource = apigw.create_resource(
            restApiId=self.id, parentId=parent or self.root, pathPart=path_part
        )["id"]
        common = {"restApiId": self.id, "resourceId": resource, "httpMethod": method}
        apigw.put_method(**common, authorizationType="NONE", **(method_kwargs or {}))
        apigw.put_integration(**common, **integration)
        for item in responses or ():
            apigw.put_method_response(**common, statusCode=item["statusCode"])
            apigw.put_integration_response(**common, **item)
        return resource

    def deploy(self, server: Any, stage: str = "dev") -> str:
        self.aws.apigw.create_deployment(restApiId=self.id, stageName=stage)
        return invoke_url(server, self.id, stage)


DEFAULT_RESPONSE = [{"statusCode": "200", "selectionPattern": ""}]


def lambda_integration(fn: str, **extra: Any) -> dict[str, Any]:
    return {"type": "AWS", "integrationHttpMethod": "POST", "uri": lambda_uri(fn), **extra}


def proxy_integration(fn: str) -> dict[str, Any]:
    return {"type": "AWS_PROXY", "integrationHttpMethod": "POST", "uri": lambda_uri(fn)}


# --- issue 10, kind 1: AWS_PROXY response rules ----------------------------------------


@pytest.fixture(scope="module")
def proxy_api(aws, make_function, gateway_server) -> str:
    api = Api(aws, "aws-answers-proxy")
    api.route("returns", "POST", proxy_integration(make_function(PROXY_RETURNS)))
    return api.deploy(gateway_server)


def test_base64_proxy_body_is_sent_as_text_without_binary_media_types(proxy_api):
    result = {"statusCode": 200, "body": "dGVzdC1kYXRh", "isBase64Encoded": True}
    response = requests.post(proxy_api + "/returns", json=result, timeout=30)
    assert (response.status_code, response.content) == (200, b"dGVzdC1kYXRh")


def test_a_proxy_result_with_only_headers_is_200_with_an_empty_body(proxy_api):
    response = requests.post(proxy_api + "/returns", json={"headers": {"test-header": "value"}}, timeout=30)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["test-header"] == "value"
    assert response.headers["Content-Type"] == "application/json"


def test_a_malformed_proxy_result_is_still_502(proxy_api):
    response = requests.post(proxy_api + "/returns", json={"statusCode": 200, "wrongValue": 1}, timeout=30)
    assert (response.status_code, response.json()) == (502, {"message": "Internal server error"})


# --- issue 10, kinds 2 and 3: VTL values; payloads that are not JSON ------------------


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory) -> Any:
    return tmp_path_factory.mktemp("calls") / "events.jsonl"


@pytest.fixture(scope="module")
def template_api(aws, make_function, gateway_server, calls_file) -> str:
    # the echo also appends every event it gets to a file: the test sees what was invoked
    fn = make_function(
        "import json\n\n\ndef handler(event, context):\n"
        f"    with open({str(calls_file)!r}, 'a') as f:\n"
        "        f.write(json.dumps(event) + '\\n')\n"
        "    return event\n"
    )
    api = Api(aws, "aws-answers-templates")
    templates = {
        "escape-body": {"application/json": '{"raw": "$util.escapeJavaScript($input.body)"}'},
        "path-root": {"application/json": "#set($r = $input.path('$'))$r"},
        "form": {"application/x-www-form-urlencoded": FORM_TEMPLATE},
        "escape-param": {"application/json": '{"v": "$util.escapeJavaScript($input.params(\'v\'))"}'},
    }
    for part, request_templates in templates.items():
        api.route(
            part,
            "POST",
            lambda_integration(fn, requestTemplates=request_templates),
            responses=DEFAULT_RESPONSE,
        )
    return api.deploy(gateway_server)


def test_input_body_of_an_empty_body_is_an_empty_object(template_api):
    response = requests.post(
        template_api + "/escape-body", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert (response.status_code, response.json()) == (200, {"raw": "{}"})


def test_input_path_of_a_json_list_renders_as_json(template_api):
    response = requests.post(template_api + "/path-root", json=[{"foo": "bar"}], timeout=30)
    assert (response.status_code, response.json()) == (200, [{"foo": "bar"}])


def test_serverless_form_template_reads_the_raw_form_body(template_api):
    response = requests.post(
        template_api + "/form",
        data="To=%2B15550001111&ToCity=SOME%2BCITY",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert (response.status_code, response.json()) == (
        200,
        {"To": "+15550001111", "ToCity": "SOME+CITY"},
    )


def test_a_rendered_payload_that_is_not_json_never_reaches_the_function(template_api, calls_file):
    def calls() -> list[Any]:
        return [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []

    before = calls()
    response = requests.post(
        template_api + "/escape-param?v=it%27s", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Could not parse request body into json: Could not parse payload into json:"
    )
    assert calls() == before  # {"v": "it\'s"} is not JSON: the function was never called
    fine = requests.post(
        template_api + "/escape-param?v=fine", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert (fine.status_code, calls()) == (200, [*before, {"v": "fine"}])


def test_json_nested_100000_deep_is_a_400(template_api):
    deep = b"[" * 100_000 + b"]" * 100_000
    response = requests.post(
        template_api + "/path-root", data=deep, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Could not parse request body into json")


# --- gateway responses ----------------------------------------------------------------


@pytest.fixture(scope="module")
def customized_api(aws, make_function, gateway_server) -> str:
    api = Api(aws, "aws-answers-gateway-responses")
    apigw = aws.apigw
    api.route("proxy", "POST", proxy_integration(make_function(PROXY_RETURNS)))
    validator = apigw.create_request_validator(restApiId=api.id, name="params", validateRequestParameters=True)
    api.route(
        "needs-q",
        "GET",
        {"type": "MOCK", "requestTemplates": {"application/json": '{"statusCode": 200}'}},
        responses=DEFAULT_RESPONSE,
        method_kwargs={
            "requestValidatorId": validator["id"],
            "requestParameters": {"method.request.querystring.q": True},
        },
    )
    apigw.put_gateway_response(
        restApiId=api.id,
        responseType="DEFAULT_4XX",
        responseParameters={
            "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
            "gatewayresponse.header.x-stage": "stageVariables.env",
            "gatewayresponse.header.x-asked": "method.request.header.x-asked",
        },
    )
    apigw.put_gateway_response(
        restApiId=api.id,
        responseType="MISSING_AUTHENTICATION_TOKEN",
        statusCode="404",
        responseParameters={"gatewayresponse.header.x-kind": "'not-found'"},
        responseTemplates={
            "application/json": '{"error": $context.error.messageString, "type": "$context.error.responseType"}'
        },
    )
    apigw.put_gateway_response(
        restApiId=api.id,
        responseType="DEFAULT_5XX",
        statusCode="599",
        responseParameters={"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
    )
    apigw.create_deployment(restApiId=api.id, stageName="dev", variables={"env": "dev"})
    return invoke_url(gateway_server, api.id, "dev")


def test_a_customized_type_answers_with_its_status_headers_and_template(customized_api):
    response = requests.get(customized_api + "/nowhere", timeout=30)
    assert response.status_code == 404
    assert response.json() == {"error": "Missing Authentication Token", "type": "MISSING_AUTHENTICATION_TOKEN"}
    assert response.headers["x-kind"] == "not-found"
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "Access-Control-Allow-Origin" not in response.headers  # its own entry, not DEFAULT_4XX's


def test_other_4xx_types_fall_back_to_the_customized_default_4xx(customized_api):
    response = requests.get(customized_api + "/needs-q", headers={"x-asked": "yes"}, timeout=30)
    assert response.status_code == 400  # DEFAULT_4XX sets no status: the type's own stays
    assert response.json() == {"message": "Missing required request parameters: [q]"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["x-stage"] == "dev"
    assert response.headers["x-asked"] == "yes"
    assert requests.get(customized_api + "/needs-q?q=1", timeout=30).status_code == 200


def test_5xx_answers_take_the_customized_default_5xx(customized_api):
    response = requests.post(customized_api + "/proxy", json={"wrongValue": 1}, timeout=30)
    assert response.status_code == 599
    assert response.json() == {"message": "Internal server error"}
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# --- HTTP and HTTP_PROXY integrations --------------------------------------------------


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/slow"):
            self.release.wait(10)
        status = 418 if self.path.startswith("/teapot") else 200
        data = json.dumps(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-backend", "yes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Backend.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def http_api(aws, gateway_server, backend) -> str:
    api = Api(aws, "aws-answers-http")
    items = api.route(
        "items",
        "GET",
        {
            "type": "HTTP",
            "integrationHttpMethod": "POST",
            "uri": backend + "/echo/{id}",
            "requestParameters": {
                "integration.request.path.id": "method.request.querystring.id",
                "integration.request.header.x-from-query": "method.request.querystring.id",
                "integration.request.querystring.stage": "'static'",
            },
            "requestTemplates": {"application/json": '{"asked": "$input.params(\'id\')"}'},
        },
        responses=[
            {
                "statusCode": "200",
                "selectionPattern": "",
                "responseTemplates": {"application/json": "$input.path('$.body')|$input.path('$.path')"},
                "responseParameters": {"method.response.header.x-backend": "integration.response.header.x-backend"},
            },
            {"statusCode": "400", "selectionPattern": "4\\d{2}"},
        ],
    )
    del items
    api.route(
        "teapot",
        "GET",
        {"type": "HTTP", "integrationHttpMethod": "GET", "uri": backend + "/teapot"},
        responses=[
            {"statusCode": "200", "selectionPattern": ""},
            {"statusCode": "400", "selectionPattern": "4\\d{2}"},
        ],
    )
    proxy = api.route("proxy", "ANY", {"type": "HTTP_PROXY", "integrationHttpMethod": "ANY", "uri": backend + "/p"})
    greedy = aws.apigw.create_resource(restApiId=api.id, parentId=proxy, pathPart="{rest+}")["id"]
    common = {"restApiId": api.id, "resourceId": greedy, "httpMethod": "ANY"}
    aws.apigw.put_method(**common, authorizationType="NONE")
    aws.apigw.put_integration(
        **common,
        type="HTTP_PROXY",
        integrationHttpMethod="ANY",
        uri=backend + "/p/{rest}",
        requestParameters={"integration.request.path.rest": "method.request.path.rest"},
    )
    api.route(
        "slow",
        "GET",
        {"type": "HTTP_PROXY", "integrationHttpMethod": "GET", "uri": backend + "/slow", "timeoutInMillis": 300},
    )
    api.route(
        "down",
        "GET",
        {"type": "HTTP_PROXY", "integrationHttpMethod": "GET", "uri": "http://127.0.0.1:9/nothing"},
    )
    return api.deploy(gateway_server)


def test_http_integration_maps_parameters_renders_templates_and_selects_by_status(http_api):
    response = requests.get(http_api + "/items?id=42", timeout=30)
    assert response.status_code == 200, response.text
    body, _, path = response.text.partition("|")
    assert json.loads(body) == {"asked": "42"}
    assert path == "/echo/42?stage=static"
    assert response.headers["x-backend"] == "yes"
    teapot = requests.get(http_api + "/teapot", timeout=30)
    assert teapot.status_code == 400  # the backend's 418 matches the 4\d{2} pattern


def test_http_proxy_passes_the_request_and_the_response_through(http_api):
    response = requests.put(
        http_api + "/proxy/a/b?x=1", data="raw", headers={"x-client": "c", "Content-Type": "text/plain"}, timeout=30
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["method"], seen["path"], seen["body"]) == ("PUT", "/p/a/b?x=1", "raw")
    assert seen["headers"]["x-client"] == "c"
    assert response.headers["x-backend"] == "yes"


def test_http_integration_timeout_is_504_and_an_unreachable_backend_500(http_api):
    slow = requests.get(http_api + "/slow", timeout=30)
    assert (slow.status_code, slow.json()) == (504, {"message": "Endpoint request timed out"})
    down = requests.get(http_api + "/down", timeout=30)
    assert (down.status_code, down.json()) == (500, {"message": "Internal server error"})
