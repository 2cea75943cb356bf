"""Acceptance 4 on real AWS: `orch openapi` lists the routes API Gateway's own export
(`get_export`, OpenAPI 3.0) lists for the deployed dev stage. It deploys dev to the account
the standard credential chain finds and destroys it afterwards, so it runs only with
credentials and ORCH_AWS_TESTS=1; without them it is skipped with the reason. (In the
sandbox, whose export is a skeleton, tests/integration/test_sandbox_deploy.py compares with
the deployed resources and methods instead.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import make_project, orch

pytestmark = pytest.mark.deploy


def _credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


@pytest.fixture(scope="module")
def aws_project(tmp_path_factory: pytest.TempPathFactory):
    if not _credentials():
        pytest.skip("no AWS credentials: the comparison with API Gateway's get_export needs a real account")
    if os.environ.get("ORCH_AWS_TESTS") != "1":
        pytest.skip("set ORCH_AWS_TESTS=1 to deploy the dev stage to the AWS account of these credentials")
    path = make_project(tmp_path_factory.mktemp("aws") / "proj")
    result = orch("apply", "dev", cwd=path)
    assert result.code == 0, result.output
    try:
        yield path
    finally:
        orch("destroy", "dev", "--yes", cwd=path)


def test_openapi_lists_the_routes_of_api_gateways_own_export(aws_project: Path) -> None:
    import boto3

    from orch.openapi import routes

    values = json.loads(orch("output", "dev", "--json", cwd=aws_project).stdout)
    region = json.loads(orch("stages", "--json", cwd=aws_project).stdout)[0]["region"]
    export = boto3.client("apigateway", region_name=region).get_export(
        restApiId=values["rest_api_id"], stageName=values["stage_name"], exportType="oas30",
        accepts="application/json", parameters={"extensions": "apigateway"},
    )
    theirs = json.loads(export["body"].read())
    ours = json.loads(orch("openapi", "dev", "--extensions", cwd=aws_project).stdout)
    assert routes(ours) == routes(theirs)
