"""The gateway served by several processes sharing the port (``build_server(processes=N)``)."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest
from tests.gateway.conftest import ECHO_HANDLER, REGION, invoke_url, lambda_uri

from orch.errors import SandboxError
from orch.gateway.app import build_server

pytestmark = pytest.mark.daemon  # gateway helper processes sharing a port, seconds each


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """One request on its own connection (so the kernel picks a process for each)."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Connection": "close", "Content-Type": "application/json"}
        conn.request(method, "/" + path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def echo_api(aws, make_function) -> str:
    function_arn = make_function(ECHO_HANDLER)
    api_id = aws.apigw.create_rest_api(name="multi")["id"]
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
        uri=lambda_uri(function_arn),
    )
    aws.apigw.put_method_response(
        restApiId=api_id, resourceId=root, httpMethod="POST", statusCode="200"
    )
    aws.apigw.put_integration_response(
        restApiId=api_id, resourceId=root, httpMethod="POST", statusCode="200", selectionPattern=""
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName="dev")
    return api_id


def _function_name(aws, api_id: str) -> str:
    root = aws.apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    uri = aws.apigw.get_integration(restApiId=api_id, resourceId=root, httpMethod="POST")["uri"]
    return uri.split(":function:")[1].split(":")[0]


def test_processes_share_the_port_and_stop_together(aws, project_dir: Path, echo_api: str):
    lines: list[str] = []
    server = build_server(
        "127.0.0.1",
        0,
        aws_endpoint=aws.endpoint,
        region=REGION,
        project_dir=project_dir,
        log=lines.append,
        refresh_interval=0.0,
        processes=2,
        worker_pool_options={"max_workers_per_function": 1},
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.wait_ready(120)
        pids = server.pids
        assert len(pids) == 2 and len(set(pids)) == 2

        # the second process binding the same port must not be possible by accident
        with pytest.raises(SandboxError):
            build_server(
                "127.0.0.1",
                server.server_address[1],
                aws_endpoint=aws.endpoint,
                region=REGION,
                project_dir=project_dir,
                processes=2,
            )

        url = invoke_url(server, echo_api, "dev") + "/"
        answered: set[int] = set()
        requests_made = 0
        for _ in range(400):  # new connections land on either process; 2**-200 to miss one
            status, body = _request(server.url + "/_orch/health")
            assert status == 200
            answered.add(json.loads(body)["pid"])
            status, body = _request(url, "POST", b'{"n": 1}')
            requests_made += 1
            assert status == 200, body
            assert json.loads(body) == {"n": 1}
            stats = server.stats()
            if answered == set(pids) and all(s["workers_started"] for s in stats):
                break
        assert answered == set(pids)
        stats = server.stats()
        assert sorted(s["pid"] for s in stats) == sorted(pids)
        echo = f"{_function_name(aws, echo_api)}:1"
        assert all(echo in s["warm"] for s in stats)  # each process has its own warm worker
        workers = [pid for s in stats for pid in s["worker_pids"]]
        assert all(s["worker_pids"] for s in stats) and len(set(workers)) == len(workers)
        helper_stats = [s for s in stats if s["pid"] != pids[0]]
        assert helper_stats and all(s["gc_frozen"] > 0 for s in helper_stats), stats  # gcpause in force
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert not [pid for pid in [*pids[1:], *workers] if _alive(pid)]
    # every process's request log lines reached this process's log (all read once closed)
    request_lines = [line for line in lines if line.startswith(f"POST /restapis/{echo_api}")]
    assert len(request_lines) == requests_made


def test_helpers_stop_when_the_parent_goes_away(aws, project_dir: Path):
    """A helper whose stdin reaches end of file (the parent died) stops with its workers."""
    server = build_server(
        "127.0.0.1",
        0,
        aws_endpoint=aws.endpoint,
        region=REGION,
        project_dir=project_dir,
        log=lambda line: None,
        processes=2,
    )
    try:
        assert server.wait_ready(120)
        helper = server.helpers._helpers[0]
        helper.proc.stdin.close()  # what the kernel does when the parent dies
        assert helper.proc.wait(timeout=30) == 0
    finally:
        server.server_close()


def test_a_helpers_log_lines_reach_the_parent_in_batches_in_order():
    from orch.gateway.multi import HelperLog

    sent: list[dict] = []
    arrived = threading.Event()

    def send(message: dict) -> None:
        sent.append(message)
        arrived.set()

    log = HelperLog(send, interval=0.2)
    threads = [
        threading.Thread(target=lambda n=n: [log(f"t{n} line {i}") for i in range(50)]) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert arrived.wait(5)  # sent without close(): at most `interval` late
    log("last")
    log.close()
    lines = [line for message in sent for line in message["log"]]
    assert sorted(lines) == sorted([f"t{n} line {i}" for n in range(4) for i in range(50)] + ["last"])
    for n in range(4):  # each thread's lines in the order it logged them
        assert [line for line in lines if line.startswith(f"t{n} ")] == [f"t{n} line {i}" for i in range(50)]
    assert lines[-1] == "last"
    assert len(sent) < 20  # 201 lines, not 201 pipe writes
