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

Gateway processes do not talk to CloudWatch Logs themselves: botocore's serialization of a
second's events held a gateway process's GIL for ~8 ms at a time, and the requests arriving
then were its p99. ``ShipperProcess`` (what ``orch.gateway.app`` builds) queues batches like
``LogShipper`` and hands them, one JSON line per send, to a child process of its own,
``python -m orch.gateway.cloudwatch --endpoint URL --region R`` (``main``), which runs a
``LogShipper`` with the boto3 client. The protocol, one JSON object a line:

* parent to child (its stdin): ``{"batches": [[group, stream, [[ms, message], ...]], ...]}``
  and ``{"flush": n, "timeout": seconds}``; end of file: flush, then exit;
* child to parent (its stdout): ``{"log": line}`` (for the gateway's ``log``) and
  ``{"flushed": n, "ok": bool, "sent": events, "dropped": events}`` answering flush ``n``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from orch.aws import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from orch.gateway.multi import orch_child_env
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
# Seconds a gateway process's ShipperProcess lets batches gather before writing them to the
# child: a pipe write of a few dozen events is cheap, and the child lingers for DEFAULT_LINGER.
PIPE_LINGER = 0.05
SHIPPER_MODULE = "orch.gateway.cloudwatch"
CHILD_STOP_TIMEOUT = 5.0  # seconds close() waits for the child to exit before killing it
RESPAWN_AFTER = 10.0  # seconds after a child died before the next batch starts a new one


def logs_client(aws_endpoint: str, region: str) -> Any:
    """A boto3 ``logs`` client for the emulator at ``aws_endpoint`` in ``region``, with the
    sandbox's credentials, configured for shipping."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=SANDBOX_ACCESS_KEY_ID, aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY, region_name=region
    )
    # Thousands of log events a second under load: botocore's parameter validation of each
    # was a fifth of the shipping cost, and the shipper builds them well-formed itself.
    return session.client(
        "logs", endpoint_url=aws_endpoint, config=Config(parameter_validation=False, retries={"max_attempts": 2})
    )


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

    Subclasses change where batches go by overriding ``_send`` (``ShipperProcess``).
    """

    thread_name = "gateway-cloudwatch"

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
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
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
        """Send what is queued (waiting at most ``timeout`` seconds), then stop the thread."""
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
        """Deliver ``batches`` (each with its queued size in bytes), on the sending thread;
        an exception is logged by the caller."""
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


class ShipperProcess(LogShipper):
    """``LogShipper``'s interface with the sending done by a child process (module doc).

    ``put`` queues as ``LogShipper`` does (bounded by ``max_queued_bytes``, never blocking);
    every ``linger`` seconds the thread writes what gathered to the child's stdin. The child
    (started by the first send, so a gateway that never logs starts none, and nobody waits
    for its boto3 import) sends it to ``aws_endpoint`` in ``region``. ``flush(timeout)``
    returns True once the child answered that everything queued before the call reached
    CloudWatch Logs. ``sent_events`` is the child's count as of its last flush answer,
    ``dropped_events`` this side's drops plus the child's. When the child dies, one line
    goes to ``log`` and batches are dropped (counted) for ``respawn_after`` seconds; the
    first batch after that starts a new child (one line to ``log``); requests never notice.
    ``close()`` flushes, ends the child's stdin and waits for it (killing it after
    ``CHILD_STOP_TIMEOUT`` seconds). The child stays in this process's process group and
    ignores SIGINT/SIGTERM: it ends when its stdin does, this process's death included.
    """

    thread_name = "gateway-cloudwatch-pipe"

    def __init__(
        self,
        aws_endpoint: str,
        region: str,
        *,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        linger: float = PIPE_LINGER,
        log: Callable[[str], None] | None = None,
        respawn_after: float = RESPAWN_AFTER,
    ) -> None:
        self.aws_endpoint = aws_endpoint
        self.respawn_after = respawn_after
        self._died_at: float | None = None
        self._sent_before = 0  # events earlier children reported sent
        self.region = region
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._dead = False
        self._stopping = False
        self._flushes = 0
        self._acks: dict[int, bool | None] = {}  # flush number -> None until answered
        self._child_dropped = 0
        super().__init__(None, max_queued_bytes=max_queued_bytes, linger=linger, log=log)

    @property
    def pid(self) -> int | None:
        """The child's pid, once started."""
        return self.proc.pid if self.proc is not None else None

    # -- the request side --

    def put(self, batch: LogBatch) -> None:
        """Queue ``batch`` for the child; dropped (counted) when full or the child died."""
        if self._dead and not self._respawn_due():
            with self._cond:
                self.dropped_events += len(batch.events)
            return
        super().put(batch)

    def _respawn_due(self) -> bool:
        died_at = self._died_at
        return died_at is not None and not self._stopping and time.monotonic() - died_at >= self.respawn_after

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the child reports every batch queued before this call handed to
        CloudWatch Logs (as ``LogShipper.flush``: a failed send was logged, and counts as
        done); False on timeout or when the child is gone."""
        deadline = time.monotonic() + timeout
        if not super().flush(timeout):
            return False
        if self.proc is None:
            return not self._dead  # nothing was ever sent (or the child could not start)
        with self._cond:
            self._flushes += 1
            number = self._flushes
            self._acks[number] = None
        try:
            request = {"flush": number, "timeout": max(0.0, deadline - time.monotonic())}
            if not self._write((json.dumps(request) + "\n").encode(), deadline):
                return False
            with self._cond:
                while self._acks[number] is None:
                    remaining = deadline - time.monotonic()
                    if self._dead or remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return bool(self._acks[number])
        finally:
            with self._cond:
                self._acks.pop(number, None)

    def close(self, timeout: float = CHILD_STOP_TIMEOUT) -> None:
        """Flush (at most ``timeout`` seconds), stop the thread, end the child's stdin and
        wait for it to exit, killing it when it does not in time. Idempotent."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        proc = self.proc
        if proc is None:
            return
        self._stopping = True
        if self._thread.is_alive():  # stuck writing to a child that does not read
            proc.kill()
            self._thread.join(1.0)
        if not self._thread.is_alive():
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.log(f"gateway: the CloudWatch Logs shipper process {proc.pid} did not stop; killing it")
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(1.0)

    # -- the sending side --

    def _send(self, batches: list[tuple[LogBatch, int]]) -> None:
        if self._dead and self._respawn_due():
            self._forget_child()
            self.log("gateway: starting a new CloudWatch Logs shipper process")
        if self.proc is None and not self._dead:
            self._spawn()
        data = json.dumps(
            {"batches": [[batch.group, batch.stream, batch.events] for batch, _size in batches]},
            separators=(",", ":"),
        )
        if self._dead or not self._write((data + "\n").encode(), None):
            with self._cond:
                self.dropped_events += sum(len(batch.events) for batch, _size in batches)

    def _forget_child(self) -> None:
        """Reap the dead child so the next send starts a new one (on the sender thread)."""
        old = self.proc
        if old is not None:
            if old.poll() is None:
                old.kill()
            try:
                old.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
            if old.stdin is not None:
                try:
                    old.stdin.close()
                except OSError:
                    pass
        if self._reader is not None:
            self._reader.join(1.0)
        with self._cond:
            self.proc = None
            self._reader = None
            self._sent_before = self.sent_events
            self._child_dropped = 0
            self._dead = False
            self._died_at = None

    def _spawn(self) -> None:
        env = orch_child_env()
        command = [sys.executable, "-m", SHIPPER_MODULE, "--endpoint", self.aws_endpoint, "--region", self.region]
        try:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=env)
        except OSError as exc:
            self._died(f"could not start ({exc!r})", None)
            return
        assert proc.stdin is not None
        os.set_blocking(proc.stdin.fileno(), False)  # writes wait in select, a bounded time
        self.proc = proc
        self._reader = threading.Thread(target=self._read, args=(proc,), name="gateway-cloudwatch-reader", daemon=True)
        self._reader.start()

    def _write(self, data: bytes, deadline: float | None) -> bool:
        """Write ``data`` to the child's stdin; True once all of it is in the pipe. Waits
        until ``deadline`` (monotonic seconds; None: until the child dies or is killed).
        Only flush requests have a deadline, and they are shorter than PIPE_BUF, so the
        kernel writes them whole or not at all: a timeout never leaves half a line."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            return False
        if deadline is None:
            locked = self._write_lock.acquire()
        else:
            locked = self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if not locked:
            return False
        try:
            fd = proc.stdin.fileno()
            view = memoryview(data)
            while view:
                if self._dead:
                    return False
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                    select.select([], [fd], [], wait)
                except (OSError, ValueError) as exc:  # EPIPE: the child is gone
                    self._died(f"stopped reading ({exc!r})", proc)
                    return False
            return True
        finally:
            self._write_lock.release()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "log" in message:
                    try:
                        self.log(str(message["log"]))
                    except Exception:  # noqa: BLE001 - a broken sink must not stop the reader
                        pass
                elif "flushed" in message:
                    with self._cond:
                        number = message["flushed"]
                        if number in self._acks:
                            self._acks[number] = bool(message.get("ok"))
                        self.sent_events = self._sent_before + int(message.get("sent", 0))
                        dropped = int(message.get("dropped", self._child_dropped))
                        self.dropped_events += dropped - self._child_dropped
                        self._child_dropped = dropped
                        self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            proc.stdout.close()
        try:
            code: int | None = proc.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        self._died(f"exited (code {code})", proc)

    def _died(self, why: str, proc: subprocess.Popen | None) -> None:
        with self._cond:
            if self._dead or proc is not self.proc:
                return  # said already, or an earlier child's reader finishing late
            self._dead = True
            self._died_at = time.monotonic()
            self._cond.notify_all()
        if not self._stopping:
            self.log(
                f"gateway: the CloudWatch Logs shipper process {why}; handler log lines are dropped "
                f"until a new one starts (in {self.respawn_after:g} s)"
            )


# --- the child process -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """The shipper child's main (``python -m orch.gateway.cloudwatch``): a ``LogShipper``
    fed from stdin until it ends, answering flushes on stdout (module doc)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway stops us by ending stdin,
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after its last batches
    parser = argparse.ArgumentParser(prog=f"python -m {SHIPPER_MODULE}")
    parser.add_argument("--endpoint", required=True, help="the emulator's URL")
    parser.add_argument("--region", required=True)
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with lock:
            try:
                out.write(data)
                out.flush()
            except (OSError, ValueError):
                pass  # the gateway is gone; stdin's end of file stops us

    shipper = LogShipper(logs_client(args.endpoint, args.region), log=lambda line: send({"log": line}))
    try:
        for line in sys.stdin.buffer:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "batches" in message:
                for group, stream, events in message["batches"]:
                    shipper.put(LogBatch(group, stream, tuple((stamp, text) for stamp, text in events)))
            elif "flush" in message:
                ok = shipper.flush(float(message.get("timeout", 10.0)))
                sent, dropped = shipper.sent_events, shipper.dropped_events
                send({"flushed": message["flush"], "ok": ok, "sent": sent, "dropped": dropped})
    finally:
        shipper.close()
    return 0


__all__ = ["LogShipper", "ShipperProcess", "logs_client"]

if __name__ == "__main__":
    raise SystemExit(main())
