"""Helpers for tests that deploy a small stack with boto3 and call it through a gateway of
their own (``serve`` in conftest): what Terraform leaves behind, without Terraform."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.gateway.conftest import build_zip, lambda_uri


def version_handler(version: int) -> str:
    return f"def handler(event, context):\n    return {{'version': {version}}}\n"


def post(url: str, body: bytes = b"{}", timeout: float = 30.0) -> tuple[int, bytes]:
    """One POST on its own connection, so the kernel picks a gateway process for each."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Connection": "close", "Content-Type": "application/json"}
        conn.request("POST", "/" + path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Stack:
    """A function ``name`` (alias ``live``) behind POST / of a REST API stage ``dev``; its
    packages are stored in ``project``'s package store as orch would."""

    def __init__(
        self,
        aws: Any,
        project: Path,
        name: str,
        source: Callable[[int], str] = version_handler,
        *,
        proxy: bool = False,
        timeout: int = 10,
    ) -> None:
        self.aws = aws
        self.project = project
        self.name = name
        self.source = source
        self.proxy = proxy
        self.timeout = timeout
        self.version = "0"
        self.api_id = ""

    def _store(self, version: int) -> bytes:
        data = build_zip({"handler.py": self.source(version)})
        (self.project / ".orch" / "packages" / f"{hashlib.sha256(data).hexdigest()}.zip").write_bytes(data)
        return data

    def create(self) -> Stack:
        lam, apigw = self.aws.lambda_, self.aws.apigw
        created = lam.create_function(
            FunctionName=self.name,
            Runtime="python3.12",
            Role=self.aws.role_arn,
            Handler="handler.handler",
            Code={"ZipFile": self._store(1)},
            Timeout=self.timeout,
            Publish=True,
        )
        self.version = created["Version"]
        alias = lam.create_alias(FunctionName=self.name, Name="live", FunctionVersion=self.version)["AliasArn"]
        self.api_id = apigw.create_rest_api(name=self.name)["id"]
        root = apigw.get_resources(restApiId=self.api_id)["items"][0]["id"]
        apigw.put_method(restApiId=self.api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
        apigw.put_integration(
            restApiId=self.api_id,
            resourceId=root,
            httpMethod="POST",
            type="AWS_PROXY" if self.proxy else "AWS",
            integrationHttpMethod="POST",
            uri=lambda_uri(alias),
        )
        if not self.proxy:
            apigw.put_method_response(restApiId=self.api_id, resourceId=root, httpMethod="POST", statusCode="200")
            apigw.put_integration_response(
                restApiId=self.api_id, resourceId=root, httpMethod="POST", statusCode="200", selectionPattern=""
            )
        apigw.create_deployment(restApiId=self.api_id, stageName="dev")
        return self

    def release(self, version: int) -> None:
        """New code, a published version and the alias moved to it: no API redeployment,
        as when Terraform changes only the function."""
        updated = self.aws.lambda_.update_function_code(
            FunctionName=self.name, ZipFile=self._store(version), Publish=True
        )
        self.version = updated["Version"]
        self.aws.lambda_.update_alias(FunctionName=self.name, Name="live", FunctionVersion=self.version)
