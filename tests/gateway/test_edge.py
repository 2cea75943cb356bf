"""The local gateway at the edge of a stage (issue 9): requests through a custom domain name
(Host header + base path mapping, read from the emulator) and CORS as API Gateway answers it,
from the same resources modules/cors and modules/integration deploy."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from tests.gateway.conftest import PROXY_ECHO_HANDLER, invoke_url, lambda_uri

from orch.gateway.model import BasePathMapping, CustomDomains, DomainRoute


def test_a_base_path_selects_its_mapping_and_none_takes_the_rest() -> None:
    domains = CustomDomains({
        "api.example.com": (
            BasePathMapping("api.example.com", "v1", "a1", "prod"),
            BasePathMapping("api.example.com", "", "a0", "dev"),
        ),
        "only.example.com": (BasePathMapping("only.example.com", "v2", "a2", "prod"),),
    })
    assert domains.route("API.example.com:8443", "/v1/items/7") == DomainRoute("a1", "prod", "/items/7", "v1")
    assert domains.route("api.example.com", "/v1") == DomainRoute("a1", "prod", "", "v1")
    assert domains.route("api.example.com", "/v10/x") == DomainRoute("a0", "dev", "/v10/x", "")
    assert domains.route("only.example.com", "/v1") == DomainRoute("", "", "/v1", "")  # AWS: 403
    assert domains.route("127.0.0.1:8080", "/v1") is None
    assert domains.route(None, "/v1") is None


@pytest.fixture(scope="module")
def domain_api(aws: Any, make_function: Any, gateway_server: Any) -> dict[str, str]:
    apigw = aws.apigw
    api = apigw.create_rest_api(name="edge-domain")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    proxy = apigw.create_resource(restApiId=api, parentId=root, pathPart="{proxy+}")["id"]
    fn = make_function(PROXY_ECHO_HANDLER)
    for resource in (root, proxy):
        apigw.put_method(restApiId=api, resourceId=resource, httpMethod="ANY", authorizationType="NONE")
        apigw.put_integration(restApiId=api, resourceId=resource, httpMethod="ANY", type="AWS_PROXY",
                              integrationHttpMethod="POST", uri=lambda_uri(fn))
    apigw.create_deployment(restApiId=api, stageName="live")
    apigw.create_domain_name(domainName="edge.example.com", regionalCertificateArn=(
        "arn:aws:acm:us-east-1:123456789012:certificate/x"), endpointConfiguration={"types": ["REGIONAL"]})
    apigw.create_base_path_mapping(domainName="edge.example.com", restApiId=api, stage="live", basePath="v1")
    return {"api": api, "port": str(gateway_server.server_address[1])}


def _via_domain(port: str, path: str, host: str = "edge.example.com") -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}{path}", headers={"Host": f"{host}:{port}"}, timeout=30)


def test_a_request_to_the_custom_domain_reaches_the_mapped_stage(domain_api: dict[str, str]) -> None:
    response = _via_domain(domain_api["port"], "/v1/orders/7?x=1")
    assert response.status_code == 200, response.text
    event = response.json()  # the echo answers with the event it got
    assert event["resource"] == "/{proxy+}" and event["pathParameters"] == {"proxy": "orders/7"}
    # through a custom domain, the path the function sees keeps the base path (as on AWS)
    assert event["path"] == "/v1/orders/7" and event["requestContext"]["path"] == "/v1/orders/7"
    assert event["requestContext"]["domainName"].startswith("edge.example.com")
    assert event["requestContext"]["domainPrefix"] == "edge" and event["requestContext"]["stage"] == "live"
    assert event["queryStringParameters"] == {"x": "1"}


def test_the_base_path_alone_is_the_root_resource(domain_api: dict[str, str]) -> None:
    response = _via_domain(domain_api["port"], "/v1")
    assert response.status_code == 200, response.text
    assert response.json()["resource"] == "/"


def test_an_unmapped_base_path_is_forbidden_and_an_unknown_host_not_served(domain_api: dict[str, str]) -> None:
    unmapped = _via_domain(domain_api["port"], "/v2/orders")
    assert (unmapped.status_code, unmapped.json()) == (403, {"message": "Forbidden"})
    other = _via_domain(domain_api["port"], "/v1/orders", host="other.example.com")
    assert other.status_code == 404  # not a custom domain here: only invoke URLs are served


# --- CORS: the resources modules/cors and modules/integration create -------------------


@pytest.fixture(scope="module")
def cors_api(aws: Any, make_function: Any, gateway_server: Any) -> str:
    apigw = aws.apigw
    api = apigw.create_rest_api(name="edge-cors")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    common = {"restApiId": api, "resourceId": root}
    fn = make_function("def handler(event, context):\n    return {'ok': True}\n")
    # POST /: non-proxy, Access-Control-Allow-Origin on its response (modules/integration)
    apigw.put_method(**common, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(**common, httpMethod="POST", type="AWS", integrationHttpMethod="POST", uri=lambda_uri(fn))
    apigw.put_method_response(**common, httpMethod="POST", statusCode="200",
                              responseParameters={"method.response.header.Access-Control-Allow-Origin": False})
    apigw.put_integration_response(**common, httpMethod="POST", statusCode="200", selectionPattern="",
                                   responseParameters={"method.response.header.Access-Control-Allow-Origin": "'*'"})
    # OPTIONS /: the MOCK preflight (modules/cors)
    headers = {
        "Access-Control-Allow-Origin": "'*'",
        "Access-Control-Allow-Methods": "'OPTIONS,POST'",
        "Access-Control-Allow-Headers": "'Content-Type,Authorization'",
        "Access-Control-Max-Age": "'600'",
    }
    apigw.put_method(**common, httpMethod="OPTIONS", authorizationType="NONE")
    apigw.put_integration(**common, httpMethod="OPTIONS", type="MOCK", passthroughBehavior="WHEN_NO_MATCH",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(**common, httpMethod="OPTIONS", statusCode="200",
                              responseParameters={f"method.response.header.{k}": True for k in headers})
    apigw.put_integration_response(**common, httpMethod="OPTIONS", statusCode="200",
                                   responseParameters={f"method.response.header.{k}": v for k, v in headers.items()},
                                   responseTemplates={"application/json": ""})
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        apigw.put_gateway_response(
            restApiId=api, responseType=kind,
            responseParameters={"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
            responseTemplates={"application/json": '{"message":$context.error.messageString}'},
        )
    apigw.create_deployment(restApiId=api, stageName="dev")
    return invoke_url(gateway_server, api, "dev")


def test_a_preflight_gets_the_configured_headers_and_no_body(cors_api: str) -> None:
    response = requests.options(cors_api, headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, timeout=30)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "OPTIONS,POST"
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_the_real_method_and_gateway_errors_carry_the_origin(cors_api: str) -> None:
    post = requests.post(cors_api, json={}, headers={"Origin": "https://app.example.com"}, timeout=30)
    assert post.status_code == 200 and post.headers["Access-Control-Allow-Origin"] == "*"
    unknown = requests.get(cors_api + "/nope", timeout=30)
    assert unknown.status_code == 403 and unknown.headers["Access-Control-Allow-Origin"] == "*"
    assert unknown.json() == {"message": "Missing Authentication Token"}
