"""Handler output in the emulator's CloudWatch Logs (issue 7's `orch logs` reads it there, as
on AWS): the function's log group, a stream per execution environment named like Lambda's,
each invocation framed by START/END/REPORT; shipped off the request path, bounded, and
never failing a request."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from tests.gateway.conftest import REGION, invoke_url
from tests.gateway.stacks import Stack, post

from orch.gateway.cloudwatch import MAX_BYTES_PER_CALL, LogShipper, _chunks
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


def test_each_invocation_is_framed_in_the_functions_log_group(aws, gw_project, serve):
    stack = Stack(aws, gw_project, "talker", lambda _v: TALKER).create()
    server = serve(processes=1, watch=False)
    url = invoke_url(server, stack.api_id, "dev") + "/"
    for _ in range(2):
        status, body = post(url)
        assert (status, json.loads(body)) == (200, {"ok": True})
    assert server.shipper.flush(10)
    logs = boto3.client(
        "logs", endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
    )
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
    server.shipper.client = boto3.client(
        "logs",
        endpoint_url="http://127.0.0.1:9",  # nothing listens there
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}),
    )
    url = invoke_url(server, stack.api_id, "dev") + "/"
    for _ in range(3):
        started = time.monotonic()
        assert post(url)[0] == 200
        assert time.monotonic() - started < 1.0
    assert server.shipper.flush(20)
    assert any("could not write handler logs to CloudWatch Logs" in line for line in lines)


class _StuckClient:
    """A logs client whose first call blocks until released (an emulator that hangs)."""

    class exceptions:  # noqa: N801 - boto3's shape
        class ResourceNotFoundException(Exception):
            pass

        class ResourceAlreadyExistsException(Exception):
            pass

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events: list[dict[str, Any]] = []

    def create_log_group(self, **_: Any) -> None:
        self.release.wait(30)

    def create_log_stream(self, **_: Any) -> None:
        pass

    def put_log_events(self, logEvents: list[dict[str, Any]], **_: Any) -> None:  # noqa: N803 - boto3's name
        self.events.extend(logEvents)


def test_the_queue_is_bounded_and_put_never_blocks():
    client = _StuckClient()
    lines: list[str] = []
    shipper = LogShipper(client, max_queued_bytes=64 * 1024, log=lines.append)
    line = "x" * 1000
    started = time.monotonic()
    for n in range(500):  # ~500 KB while the sender is stuck on its first call
        shipper.put(LogBatch("/aws/lambda/f", "s", ((n, line),)))
    assert time.monotonic() - started < 1.0
    assert shipper.dropped_events > 400
    assert sum("dropping handler log lines" in entry for entry in lines) == 1  # once per burst
    client.release.set()
    assert shipper.flush(10)
    assert 0 < len(client.events) < 100
    shipper.close()


def test_batches_respect_put_log_events_limits():
    events = [{"timestamp": n, "message": "m" * 200_000} for n in range(12)]
    chunks = _chunks(events)
    assert [len(c) for c in chunks] == [5, 5, 2]
    assert all(sum(len(e["message"]) + 26 for e in c) <= MAX_BYTES_PER_CALL for c in chunks)
    many = [{"timestamp": n, "message": "m"} for n in range(25_000)]
    assert [len(c) for c in _chunks(many)] == [10_000, 10_000, 5_000]
