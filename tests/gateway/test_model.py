"""Reading what was deployed: ``load_api`` and the registry's refresh against a real moto."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import PROXY_ECHO_HANDLER, lambda_uri

from orch.gateway.generation import Generation
from orch.gateway.model import ApiRegistry, load_api
from orch.sandbox import generation_path, mark_changed


def new_api(aws: Any, name: str) -> tuple[str, str]:
    api = aws.apigw.create_rest_api(name=name)
    root = aws.apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
    return api["id"], root


def add_resource(aws: Any, api_id: str, parent: str, part: str) -> str:
    return aws.apigw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]


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
