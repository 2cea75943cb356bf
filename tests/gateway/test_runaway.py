"""Handlers that misbehave (issue 12 item 8): one printing 50 MB per call costs the gateway
neither memory nor time and cannot fill the disk; processes a handler starts in their own
session, or double-forked away from it, end with its worker and with ``orch sandbox stop``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import psutil
import pytest
from tests.gateway.conftest import REGION
from tests.gateway.stacks import Stack, post

from helpers import wait_for
from orch import sandbox
from orch.gateway.app import RotatingLog
from orch.gateway.workers import DEFAULT_MAX_LOG_BYTES, FunctionSpec, WorkerPool

CHATTY = """
import sys

def handler(event, context):
    for _ in range(50):                      # 50 MB in 1 MB lines
        sys.stdout.write("y" * (1 << 20) + "\\n")
    print("after the flood")
    return {"ok": True}
"""

SPAWNER = """
import os, subprocess, time

def handler(event, context):
    session = subprocess.Popen(["sleep", "300"], start_new_session=True)  # its own session
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:                          # double fork: the grandchild leaves the tree
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            os.execvp("sleep", ["sleep", "301"])
        os._exit(0)
    os.waitpid(middle, 0)
    os.close(w)
    daemon = int(os.read(r, 32))
    if event.get("hang"):
        time.sleep(60)
    return {"session": session.pid, "daemon": daemon}
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _spec(tmp_path: Path, source: str, timeout: int = 10) -> FunctionSpec:
    code = tmp_path / "code"
    code.mkdir()
    (code / "handler.py").write_text(source)
    return FunctionSpec(
        name="runaway",
        version="1",
        code_dir=code,
        handler="handler.handler",
        runtime="python3.12",
        timeout=timeout,
        memory_size=256,
        environment={},
        arn=f"arn:aws:lambda:{REGION}:123456789012:function:runaway",
    )


def test_fifty_megabytes_of_output_are_capped_and_drained_quickly(tmp_path: Path):
    batches = []
    with WorkerPool(log_sink=batches.append) as pool:
        spec = _spec(tmp_path, CHATTY)
        pool.invoke(spec, b"{}", "warm-up")
        for n in range(3):
            started = time.monotonic()
            result = pool.invoke(spec, b"{}", f"flood-{n}")
            assert result.error is None and json.loads(result.payload) == {"ok": True}
            assert time.monotonic() - started < 5.0  # seen: 17 to 32 s
            kept = sum(len(message.encode()) for _ts, message in batches[-1].events)
            assert kept < DEFAULT_MAX_LOG_BYTES + 4096
            assert batches[-1].lines[0] == f"START RequestId: flood-{n} Version: 1"
            assert "more bytes of output were dropped" in batches[-1].lines[-3]
            assert batches[-1].lines[-1].startswith(f"REPORT RequestId: flood-{n}\t")
            assert len(result.logs) < DEFAULT_MAX_LOG_BYTES + 4096


def test_a_timed_out_worker_takes_its_handlers_processes_with_it(tmp_path: Path):
    with WorkerPool() as pool:
        spec = _spec(tmp_path, SPAWNER, timeout=2)
        done = pool.invoke(spec, b"{}", "spawn")
        pids = json.loads(done.payload)
        assert not _gone(pids["session"]) and not _gone(pids["daemon"])
        hung = pool.invoke(spec, b'{"hang": true}', "hang")
        assert hung.timed_out
        # the timeout ended the worker, and with it what both invocations started
        wait_for(lambda: _gone(pids["session"]) and _gone(pids["daemon"]), "the handler's processes ending", 10)


def test_closing_the_pool_ends_every_process_handlers_started(tmp_path: Path):
    pool = WorkerPool()
    spec = _spec(tmp_path, SPAWNER)
    pids = json.loads(pool.invoke(spec, b"{}", "spawn").payload)
    worker = pool.worker_pids()[0]
    pool.close()
    assert _gone(worker)
    wait_for(lambda: _gone(pids["session"]) and _gone(pids["daemon"]), "the handler's processes ending", 10)


def test_the_rotating_log_stays_within_its_files(tmp_path: Path):
    path = tmp_path / "sandbox.log"
    log = RotatingLog(path, max_bytes=20_000, backups=2)
    for n in range(5000):
        log(f"POST /restapis/abc/dev/_user_request_/ 200 1.0ms request-{n}")
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["sandbox.log", "sandbox.log.1", "sandbox.log.2"]
    assert all((tmp_path / name).stat().st_size <= 20_000 for name in files)
    assert path.read_text().splitlines()[-1].endswith("request-4999")


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real sandbox daemon (moto + gateway, two gateway processes) for this test."""
    project = tmp_path / "project"
    (project / ".orch" / "packages").mkdir(parents=True)
    monkeypatch.setenv("ORCH_GATEWAY_PROCESSES", "2")
    info = sandbox.ensure_running(project, region=REGION)
    try:
        yield project, info
    finally:
        sandbox.stop(project)


@pytest.mark.daemon
def test_in_the_sandbox_a_runaway_handler_is_contained_and_sandbox_stop_ends_its_children(daemon):
    project, info = daemon
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    clients = {name: session.client(name, endpoint_url=info.endpoint) for name in ("lambda", "apigateway", "iam")}

    class Aws:
        lambda_, apigw = clients["lambda"], clients["apigateway"]
        role_arn = clients["iam"].create_role(RoleName="runaway", AssumeRolePolicyDocument="{}")["Role"]["Arn"]

    chatty = Stack(Aws, project, "chatty", lambda _v: CHATTY).create()
    spawner = Stack(Aws, project, "spawner", lambda _v: SPAWNER).create()
    sandbox.mark_changed(project)
    base = info.gateway_endpoint
    helpers = [c.pid for c in psutil.Process(info.pid).children() if "orch.gateway.helper" in c.cmdline()]
    gateway_pids = [info.pid, *helpers]
    assert len(gateway_pids) == 2
    chatty_url = f"{base}/restapis/{chatty.api_id}/dev/_user_request_/"
    assert post(chatty_url)[0] == 200  # warm-up
    peaks = {pid: _peak_rss_kb(pid) for pid in gateway_pids}
    for _ in range(6):
        started = time.monotonic()
        status, body = post(chatty_url)
        assert (status, json.loads(body)) == (200, {"ok": True})
        assert time.monotonic() - started < 5.0
    for pid in gateway_pids:  # 300 MB printed; the gateway processes hardly notice
        assert _peak_rss_kb(pid) - peaks[pid] < 64 * 1024, pid
    log_files = list((project / ".orch" / "sandbox").glob("sandbox.log*"))
    assert sum(p.stat().st_size for p in log_files) < 1024 * 1024  # handler output is not there
    status, body = post(f"{base}/restapis/{spawner.api_id}/dev/_user_request_/")
    assert status == 200, body
    pids = json.loads(body)
    assert not _gone(pids["session"]) and not _gone(pids["daemon"])
    assert sandbox.stop(project)
    wait_for(lambda: _gone(pids["session"]) and _gone(pids["daemon"]), "the handler's processes ending", 10)
    assert all(_gone(pid) for pid in gateway_pids)
    assert not list((project / ".orch" / "sandbox" / "gateway-warm").iterdir())  # every process cleaned up
