"""Extra gateway processes that share the gateway's listening port, and their protocol.

One Python process serves at most one core of gateway work (the GIL), so
``orch.gateway.app.build_server(..., processes=N)`` starts N-1 helper processes once, at
start-up. Each binds the same address with ``SO_REUSEPORT`` (Linux spreads new connections
across the sockets) and has its own registry and worker pool; nothing is started per
request. This module owns starting, watching and stopping helpers (``HelperProcesses``) and
the helper's side of the conversation (``run_helper``); it must not build the gateway's
parts: the helper's entry module (``python -m orch.gateway.helper``) hands ``run_helper``
the function that builds them, so nothing here imports the server or the composition root.

The parent talks to a helper through two pipes:

* the helper's stdin: ``stats`` lines ask for counters; end of file (the parent closed it or
  died) makes the helper stop its server and workers and exit;
* a message pipe from the helper: one JSON object a line, ``{"ready": pid}`` once it
  listens, ``{"log": [line, ...]}`` (passed to the parent's ``log``; a connection's lines
  in one message) and ``{"stats": {...}}`` answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

STOP_TIMEOUT = 15.0


MAX_DEFAULT_PROCESSES = 8  # each process holds boto3 and its own warm workers


def default_processes() -> int:
    """Gateway processes to run: ``ORCH_GATEWAY_PROCESSES``, else one more than the usable
    CPUs (at most ``MAX_DEFAULT_PROCESSES``): a process waits while its workers run a
    handler, so with one process per CPU the CPUs idle meanwhile (measured on 2 CPUs with
    bench/gateway.py: 3 processes serve ~10% more than 2)."""
    configured = os.environ.get("ORCH_GATEWAY_PROCESSES", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(2, min(cpus + 1, MAX_DEFAULT_PROCESSES))


class _Helper:
    def __init__(self, proc: subprocess.Popen, messages: int) -> None:
        self.proc = proc
        self.messages = messages
        self.ready = False
        self.ended = False
        self.stats: dict[str, Any] | None = None
        self.reader: threading.Thread | None = None


class HelperProcesses:
    """Helper gateway processes serving ``host:port`` next to this one (see the module doc)."""

    def __init__(
        self,
        count: int,
        *,
        host: str,
        port: int,
        aws_endpoint: str,
        region: str,
        project_dir: Path,
        refresh_interval: float,
        worker_pool_options: Mapping[str, Any] | None,
        log: Callable[[str], None],
        module: str = "orch.gateway.helper",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Start ``count`` helpers running ``python -m <module> CONFIG_JSON``; ``options``
        are passed through to the helper's build function untouched (JSON values)."""
        self.log = log
        self.module = module
        self._cond = threading.Condition()
        self._helpers: list[_Helper] = []
        self._closed = False
        config = {
            "host": host,
            "port": port,
            "aws_endpoint": aws_endpoint,
            "region": region,
            "project_dir": str(project_dir),
            "refresh_interval": refresh_interval,
            "worker_pool_options": dict(worker_pool_options or {}),
            **dict(options or {}),
        }
        env = orch_child_env()
        try:
            for _ in range(count):
                self._start(config, env)
        except BaseException:
            self.close()
            raise

    def _start(self, config: dict[str, Any], env: dict[str, str]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    json.dumps({**config, "message_fd": write_fd}),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                close_fds=True,
                env=env,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        helper = _Helper(proc, read_fd)
        helper.reader = threading.Thread(
            target=self._read, args=(helper,), name="gateway-helper-log", daemon=True
        )
        with self._cond:
            self._helpers.append(helper)
        helper.reader.start()

    def _read(self, helper: _Helper) -> None:
        pending = b""
        try:
            while True:
                try:
                    chunk = os.read(helper.messages, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._message(helper, line)
        finally:
            os.close(helper.messages)
            with self._cond:
                helper.ended = True
                self._cond.notify_all()

    def _message(self, helper: _Helper, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        lines = message.get("log")
        if lines is not None:
            for text in lines:
                try:
                    self.log(text)
                except Exception:  # a broken sink must not stop the reader
                    pass
            return
        with self._cond:
            if "ready" in message:
                helper.ready = True
            elif "stats" in message:
                helper.stats = message["stats"]
            self._cond.notify_all()

    @property
    def pids(self) -> list[int]:
        return [h.proc.pid for h in self._helpers]

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until every helper listens (True) or has exited / the timeout passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(h.ready or h.ended for h in self._helpers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return all(h.ready and not h.ended for h in self._helpers)

    def stats(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Each live helper's counters (pid, workers_started, worker_pids)."""
        with self._cond:
            helpers = [h for h in self._helpers if h.ready and not h.ended]
            for helper in helpers:
                helper.stats = None
        asked = []
        for helper in helpers:
            try:
                assert helper.proc.stdin is not None
                helper.proc.stdin.write(b"stats\n")
                helper.proc.stdin.flush()
                asked.append(helper)
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(h.stats is not None or h.ended for h in asked):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return [h.stats for h in asked if h.stats is not None]

    def request_stop(self) -> None:
        """Ask every helper to stop (end of file on its stdin) without waiting."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            helpers = list(self._helpers)
        for helper in helpers:
            try:
                if helper.proc.stdin is not None:
                    helper.proc.stdin.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stop every helper and wait for it to exit (killing it after ``STOP_TIMEOUT``)."""
        self.request_stop()
        with self._cond:
            helpers = list(self._helpers)
        deadline = time.monotonic() + STOP_TIMEOUT
        for helper in helpers:
            try:
                helper.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"gateway: helper process {helper.proc.pid} did not stop; killing it")
                helper.proc.kill()
                helper.proc.wait()
        for helper in helpers:
            if helper.reader is not None and helper.reader is not threading.current_thread():
                helper.reader.join(timeout=STOP_TIMEOUT)


def orch_child_env() -> dict[str, str]:
    """The environment for a ``python -m orch...`` child of a gateway process: this one's,
    with the folder holding this ``orch`` package first on PYTHONPATH, so the child runs the
    same orch (a source checkout included)."""
    env = dict(os.environ)
    source_root = str(Path(__file__).resolve().parents[2])  # the folder holding orch/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH", "")) if p)
    return env


# --- the helper process ------------------------------------------------------------------


LOG_BATCH_INTERVAL = 0.1  # seconds a helper's log line may wait to share a pipe write


class HelperLog:
    """The helper's ``log``: lines cross the pipe to the parent in batches, at most
    ``interval`` seconds after the first of them was logged, in the order logged. One pipe
    write per request (what this did before) cost each gateway process about 5% of its GIL
    time under ``bench/gateway.py``'s load, in the helper and again in the parent that reads
    it. ``close()`` sends what is left and stops the thread."""

    def __init__(self, send: Callable[[dict[str, Any]], None], interval: float = LOG_BATCH_INTERVAL) -> None:
        self._send = send
        self._interval = interval
        self._pending: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gateway-helper-log", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        with self._cond:
            self._pending.append(line)
            if len(self._pending) == 1:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._closed:
                    self._cond.wait(self._interval)  # let the lines of other requests join
                lines, self._pending = self._pending, []
                closed = self._closed
            if lines:
                self._send({"log": lines})
            if closed:
                return

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


def run_helper(config: dict[str, Any], build: Callable[[dict[str, Any], Callable[[str], None]], Any]) -> int:
    """A helper process's main loop: ``build(config, log)`` returns a started-to-be server
    (``serve_forever``, ``shutdown``, ``server_close``, ``local_stats``) or raises
    ``SandboxError``; then answer ``stats`` on stdin until end of file."""
    from orch.errors import SandboxError

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us

    def on_term(*_: Any) -> None:
        # End the stdin loop as the parent's end of file does (the read is retried after
        # the handler and finds /dev/null's end). Raising SystemExit instead could land in
        # the middle of the cleanup below, when the parent closes stdin at the same time
        # (`orch sandbox stop` signals the whole process group), and leave workers behind.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)

    signal.signal(signal.SIGTERM, on_term)
    fd = int(config["message_fd"])
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with lock:
            try:
                while data:
                    data = data[os.write(fd, data) :]
            except OSError:
                pass  # the parent is gone; stdin's end of file stops us

    log = HelperLog(send)
    try:
        server = build(config, log)
    except SandboxError as exc:
        log.close()
        send({"log": [f"gateway: helper process {os.getpid()} cannot serve: {exc.message}"]})
        return 1
    from orch.gateway.gcpause import bound_collection_pauses

    bound_collection_pauses()  # a process that exists to serve: short collector pauses
    thread = threading.Thread(target=server.serve_forever, name="gateway", daemon=True)
    thread.start()
    try:
        send({"ready": os.getpid()})
        for line in sys.stdin.buffer:
            if line.strip() == b"stats":
                send({"stats": server.local_stats()})
    finally:
        server.shutdown()
        server.server_close()
        log.close()
        os.close(fd)
    return 0
