"""The sandbox never lies (issue 6 item 6, gateway side): after ``orch.sandbox.mark_changed``
every gateway process answers from what is deployed now, a destroyed stage is 403 at once,
a new version is warm before it is asked for, and the warm path makes no boto3 call.
Deploys go to a real moto server with boto3 (as Terraform would leave them), requests go
through the real gateway with two processes sharing the port."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
from tests.gateway.conftest import invoke_url
from tests.gateway.stacks import Stack, post

from helpers import wait_for
from orch.gateway.generation import GenerationWatcher, WarmMarks, wait_until_warm
from orch.sandbox import generation_path, mark_changed


@pytest.mark.daemon  # two gateway processes sharing a port
def test_every_request_after_mark_changed_runs_the_newest_code_and_a_destroy_is_403(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "fresh-fn")
    stack.create()
    mark_changed(gw_project)
    server = serve(processes=2)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    for version in (1, 2, 3):
        if version > 1:
            stack.release(version)
            mark_changed(gw_project)  # what orch does after every apply; no waiting after it
        for _ in range(12):  # new connections: both processes answer some of them
            status, body = post(url)
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
    assert post(url + "extra")[0] == 403  # not deployed yet
    apigw.create_deployment(restApiId=stack.api_id, stageName="dev")
    mark_changed(gw_project)
    for _ in range(8):
        assert post(url + "extra") == (200, b'{"route": "extra"}')
    # destroyed: 403 from the first request on, in every process
    apigw.delete_rest_api(restApiId=stack.api_id)
    aws.lambda_.delete_function(FunctionName=stack.name)
    mark_changed(gw_project)
    for _ in range(12):
        status, body = post(url)
        assert status == 403, body


@pytest.mark.daemon  # two gateway processes sharing a port
def test_a_new_version_is_warm_in_every_process_before_it_is_asked_for(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "warm-fn")
    stack.create()
    mark_changed(gw_project)
    server = serve(processes=2, worker_pool_options={"max_workers_per_function": 2})
    url = invoke_url(server, stack.api_id, "dev") + "/"
    want = f"{stack.name}:{stack.version}"
    wait_for(lambda: all(want in s["warm"] for s in server.stats()), f"{want} warm in every process")
    stack.release(2)
    token = mark_changed(gw_project)
    assert wait_until_warm(generation_path(gw_project), token, timeout=30)  # what orch can wait for
    want = f"{stack.name}:{stack.version}"
    stats = server.stats()
    assert all(s["warmed_generation"] == token and want in s["warm"] for s in stats)
    old = f"{stack.name}:1"
    assert not any(old in s["warm"] for s in stats)  # the old version's workers were retired
    started = sum(s["workers_started"] for s in stats)
    for _ in range(8):
        status, body = post(url)
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


@pytest.mark.daemon  # two gateway processes sharing a port
def test_the_warm_path_makes_no_boto3_call(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "quiet-fn")
    stack.create()
    mark_changed(gw_project)
    server = serve(processes=1, watch=False)  # only the request path reads the emulator
    registry = server.registry
    registry.apigw, registry.lambda_ = _Counting(registry.apigw), _Counting(registry.lambda_)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    assert post(url)[0] == 200  # the first request loads the stage and the function
    assert "get_stage" in registry.apigw.calls and "get_function" in registry.lambda_.calls
    registry.apigw.calls.clear()
    registry.lambda_.calls.clear()
    for _ in range(20):
        assert post(url)[0] == 200
    assert registry.apigw.calls == [] and registry.lambda_.calls == []
    mark_changed(gw_project)  # the next request reads again
    assert post(url)[0] == 200
    assert "get_stage" in registry.apigw.calls


def test_waiting_for_warm_marks_ignores_processes_that_are_gone(gw_project):
    generation = generation_path(gw_project)
    token = mark_changed(gw_project)
    assert wait_until_warm(generation, token, timeout=0.1)  # no gateway: nothing to wait for
    mine = WarmMarks(generation)
    mine.mark("an-older-generation")
    assert not wait_until_warm(generation, token, timeout=0.2)  # a live process is behind
    mine.mark(token)
    assert wait_until_warm(generation, token, timeout=0.2)
    (mine.folder / "999999999").write_text("an-older-generation 12345\n")  # a process long gone
    assert wait_until_warm(generation, token, timeout=0.2)
    mine.clear()
    assert not (mine.folder / str(mine.pid)).exists()


def test_a_watcher_closed_during_a_slow_refresh_releases_its_descriptors_when_it_ends(tmp_path):
    """close() gives up waiting for a refresh stuck on the emulator; the watcher thread must
    then neither touch a closed inotify descriptor (seen in CI: an AssertionError in the
    gateway-generation thread when a helper's parent went away) nor leak its descriptors."""
    path = tmp_path / "sandbox" / "generation"
    entered, release = threading.Event(), threading.Event()
    changes: list[str] = []
    errors: list[BaseException] = []

    def slow_refresh() -> None:
        changes.append("refresh")
        entered.set()
        release.wait(10)

    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        watcher = GenerationWatcher(path, slow_refresh).start()
        path.write_text("1")
        assert entered.wait(10)
        path.write_text("2")  # a change is pending while the refresh runs
        stop_r, stop_w = watcher._stop_r, watcher._stop_w
        watcher.close(timeout=0.05)
        assert watcher._thread.is_alive()  # still in the refresh: nothing is released yet
        os.fstat(stop_r)
        release.set()
        watcher._thread.join(10)
        assert not watcher._thread.is_alive()
    finally:
        threading.excepthook = previous_hook
    assert errors == []
    assert changes == ["refresh"]  # the pending change after close() is not acted on
    for fd in (stop_r, stop_w):
        with pytest.raises(OSError):
            os.fstat(fd)
    watcher.close()  # twice is harmless
