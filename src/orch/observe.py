"""`orch logs` and `orch invoke`: a deployed function's CloudWatch Logs, and one call of it
through its stage alias, the same on AWS and in the sandbox.

This module reads log events (FilterLogEvents, polled for `--follow`, since the emulator
has no live tail) and formats them, and invokes the function (Lambda Invoke; in the sandbox
the local gateway answers that call and runs the real handler). It reaches AWS only through
an orch.aws.Aws it is given, prints only through the callables it is given, and changes
nothing deployed.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orch.errors import AwsNotFound, ConfigError

SINCE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
FOLLOW_INTERVAL = 1.0  # seconds between polls with --follow (the emulator has no live tail)


def parse_since(text: str) -> int:
    """`10m` -> 600 seconds (s, m, h, d, w). ConfigError naming --since otherwise."""
    match = SINCE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--since {text}: expected a duration such as 30s, 10m, 2h or 1d.")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def log_group(function_name: str) -> str:
    """Lambda's log group of a function: https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html"""
    return f"/aws/lambda/{function_name}"


def format_event(event: dict[str, Any]) -> str:
    """`2025-01-02T03:04:05.678Z [3] message`: time, the version from the stream name
    (`YYYY/MM/DD/[<version>]<id>`), and the message without its trailing newline. Lambda's
    runtimes write an error and its stack trace as one event with "\r" between its lines
    (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html); they are shown as
    lines here, indented under the event."""
    stamp = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, UTC)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    stream = str(event.get("logStreamName", ""))
    version = stream[stream.find("[") : stream.find("]") + 1] if "[" in stream and "]" in stream else stream
    message = str(event.get("message", "")).rstrip("\n").replace("\r\n", "\r").replace("\r", "\n    ")
    return f"{when} {version} {message}"


class LogReader:
    """Reads a log group's events from a start time on, each event once."""

    def __init__(self, aws: Any, group: str, *, start_ms: int, pattern: str | None = None) -> None:
        self.aws, self.group, self.pattern = aws, group, pattern
        self.start_ms = start_ms
        self._seen: set[str] = set()  # event ids at the newest timestamp read so far

    def read(self) -> list[dict[str, Any]]:
        """Every event not read before, oldest first (all pages). AwsNotFound without the group."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page, token = self.aws.log_events(self.group, start_ms=self.start_ms, pattern=self.pattern, token=token)
            events += page
            if not token or not page:
                break
        # By time only, and stable: events of one millisecond keep the order CloudWatch returned
        # (the order written), so START stays before END and REPORT (event ids are not ordered).
        events.sort(key=lambda e: int(e.get("timestamp", 0)))
        fresh = [e for e in events
                 if int(e.get("timestamp", 0)) >= self.start_ms and str(e.get("eventId")) not in self._seen]
        if fresh:
            newest = max(int(e.get("timestamp", 0)) for e in fresh)
            if newest > self.start_ms:
                self._seen = set()
            self.start_ms = max(self.start_ms, newest)
            self._seen |= {str(e.get("eventId")) for e in events if int(e.get("timestamp", 0)) == self.start_ms}
        return fresh


def show_logs(aws: Any, function_name: str, *, since_seconds: int, pattern: str | None, follow: bool,
              emit: Callable[[str], None], note: Callable[[str], None],
              interval: float = FOLLOW_INTERVAL, sleep: Callable[[float], None] = time.sleep,
              polls: int | None = None) -> int:
    """Print the function's log events of the last `since_seconds` through `emit`; with
    `follow`, keep polling every `interval` seconds until Ctrl-C (or `polls` polls). Returns
    how many events were shown. Without `follow`, a missing log group is an AwsNotFound."""
    group = log_group(function_name)
    reader = LogReader(aws, group, start_ms=int((time.time() - since_seconds) * 1000), pattern=pattern)
    shown = 0
    told_missing = False
    done = 0
    try:
        while True:
            try:
                for event in reader.read():
                    emit(format_event(event))
                    shown += 1
            except AwsNotFound:
                if not follow:
                    raise AwsNotFound(f"log group {group} does not exist: the function has not been deployed "
                                      "(or has not run) yet.") from None
                if not told_missing:
                    note(f"log group {group} does not exist yet; waiting for it (Ctrl-C stops)")
                    told_missing = True
            done += 1
            if not follow or (polls is not None and done >= polls):
                return shown
            sleep(interval)
    except KeyboardInterrupt:
        return shown


# ---------------------------------------------------------------------------- invoke


def payload_from(data: str | None, data_file: Path | None) -> bytes:
    """The event to send: `--data` JSON text or the JSON in `--data-file`; `{}` without
    either. ConfigError naming the option when it is not JSON or both are given."""
    if data is not None and data_file is not None:
        raise ConfigError("--data and --data-file: give one of them, not both.")
    if data_file is not None:
        try:
            data = data_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--data-file {data_file}: cannot read it as UTF-8 text ({exc}).") from None
        where = f"--data-file {data_file}"
    else:
        where = "--data"
    if data is None:
        return b"{}"
    try:
        json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc}).",
                          hint="Lambda events are JSON, e.g. --data '{\"a\": 1}'.") from None
    return data.encode()


@dataclass(frozen=True)
class Invocation:
    """One Invoke's answer: the function's result (or error document), whether it failed
    (`X-Amz-Function-Error`), the version that ran, and the log tail (with --log)."""

    payload: bytes
    function_error: str | None
    executed_version: str | None
    log: str

    def payload_text(self) -> str:
        """The result as pretty JSON when it is JSON, else as text."""
        text = self.payload.decode("utf-8", "replace")
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            return text


def invoke(aws: Any, function_name: str, alias: str, payload: bytes, *, log: bool) -> Invocation:
    """Invoke `function_name` through its stage alias (RequestResponse, LogType Tail with `log`)."""
    answer = aws.invoke(function_name, alias, payload, tail=log)
    tail = base64.b64decode(answer.get("LogResult") or "").decode("utf-8", "replace") if log else ""
    return Invocation(answer.get("Payload") or b"", answer.get("FunctionError"), answer.get("ExecutedVersion"), tail)
