"""Handler output in the emulator's CloudWatch Logs (issue 7's `orch logs` reads it there, as
on AWS): the function's log group, a stream per execution environment named like Lambda's,
each invocation framed by START/END/REPORT; shipped off the request path, bounded, and
never failing a request. Gateway processes only queue them: a child process
(``ShipperProcess``) runs the boto3 calls."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from typing import Any

import boto3
import psutil
from tests.gateway.conftest import REGION, invoke_url
from tests.gateway.stacks import Stack, post

from orch.gateway.cloudwatch import MAX_BYTES_PER_CALL, LogShipper, ShipperProcess, _chunks, _size
from orch.gateway.workers import LogBatch

TALKER = """
import logging

def handler(event, context):
    print("hello from the handler")
    logging.getLogger().warning("a warning")
    return {"ok": True}
"""

STREAM = re.compile(r"^\d{4}/\d\d/\d\d/\[(?P<version>[^\]]+)\][0-9a-f]{32}$")
# https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html (log output example)
START = re.compile(r"^START RequestId: (?P<id>\S+) Version: (?P<version>\S+)\n$")
END = re.compile(r"^END RequestId: (?P<id>\S+)\n$")
REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 128 MB\tMax Memory Used: \d+ MB(\tInit Duration: \d+\.\d\d ms)?\n$"
)


def _logs(aws) -> Any:
    return boto3.client(
        "logs", endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )


def test_each_invocation_is_framed_in_the_functions_log_group(aws, gw_project, serve, monkeypatch):
    calls: list[str] = []
    original = LogShipper._put
    monkeypatch.setattr(LogShipper, "_put", lambda self, group, *a: calls.append(group) or original(self, group, *a))
    stack = Stack(aws, gw_project, "talker", lambda _v: TALKER).create()
    server = serve(processes=1, watch=False)
    assert isinstance(server.shipper, ShipperProcess)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    for _ in range(2):
        status, body = post(url)
        assert (status, json.loads(body)) == (200, {"ok": True})
    assert server.shipper.flush(10)
    # the gateway process made no PutLogEvents call: its shipper's child process did
    assert calls == [] and server.shipper.pid not in (None, os.getpid())
    logs = _logs(aws)
    group = "/aws/lambda/talker"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 1  # one warm execution environment served both
    name = streams[0]["logStreamName"]
    assert STREAM.match(name) and STREAM.match(name)["version"] == stack.version
    messages = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=name)["events"]]
    invocations = []
    current: list[str] = []
    for message in messages:
        current.append(message)
        if message.startswith("REPORT "):
            invocations.append(current)
            current = []
    assert len(invocations) == 2 and not current, messages
    for number, lines in enumerate(invocations):
        start, *handler_lines, end, report = lines
        request_id = START.match(start)["id"]
        assert START.match(start)["version"] == stack.version
        assert END.match(end)["id"] == request_id and REPORT.match(report)["id"] == request_id
        assert ("\tInit Duration: " in report) == (number == 0)  # only the cold start has one
        assert handler_lines[0] == "hello from the handler\n"
        assert re.match(rf"^\[WARNING\]\t\S+Z\t{request_id}\ta warning\n$", handler_lines[1])


def test_an_unreachable_cloudwatch_never_fails_or_slows_a_request(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "unlogged", lambda _v: TALKER).create()
    lines: list[str] = []
    server = serve(processes=1, watch=False, log=lines.append)
    server.shipper.close()
    # the gateway's own kind of shipper, whose child sends where nothing listens
    server.shipper = ShipperProcess("http://127.0.0.1:9", REGION, log=lines.append)
    server.pool.log_sink = server.shipper.put
    url = invoke_url(server, stack.api_id, "dev") + "/"
    assert post(url)[0] == 200  # untimed: loads the API and starts the worker and the shipper's child
    for _ in range(3):
        started = time.monotonic()
        assert post(url)[0] == 200
        assert time.monotonic() - started < 1.0
    assert server.shipper.flush(20)
    assert any("could not write handler logs to CloudWatch Logs" in line for line in lines)


def test_the_child_process_ships_and_flush_waits_until_the_events_are_readable(aws):
    lines: list[str] = []
    shipper = ShipperProcess(aws.endpoint, REGION, log=lines.append)
    try:
        assert shipper.pid is None  # nothing to send yet: no process started
        now = int(time.time() * 1000)  # CloudWatch Logs refuses events older than 14 days
        for n in range(3):
            shipper.put(LogBatch("/aws/lambda/shipped", "2024/01/01/[1]abc", ((now + n, f"line {n}"),)))
        assert shipper.flush(30)
        pid = shipper.pid
        assert pid is not None and pid != os.getpid()
        assert "orch.gateway.cloudwatch" in " ".join(psutil.Process(pid).cmdline())
        events = _logs(aws).get_log_events(logGroupName="/aws/lambda/shipped", logStreamName="2024/01/01/[1]abc")
        assert [e["message"] for e in events["events"]] == ["line 0\n", "line 1\n", "line 2\n"]
        assert shipper.sent_events == 3 and shipper.dropped_events == 0
    finally:
        shipper.close()
    assert not psutil.pid_exists(pid), "close() left the shipper's child process"
    assert lines == []


def test_put_never_blocks_when_the_child_is_stuck_or_dead(aws):
    lines: list[str] = []
    shipper = ShipperProcess(aws.endpoint, REGION, max_queued_bytes=64 * 1024, log=lines.append)
    try:
        shipper.put(LogBatch("/aws/lambda/stuck", "s", ((1, "first"),)))
        assert shipper.flush(30)
        pid = shipper.pid
        os.kill(pid, signal.SIGSTOP)  # stuck: reads nothing, answers nothing
        line = "x" * 1000
        started = time.monotonic()
        for n in range(1000):  # ~1 MB: fills the pipe, then the queue
            shipper.put(LogBatch("/aws/lambda/stuck", "s", ((n, line),)))
        assert time.monotonic() - started < 1.0
        assert shipper.dropped_events > 0
        assert not shipper.flush(0.5)
        os.kill(pid, signal.SIGKILL)  # dead
        deadline = time.monotonic() + 10
        while not any("shipper process" in entry for entry in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not shipper.flush(5)  # waits until the queue is drained (dropped): the child is gone
        dropped = shipper.dropped_events
        started = time.monotonic()
        for n in range(1000):
            shipper.put(LogBatch("/aws/lambda/stuck", "s", ((n, line),)))
        assert time.monotonic() - started < 1.0
        assert shipper.dropped_events == dropped + 1000
        assert not shipper.flush(1)
    finally:
        started = time.monotonic()
        shipper.close()
    assert time.monotonic() - started < 5.0
    assert not psutil.pid_exists(pid)
    assert sum("the CloudWatch Logs shipper process" in entry for entry in lines) == 1, lines


def test_a_dead_shipper_child_is_replaced_and_shipping_resumes(aws):
    lines: list[str] = []
    shipper = ShipperProcess(aws.endpoint, REGION, log=lines.append, respawn_after=0.2)
    group, stream = "/aws/lambda/revived", "2024/01/01/[1]def"
    now = int(time.time() * 1000)
    pids = []
    try:
        shipper.put(LogBatch(group, stream, ((now, "before"),)))
        assert shipper.flush(30)
        first = shipper.pid
        pids.append(first)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not any("dropped until a new one starts" in entry for entry in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        # within respawn_after a batch is dropped; after it, the next batch starts a new child
        n = 0
        while True:
            n += 1
            shipper.put(LogBatch(group, stream, ((now + n, f"after {n}"),)))
            if shipper.flush(30) and shipper.pid not in (None, first):
                break
            assert time.monotonic() < deadline + 10, lines
            time.sleep(0.05)
        pids.append(shipper.pid)
        messages = [e["message"] for e in _logs(aws).get_log_events(logGroupName=group, logStreamName=stream)["events"]]
        assert messages[0] == "before\n" and messages[-1] == f"after {n}\n"
        assert shipper.sent_events == len(messages)
        assert any("starting a new CloudWatch Logs shipper process" in entry for entry in lines)
    finally:
        shipper.close()
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_closing_a_gateway_ends_its_shipper_process(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "closer", lambda _v: TALKER).create()
    server = serve(processes=1, watch=False)
    assert post(invoke_url(server, stack.api_id, "dev") + "/")[0] == 200
    assert server.shipper.flush(30)
    pid = server.shipper.pid
    assert pid is not None and psutil.pid_exists(pid)
    server.shutdown()
    server.server_close()
    assert not psutil.pid_exists(pid)


class _StuckClient:
    """A logs client whose first call blocks until released (an emulator that hangs)."""

    class exceptions:  # noqa: N801 - boto3's shape
        class ResourceNotFoundException(Exception):
            pass

        class ResourceAlreadyExistsException(Exception):
            pass

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.events: list[dict[str, Any]] = []

    def create_log_group(self, **_: Any) -> None:
        self.entered.set()
        self.release.wait(30)

    def create_log_stream(self, **_: Any) -> None:
        pass

    def put_log_events(self, logEvents: list[dict[str, Any]], **_: Any) -> None:  # noqa: N803 - boto3's name
        self.events.extend(logEvents)


def test_the_queue_is_bounded_and_put_never_blocks():
    client = _StuckClient()
    lines: list[str] = []
    shipper = LogShipper(client, max_queued_bytes=64 * 1024, log=lines.append)
    shipper.put(LogBatch("/aws/lambda/f", "s", ((0, "first"),)))
    assert client.entered.wait(10), "the sender never called CloudWatch Logs"
    line = "x" * 1000  # the sender is stuck on its first call from here on
    fit = shipper.max_queued_bytes // _size(line)  # batches the queue holds at once
    started = time.monotonic()
    for n in range(500):  # ~500 KB
        shipper.put(LogBatch("/aws/lambda/f", "s", ((n, line),)))
    assert time.monotonic() - started < 1.0
    assert shipper.dropped_events == 500 - fit
    assert sum("dropping handler log lines" in entry for entry in lines) == 1  # once per burst
    client.release.set()
    assert shipper.flush(10)
    assert len(client.events) == 1 + fit  # nothing lost but what was counted
    shipper.close()


def test_batches_respect_put_log_events_limits():
    events = [{"timestamp": n, "message": "m" * 200_000} for n in range(12)]
    chunks = _chunks(events)
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert all(sum(len(e["message"]) + 26 for e in c) <= MAX_BYTES_PER_CALL for c in chunks)
    many = [{"timestamp": n, "message": "m"} for n in range(25_000)]
    assert [len(c) for c in _chunks(many)] == [10_000, 10_000, 5_000]
