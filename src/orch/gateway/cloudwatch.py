"""Handler logs into the emulator's CloudWatch Logs, where `orch logs` reads them on AWS too.

This module owns shipping ``workers.LogBatch``es (one execution environment's lines, framed
by Lambda's ``START``/``END``/``REPORT``) to the function's log group
``/aws/lambda/<function>`` and the worker's stream, off the request's path: ``put`` only
appends to a bounded queue and never blocks or raises; one background thread sends what
accumulated with ``PutLogEvents``, in batches within the service's limits (10,000 events
and 1,048,576 bytes a call, each event counting its UTF-8 size + 26 bytes:
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html).
It must not run handlers or decide what a line says.

As Lambda does when the log group is missing (the function's role may create it), the
group is created on first use; Terraform normally creates it first (modules/lambda).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from orch.gateway.workers import LogBatch

MAX_EVENTS_PER_CALL = 10_000
MAX_BYTES_PER_CALL = 1_048_576
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD
DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024
# Seconds a batch may wait for others before it is sent: one PutLogEvents a second instead
# of one every few requests (each costs the emulator, often in the same process, ~2 ms of
# CPU). Lambda itself delivers logs to CloudWatch with a delay of seconds.
DEFAULT_LINGER = 1.0


def _size(message: str) -> int:
    return len(message.encode("utf-8", "replace")) + EVENT_OVERHEAD


def _split(message: str) -> list[str]:
    """A message over CloudWatch's event size, cut into events that fit."""
    data = message.encode("utf-8", "replace")
    if len(data) <= MAX_EVENT_BYTES:
        return [message]
    return [data[i : i + MAX_EVENT_BYTES].decode("utf-8", "replace") for i in range(0, len(data), MAX_EVENT_BYTES)]


class LogShipper:
    """A bounded queue of ``LogBatch``es and the thread that sends them to CloudWatch Logs.

    ``logs_client`` is a boto3 ``logs`` client for the emulator. At most
    ``max_queued_bytes`` wait at a time; batches beyond that are dropped and counted
    (``dropped_events``), with one line to ``log`` per burst. What is queued is sent
    ``linger`` seconds after the first of it arrived (sooner once a quarter of the bound
    waits). Sending errors are logged, never raised. ``flush(timeout)`` sends at once and
    waits until everything queued so far was sent (tests, shutdown); ``close()`` sends what
    is left and stops the thread.
    """

    def __init__(
        self,
        logs_client: Any,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        linger: float = DEFAULT_LINGER,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.client = logs_client
        self.max_queued_bytes = max_queued_bytes
        self.linger = linger
        self.log = log or (lambda _line: None)
        self.sent_events = 0
        self.dropped_events = 0
        self._queue: deque[tuple[LogBatch, int]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._busy = False
        self._flushing = 0
        self._closed = False
        self._dropping = False
        self._streams: set[tuple[str, str]] = set()
        self._groups: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="gateway-cloudwatch", daemon=True)
        self._thread.start()

    # -- the request side --

    def put(self, batch: LogBatch) -> None:
        """Queue ``batch`` for sending; drops it when the queue is full. Never blocks."""
        size = sum(_size(message) for _ts, message in batch.events)
        with self._cond:
            if self._closed:
                return
            if self._queued_bytes + size > self.max_queued_bytes:
                self.dropped_events += len(batch.events)
                first = not self._dropping
                self._dropping = True
            else:
                self._queue.append((batch, size))
                self._queued_bytes += size
                self._dropping = False
                first = False
                if len(self._queue) == 1 or self._queued_bytes * 4 >= self.max_queued_bytes:
                    self._cond.notify()
        if first:
            self.log(
                f"gateway: CloudWatch Logs is behind; dropping handler log lines of {batch.group} "
                f"(more than {self.max_queued_bytes} bytes waiting)"
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every batch queued before this call was sent; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._queue or self._busy:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    # -- the sending side --

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                # let more arrive, unless someone waits for them or the queue is filling up
                send_at = time.monotonic() + self.linger
                while not (self._closed or self._flushing or self._queued_bytes * 4 >= self.max_queued_bytes):
                    remaining = send_at - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batches = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                self._busy = True
            try:
                self._send(batches)
            except Exception as exc:  # noqa: BLE001 - logging must never stop the gateway
                self.log(f"gateway: could not write handler logs to CloudWatch Logs: {exc!r}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, batches: list[tuple[LogBatch, int]]) -> None:
        streams: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for batch, _queued in batches:
            events = streams.setdefault((batch.group, batch.stream), [])
            for stamp, message in batch.events:
                # Lambda's events end with the newline the runtime wrote ("START ...\n")
                for piece in _split(message + "\n"):
                    events.append({"timestamp": stamp, "message": piece})
        for (group, stream), events in streams.items():
            events.sort(key=lambda event: event["timestamp"])  # the API wants them in order
            for chunk in _chunks(events):
                self._put(group, stream, chunk)

    def _put(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        errors = self.client.exceptions
        self._ensure_stream(group, stream)
        try:
            self.client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except errors.ResourceNotFoundException:  # deleted meanwhile (a destroy): start again
            self._groups.discard(group)
            self._streams.discard((group, stream))
            self._ensure_stream(group, stream)
            self.client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        self.sent_events += len(events)

    def _ensure_stream(self, group: str, stream: str) -> None:
        if (group, stream) in self._streams:
            return
        errors = self.client.exceptions
        if group not in self._groups:
            try:
                self.client.create_log_group(logGroupName=group)
            except errors.ResourceAlreadyExistsException:
                pass
            self._groups.add(group)
        try:
            self.client.create_log_stream(logGroupName=group, logStreamName=stream)
        except errors.ResourceAlreadyExistsException:
            pass
        self._streams.add((group, stream))


def _chunks(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = _size(event["message"])
        if current and (len(current) >= MAX_EVENTS_PER_CALL or size + event_size > MAX_BYTES_PER_CALL):
            chunks.append(current)
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        chunks.append(current)
    return chunks


__all__ = ["LogShipper"]
