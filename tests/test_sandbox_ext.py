"""The API Gateway update calls orch adds to moto, exercised through boto3 against a real server."""

from __future__ import annotations

import boto3
import pytest
from moto.server import ThreadedMotoServer

from orch import sandbox_ext


@pytest.fixture(scope="module")
def apigw():
    sandbox_ext.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.client("apigateway", endpoint_url=f"http://{host}:{port}", region_name="ap-northeast-2",
                       aws_access_key_id="test", aws_secret_access_key="test")
    server.stop()


def test_updates_change_what_get_returns(apigw) -> None:
    api = apigw.create_rest_api(name="x")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    ids = {"restApiId": api, "resourceId": root, "httpMethod": "POST"}
    apigw.put_method(**ids, authorizationType="NONE", requestParameters={"method.request.header.A": False})
    apigw.put_method_response(**ids, statusCode="200")
    apigw.put_integration(**ids, type="MOCK", requestTemplates={"application/json": "old"})
    apigw.put_integration_response(**ids, statusCode="200", selectionPattern="")

    apigw.update_integration(**ids, patchOperations=[
        {"op": "replace", "path": "/requestTemplates/application~1json", "value": "new"},
        {"op": "add", "path": "/requestTemplates/text~1plain", "value": "plain"},
        {"op": "replace", "path": "/passthroughBehavior", "value": "NEVER"},
    ])
    integ = apigw.get_integration(**ids)
    assert integ["requestTemplates"] == {"application/json": "new", "text/plain": "plain"}
    assert integ["passthroughBehavior"] == "NEVER"

    apigw.update_method(**ids, patchOperations=[
        {"op": "replace", "path": "/requestParameters/method.request.header.A", "value": "true"},
        {"op": "add", "path": "/requestParameters/method.request.querystring.q", "value": "false"},
    ])
    assert apigw.get_method(**ids)["requestParameters"] == {
        "method.request.header.A": True, "method.request.querystring.q": False,
    }

    apigw.update_integration_response(**ids, statusCode="200", patchOperations=[
        {"op": "replace", "path": "/selectionPattern", "value": ".*ok.*"},
        {"op": "add", "path": "/responseTemplates/application~1json", "value": "{}"},
    ])
    resp = apigw.get_integration_response(**ids, statusCode="200")
    assert resp["selectionPattern"] == ".*ok.*" and resp["responseTemplates"] == {"application/json": "{}"}

    apigw.update_method_response(**ids, statusCode="200", patchOperations=[
        {"op": "add", "path": "/responseParameters/method.response.header.X", "value": "true"},
    ])
    assert apigw.get_method_response(**ids, statusCode="200")["responseParameters"] == {
        "method.response.header.X": True,
    }

    apigw.update_integration(**ids, patchOperations=[
        {"op": "remove", "path": "/requestTemplates/text~1plain"},
    ])
    assert apigw.get_integration(**ids)["requestTemplates"] == {"application/json": "new"}


def test_unsupported_patch_is_a_client_error(apigw) -> None:
    api = apigw.create_rest_api(name="y")["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    ids = {"restApiId": api, "resourceId": root, "httpMethod": "GET"}
    apigw.put_method(**ids, authorizationType="NONE")
    apigw.put_integration(**ids, type="MOCK")
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.update_integration(**ids, patchOperations=[{"op": "replace", "path": "/nonsense", "value": "1"}])


def test_a_custom_domains_security_policy_and_certificate_can_be_updated(apigw) -> None:
    """Terraform changes aws_api_gateway_domain_name in place through UpdateDomainName."""
    old = "arn:aws:acm:ap-northeast-2:123456789012:certificate/old"
    new = "arn:aws:acm:ap-northeast-2:123456789012:certificate/new"
    apigw.create_domain_name(domainName="api.example.com", regionalCertificateArn=old,
                             securityPolicy="TLS_1_0", endpointConfiguration={"types": ["REGIONAL"]})
    apigw.update_domain_name(domainName="api.example.com", patchOperations=[
        {"op": "replace", "path": "/securityPolicy", "value": "TLS_1_2"},
        {"op": "replace", "path": "/regionalCertificateArn", "value": new},
    ])
    domain = apigw.get_domain_name(domainName="api.example.com")
    assert (domain["securityPolicy"], domain["regionalCertificateArn"]) == ("TLS_1_2", new)
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.update_domain_name(domainName="api.example.com", patchOperations=[
            {"op": "replace", "path": "/mutualTlsAuthentication/truststoreUri", "value": "s3://x/y"}])
