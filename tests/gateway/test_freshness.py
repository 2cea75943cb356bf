"""The sandbox never lies (issue 6 item 6, gateway side): after ``orch.sandbox.mark_changed``
every gateway process answers from what is deployed now, a destroyed stage is 403 at once,
a new version is warm before it is asked for, and the warm path makes no boto3 call.
Deploys go to a real moto server with boto3 (as Terraform would leave them), requests go
through the real gateway with two processes sharing the port."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import REGION, build_zip, invoke_url, lambda_uri

from orch.gateway.app import build_server
from orch.sandbox import mark_changed

WAIT = 30.0


def _handler(version: int) -> str:
    return f"def handler(event, context):\n    return {{'version': {version}}}\n"


def _post(url: str) -> tuple[int, bytes]:
    """One request on its own connection, so the kernel picks a gateway process for each."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Connection": "close", "Content-Type": "application/json"}
        conn.request("POST", "/" + path, body=b"{}", headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT} s: {what}")
        pause.wait(0.05)


class Stack:
    """A function ``name`` with alias ``live`` behind POST / of a REST API stage ``dev``."""

    def __init__(self, aws: Any, project: Path, name: str) -> None:
        self.aws = aws
        self.project = project
        self.name = name
        self.version = "0"
        self.api_id = ""

    def _store(self, version: int) -> bytes:
        data = build_zip({"handler.py": _handler(version)})
        (self.project / ".orch" / "packages" / f"{hashlib.sha256(data).hexdigest()}.zip").write_bytes(data)
        return data

    def create(self) -> None:
        lam, apigw = self.aws.lambda_, self.aws.apigw
        created = lam.create_function(
            FunctionName=self.name,
            Runtime="python3.12",
            Role=self.aws.role_arn,
            Handler="handler.handler",
            Code={"ZipFile": self._store(1)},
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
            type="AWS",
            integrationHttpMethod="POST",
            uri=lambda_uri(alias),
        )
        apigw.put_method_response(restApiId=self.api_id, resourceId=root, httpMethod="POST", statusCode="200")
        apigw.put_integration_response(
            restApiId=self.api_id, resourceId=root, httpMethod="POST", statusCode="200", selectionPattern=""
        )
        apigw.create_deployment(restApiId=self.api_id, stageName="dev")

    def release(self, version: int) -> None:
        """New code, a published version and the alias moved to it: no API redeployment,
        as when Terraform changes only the function."""
        lam = self.aws.lambda_
        self.version = lam.update_function_code(FunctionName=self.name, ZipFile=self._store(version), Publish=True)[
            "Version"
        ]
        lam.update_alias(FunctionName=self.name, Name="live", FunctionVersion=self.version)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".orch" / "packages").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def serve(aws, project: Path) -> Iterator[Callable[..., Any]]:
    started: list[tuple[Any, threading.Thread]] = []

    def start(**options: Any) -> Any:
        server = build_server(
            "127.0.0.1",
            0,
            aws_endpoint=aws.endpoint,
            region=REGION,
            project_dir=project,
            log=lambda _line: None,
            **options,
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        assert server.wait_ready(120)
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_request_after_mark_changed_runs_the_newest_code_and_a_destroy_is_403(aws, project, serve):
    stack = Stack(aws, project, "fresh-fn")
    stack.create()
    mark_changed(project)
    server = serve(processes=2)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    for version in (1, 2, 3):
        if version > 1:
            stack.release(version)
            mark_changed(project)  # what orch does after every apply; no waiting after it
        for _ in range(12):  # new connections: both processes answer some of them
            status, body = _post(url)
            assert (status, json.loads(body)) == (200, {"version": version})
    # a change to the API itself: a new route answers at once
    apigw = aws.apigw
    root = apigw.get_resources(restApiId=stack.api_id)["items"][0]["id"]
    extra = apigw.create_resource(restApiId=stack.api_id, parentId=root, pathPart="extra")["id"]
    apigw.put_method(restApiId=stack.api_id, resourceId=extra, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(
        restApiId=stack.api_id,
        resourceId=extra,
        httpMethod="POST",
        type="MOCK",
        requestTemplates={"application/json": '{"statusCode": 200}'},
    )
    apigw.put_method_response(restApiId=stack.api_id, resourceId=extra, httpMethod="POST", statusCode="200")
    apigw.put_integration_response(
        restApiId=stack.api_id,
        resourceId=extra,
        httpMethod="POST",
        statusCode="200",
        selectionPattern="",
        responseTemplates={"application/json": '{"route": "extra"}'},
    )
    assert _post(url + "extra")[0] == 403  # not deployed yet
    apigw.create_deployment(restApiId=stack.api_id, stageName="dev")
    mark_changed(project)
    for _ in range(8):
        assert _post(url + "extra") == (200, b'{"route": "extra"}')
    # destroyed: 403 from the first request on, in every process
    apigw.delete_rest_api(restApiId=stack.api_id)
    aws.lambda_.delete_function(FunctionName=stack.name)
    mark_changed(project)
    for _ in range(12):
        status, body = _post(url)
        assert status == 403, body


def test_a_new_version_is_warm_in_every_process_before_it_is_asked_for(aws, project, serve):
    stack = Stack(aws, project, "warm-fn")
    stack.create()
    mark_changed(project)
    server = serve(processes=2, worker_pool_options={"max_workers_per_function": 2})
    url = invoke_url(server, stack.api_id, "dev") + "/"
    want = f"{stack.name}:{stack.version}"
    _wait_for(lambda: all(want in s["warm"] for s in server.stats()), f"{want} warm in every process")
    stack.release(2)
    token = mark_changed(project)
    want = f"{stack.name}:{stack.version}"
    _wait_for(
        lambda: all(s["warmed_generation"] == token and want in s["warm"] for s in server.stats()),
        f"{want} warm in every process",
    )
    stats = server.stats()
    old = f"{stack.name}:1"
    assert not any(old in s["warm"] for s in stats)  # the old version's workers were retired
    started = sum(s["workers_started"] for s in stats)
    for _ in range(8):
        status, body = _post(url)
        assert (status, json.loads(body)) == (200, {"version": 2})
    assert sum(s["workers_started"] for s in server.stats()) == started  # no cold start


class _Counting:
    """A boto3 client stand-in that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if callable(attr) and not name.startswith("_") and name not in ("exceptions", "meta"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)

            return counted
        return attr


def test_the_warm_path_makes_no_boto3_call(aws, project, serve):
    stack = Stack(aws, project, "quiet-fn")
    stack.create()
    mark_changed(project)
    server = serve(processes=1, watch=False)  # only the request path reads the emulator
    registry = server.registry
    registry.apigw, registry.lambda_ = _Counting(registry.apigw), _Counting(registry.lambda_)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    assert _post(url)[0] == 200  # the first request loads the stage and the function
    assert "get_stage" in registry.apigw.calls and "get_function" in registry.lambda_.calls
    registry.apigw.calls.clear()
    registry.lambda_.calls.clear()
    for _ in range(20):
        assert _post(url)[0] == 200
    assert registry.apigw.calls == [] and registry.lambda_.calls == []
    mark_changed(project)  # the next request reads again
    assert _post(url)[0] == 200
    assert "get_stage" in registry.apigw.calls
