"""Run Lambda handlers the way Lambda does: in warm, reused worker processes.

``WorkerPool.invoke(spec, event, request_id)`` is the only entry point the gateway needs.
For each execution environment key (function name, version, code directory, handler,
runtime, memory, timeout, environment, region) the pool keeps worker processes that were
started on first use (cold start: spawn + import the handler module) and are reused for
later invocations (warm path: no process is started). At most ``max_workers_per_function``
workers of one key are busy at a time; an invocation that finds none free starts one (up to
the maximum) or waits for one up to ``queue_timeout`` seconds, then gets Lambda's
``TooManyRequestsException``. Workers idle for ``idle_timeout`` seconds are stopped by a
daemon thread (``Event.wait``, no sleeps); a new code/config for the same function name and
version retires the previous environments.

Workers run ``runtimes/python_bootstrap.py`` (python3.x, with this interpreter) or
``runtimes/node_bootstrap.js`` (nodejs*.x, with ``node`` from PATH). Requests and answers are
length-prefixed frames on two dedicated pipes (see the bootstrap docstring); the worker's
stdout/stderr is a third pipe, so a handler's ``print``/``console.log`` can never corrupt
the protocol. Its output is read while the handler runs and handed to ``log_sink`` as one
``LogBatch`` per invocation for the execution environment's CloudWatch Logs stream
(``/aws/lambda/<name>``, ``YYYY/MM/DD/[<version>]<32 hex>``, one stream per worker as on
Lambda), framed by Lambda's ``START``/``END``/``REPORT`` lines, each line as the runtime
wrote it (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html shows the
shape). At most ``max_log_bytes`` of one invocation's output are kept (the rest is read
and dropped, and a line says how much), so a handler printing 50 MB costs neither memory
nor time.

Limits, enforced per invocation:

* timeout: after ``spec.timeout`` seconds the worker's process group is killed and the
  result has ``timed_out=True`` and Lambda's ``Sandbox.Timedout`` error;
* memory: like Lambda, a worker whose peak RSS (reported with every answer) exceeds
  ``memory_size`` MB is treated as killed for running out of memory. As hard limits, Python
  workers get ``RLIMIT_DATA`` = the interpreter's data size at start-up (about 5 MB) +
  ``memory_size`` MB + a 64 MB allowance for thread stacks (8 MB of address space each, which
  RLIMIT_DATA counts), and Node workers ``--max-old-space-size=<memory_size>``. Either way
  the result is ``Runtime.OutOfMemory`` with ``crashed=True`` and the worker is replaced;
* a worker that exits or dies (``sys.exit``, ``os._exit``, a signal) gives
  ``Runtime.ExitError`` with ``crashed=True``; the worker is replaced on the next call.

Whenever a worker is ended (timeout, crash, retirement, idle, ``close()``), every process
its handler started ends with it, also those in their own session (``proctree``).

Results never raise for function problems: a handler exception gives ``error`` in the
runtime's shape (Python ``{"errorMessage", "errorType", "requestId", "stackTrace"}``, Node
``{"errorType", "errorMessage", "trace"}``), a module that does not import gives
``Runtime.ImportModuleError``/``Runtime.HandlerNotFound``/``Runtime.UserCodeSyntaxError``
(the worker is dropped and init retried on the next call, like Lambda), an unsupported
runtime, a missing ``node`` or code directory gives ``Runtime.InvalidEntrypoint`` with
``crashed=True``. Only ``invoke`` on a closed pool raises (``SandboxError``).

The worker's environment is Lambda's: the function's variables plus the reserved ones
(``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_REGION``, ``_HANDLER``, ``TZ=:UTC`` ...), ``PATH`` and
``LANG``, the AWS credentials of the gateway's own environment (``test``/``test`` when it
has none, so a handler never picks up a developer's real profile) and any
``AWS_ENDPOINT_URL*`` the gateway has.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orch.aws import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from orch.errors import SandboxError
from orch.gateway.proctree import kill_tree

RUNTIMES_DIR = Path(__file__).resolve().parent / "runtimes"
PYTHON_BOOTSTRAP = RUNTIMES_DIR / "python_bootstrap.py"
NODE_BOOTSTRAP = RUNTIMES_DIR / "node_bootstrap.js"

INIT_TIMEOUT = 10.0  # seconds Lambda gives the init phase (module import)
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_QUEUE_TIMEOUT = 30.0

_STATUS_OK = 0
_STATUS_ERROR = 1
_STATUS_INIT_ERROR = 2
_STATUS_OOM = 3
_STATUS_READY = 4
_STATUS_FATAL = 5

_REQ_HEADER = struct.Struct("!II")
_RESP_HEADER = struct.Struct("!BII")
_RESP_HEADER_SIZE = _RESP_HEADER.size
_PIPE_SIZE = 1 << 20
_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
_PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
_READ_SIZE = 1 << 20
STREAM_VARIABLE = "AWS_LAMBDA_LOG_STREAM_NAME"
DEPENDENCY_PATH_VARIABLE = "ORCH_DEPENDENCY_PATH"
# What one invocation's output may keep: CloudWatch Logs' largest event (256 KB); beyond it
# the output is read and dropped. https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html
DEFAULT_MAX_LOG_BYTES = 256 * 1024


@dataclass(frozen=True)
class FunctionSpec:
    """What the gateway knows about the function version it invokes."""

    name: str
    version: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    arn: str
    # Hot reload (orch.gateway.localcode): folders searched for modules after ``code_dir``
    # (the deployed package, whose vendored dependencies the source folder lacks), and a
    # revision that changes with every saved edit, so edited code gets new workers.
    dependency_dirs: tuple[Path, ...] = ()
    revision: str = ""


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation.

    ``payload`` is the handler's serialised result (``None`` when ``error`` is set);
    ``error`` is the document Lambda would return for a failed invocation
    (``errorMessage``/``errorType`` plus ``stackTrace`` (Python) or ``trace`` (Node)).
    ``duration_ms`` is Lambda's Duration: from handing the event to the worker to its
    answer (cold start and queueing excluded). ``logs`` is the invocation's log text
    (``START`` ... ``REPORT``), the same lines that went to ``log_sink``.
    """

    payload: bytes | None
    error: dict | None
    timed_out: bool = False
    crashed: bool = False
    duration_ms: float = 0.0
    logs: str = ""


@dataclass(frozen=True)
class LogBatch:
    """Log events of one execution environment, for its CloudWatch Logs stream.

    ``group`` is ``/aws/lambda/<function name>``, ``stream`` the worker's stream name,
    ``events`` (epoch milliseconds, message) in order.
    """

    group: str
    stream: str
    events: tuple[tuple[int, str], ...]

    @property
    def lines(self) -> list[str]:
        return [message for _ts, message in self.events]


def _now_ms() -> int:
    return int(time.time() * 1000)


class _LogBuffer:
    """A worker's output during one exchange: at most ``limit`` bytes kept, with the time
    each chunk was read; the rest is counted and dropped."""

    __slots__ = ("chunks", "kept", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.chunks: list[tuple[int, bytes]] = []
        self.kept = 0
        self.dropped = 0
        self.limit = limit

    def add(self, chunk: bytes) -> None:
        room = self.limit - self.kept
        if room <= 0:
            self.dropped += len(chunk)
            return
        if len(chunk) > room:
            self.dropped += len(chunk) - room
            chunk = chunk[:room]
        self.kept += len(chunk)
        self.chunks.append((_now_ms(), chunk))

    def events(self) -> list[tuple[int, str]]:
        """The output as log events: one per line, as written (no trailing newline)."""
        events: list[tuple[int, str]] = []
        partial = b""
        stamp = _now_ms()
        for stamp, chunk in self.chunks:
            *complete, partial = (partial + chunk).split(b"\n")
            for line in complete:
                events.append((stamp, line.decode("utf-8", "replace")))
        if partial:
            events.append((stamp, partial.decode("utf-8", "replace")))
        if self.dropped:
            events.append(
                (
                    _now_ms(),
                    f"orch: {self.dropped} more bytes of output were dropped (the local gateway "
                    f"keeps {self.limit} bytes of each invocation's output)",
                )
            )
        return events


# ---- one worker process -------------------------------------------------------------------


class _Exchange:
    """What came back from a worker for one frame."""

    __slots__ = ("outcome", "status", "body", "log")

    def __init__(self, outcome: str, status: int, body: bytes, log: _LogBuffer) -> None:
        self.outcome = outcome  # "frame" | "timeout" | "eof" | "undelivered"
        self.status = status
        self.body = body
        self.log = log


class _Worker:
    __slots__ = (
        "proc",
        "pid",
        "req_w",
        "resp_r",
        "log_r",
        "poller",
        "last_used",
        "max_rss_kb",
        "invocations",
        "dead",
        "name",
        "stream",
        "max_log_bytes",
    )

    def __init__(
        self,
        proc: subprocess.Popen,
        req_w: int,
        resp_r: int,
        log_r: int,
        name: str,
        stream: str,
        max_log_bytes: int,
    ) -> None:
        self.name = name
        self.stream = stream
        self.max_log_bytes = max_log_bytes
        self.proc = proc
        self.pid = proc.pid
        self.req_w = req_w
        self.resp_r = resp_r
        self.log_r = log_r
        self.poller = select.poll()
        self.poller.register(resp_r, _POLLIN)
        self.poller.register(log_r, _POLLIN)
        self.last_used = time.monotonic()
        self.max_rss_kb = 0
        self.invocations = 0
        self.dead = False

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def exchange(self, frame: bytes, deadline: float) -> _Exchange:
        """Send ``frame`` (may be empty) and read the next answer frame and the logs."""
        log = _LogBuffer(self.max_log_bytes)
        poller, resp_r, log_r, req_w = self.poller, self.resp_r, self.log_r, self.req_w
        pending = memoryview(frame) if frame else None
        if pending is not None:
            try:
                pending = pending[os.write(req_w, pending) :] or None
            except BlockingIOError:
                pass
            except OSError:
                # the worker died while idle: the request never reached it
                return self._finish("undelivered", log)
            if pending is not None:
                poller.register(req_w, select.POLLOUT)
        buf = b""
        need = _RESP_HEADER_SIZE
        status = -1
        monotonic, read, poll = time.monotonic, os.read, poller.poll
        try:
            while True:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return self._finish("timeout", log)
                ready = poll(remaining * 1000.0)
                for fd, _ev in ready:
                    if fd == resp_r:
                        chunk = read(resp_r, max(need - len(buf), 65536))
                        if not chunk:
                            return self._finish("eof", log)
                        buf = buf + chunk if buf else chunk
                        if status < 0 and len(buf) >= _RESP_HEADER_SIZE:
                            status, rss, length = _RESP_HEADER.unpack_from(buf)
                            self.max_rss_kb = rss
                            need = _RESP_HEADER_SIZE + length
                        if status >= 0 and len(buf) >= need:
                            body = buf[_RESP_HEADER_SIZE:need]
                            # the runtime flushes its output before it answers, so the log
                            # pipe has data now only if this poll said so
                            if any(ready_fd == log_r for ready_fd, _ in ready):
                                self._drain_log(log)
                            return _Exchange("frame", status, body, log)
                    elif fd == log_r:
                        try:
                            chunk = read(log_r, _READ_SIZE)
                        except BlockingIOError:
                            continue
                        if chunk:
                            log.add(chunk)
                        else:
                            poller.unregister(log_r)
                    elif pending is not None:
                        try:
                            pending = pending[os.write(req_w, pending) :] or None
                        except BlockingIOError:
                            continue
                        except OSError:
                            return self._finish("eof", log)
                        if pending is None:
                            poller.unregister(req_w)
        finally:
            if pending is not None:
                try:
                    poller.unregister(req_w)
                except KeyError:
                    pass

    def _finish(self, outcome: str, log: _LogBuffer) -> _Exchange:
        self.kill()
        self._drain_log(log)
        return _Exchange(outcome, -1, b"", log)

    def _drain_log(self, log: _LogBuffer) -> None:
        while True:
            try:
                chunk = os.read(self.log_r, _READ_SIZE)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            log.add(chunk)

    def kill(self) -> None:
        """End the worker and every process its handler started, and reap the worker
        (file descriptors stay open)."""
        if self.dead:
            return
        self.dead = True
        proc = self.proc
        if proc.returncode is not None:
            return
        kill_tree(proc.pid, (STREAM_VARIABLE, self.stream))
        try:
            # wait4 rather than proc.wait(): its rusage has the worker's peak RSS
            _pid, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:  # reaped by a concurrent poll()
            proc.wait()
            return
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.max_rss_kb = max(self.max_rss_kb, usage.ru_maxrss)

    def close(self) -> None:
        self.kill()
        for fd in (self.req_w, self.resp_r, self.log_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.req_w = self.resp_r = self.log_r = -1


def _set_pipe_size(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except (OSError, AttributeError):
        pass


def _set_nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _region_of(arn: str) -> str:
    parts = arn.split(":", 4)
    if len(parts) > 3 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


# ---- the pool -----------------------------------------------------------------------------


@dataclass
class _FunctionPool:
    key: tuple
    spec: FunctionSpec
    region: str
    cond: threading.Condition = field(default_factory=threading.Condition)
    idle: list[_Worker] = field(default_factory=list)
    count: int = 0  # live and starting workers
    retired: bool = False
    warming: bool = False  # a worker is being started ahead of the first invocation


class _Throttled(Exception):
    pass


class WorkerPool:
    """Warm Lambda execution environments, shared by the gateway's request threads."""

    def __init__(
        self,
        *,
        max_workers_per_function: int = 4,
        log_sink: Callable[[LogBatch], None] | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
        base_environment: Mapping[str, str] | None = None,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
    ) -> None:
        """``log_sink``: gets each invocation's (and each init's) ``LogBatch``; it must not
        block (``orch.gateway.cloudwatch.LogShipper.put``);
        ``idle_timeout``: seconds before an unused worker is stopped (0: never);
        ``queue_timeout``: how long an invocation waits for a busy function's free worker;
        ``base_environment``: variables every worker gets under the function's own (for
        example ``{"AWS_ENDPOINT_URL": <emulator>}`` so handlers' SDK calls reach it);
        ``max_log_bytes``: how much of one invocation's output is kept.
        """
        if max_workers_per_function < 1:
            raise ValueError("max_workers_per_function must be at least 1")
        self.max_workers_per_function = max_workers_per_function
        self.log_sink = log_sink
        self.idle_timeout = idle_timeout
        self.queue_timeout = queue_timeout
        self.base_environment = dict(base_environment or {})
        self.max_log_bytes = max_log_bytes
        self.workers_started = 0  # processes spawned so far (cold starts)
        self._lock = threading.Lock()
        self._pools: dict[tuple, _FunctionPool] = {}
        self._workers: set[_Worker] = set()
        self._closed = False
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- public API --

    def invoke(self, spec: FunctionSpec, event: bytes, request_id: str) -> InvokeResult:
        """Run ``spec``'s handler on ``event`` (JSON bytes) and return what Lambda would."""
        pool = self._pool_for(spec)
        deadline = time.monotonic() + self.queue_timeout
        while True:
            try:
                worker = self._acquire(pool, deadline)
            except _Throttled:
                return self._report_throttled(spec, request_id)
            init_ms: float | None = None
            if worker is None:
                started = time.perf_counter()
                worker, failure = self._start_worker(pool, request_id)
                if worker is None:
                    return failure  # type: ignore[return-value]
                init_ms = (time.perf_counter() - started) * 1000.0
            result: InvokeResult | None = None
            keep = False
            try:
                result, keep = self._run(spec, worker, event, request_id, init_ms)
            finally:
                self._release(pool, worker, keep)
            if result is not None:
                return result
            # a warm worker had died while idle: run the request on another one

    def prewarm(self, spec: FunctionSpec) -> bool:
        """Start one worker for ``spec`` now (in this thread) unless it has one, live or
        starting, so the first invocation finds it warm. True when a worker is ready.
        An invocation arriving meanwhile waits for this worker instead of starting its own.
        Init failures are logged as Lambda logs them; they never raise."""
        pool = self._pool_for(spec)
        with pool.cond:
            if pool.count > 0 or pool.warming or pool.retired:
                return bool(pool.idle)
            pool.count += 1
            pool.warming = True
        worker: _Worker | None = None
        try:
            worker, _failure = self._start_worker(pool, "")
        finally:
            with pool.cond:
                pool.warming = False
                if worker is not None and not pool.retired and not self._closed:
                    worker.last_used = time.monotonic()
                    pool.idle.append(worker)
                    worker_kept = True
                else:
                    worker_kept = False
                    if worker is not None:
                        pool.count -= 1
                pool.cond.notify_all()
            if worker is not None and not worker_kept:
                self._discard(worker)
        return worker_kept

    def retain(self, specs: list[FunctionSpec]) -> int:
        """Retire the execution environments of every function version not in ``specs``
        (what is deployed now): idle workers stop at once, busy ones after their
        invocation. Returns how many environments were retired."""
        keep = {_pool_key(spec) for spec in specs}
        with self._lock:
            stale = [self._pools.pop(key) for key in list(self._pools) if key not in keep]
        for pool in stale:
            self._retire(pool)
        return len(stale)

    def warm_versions(self) -> list[str]:
        """``name:version`` of every function with an idle warm worker (stats, benchmark)."""
        with self._lock:
            pools = list(self._pools.values())
        warm = set()
        for pool in pools:
            with pool.cond:
                if any(not w.dead for w in pool.idle):
                    warm.add(f"{pool.spec.name}:{pool.spec.version}")
        return sorted(warm)

    def worker_pids(self, name: str | None = None) -> list[int]:
        """Pids of the live workers (of function ``name``): for tests and the benchmark."""
        with self._lock:
            return sorted(w.pid for w in self._workers if not w.dead and name in (None, w.name))

    def close(self) -> None:
        """Stop every worker and the reaper; later ``invoke`` calls raise ``SandboxError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
            workers = list(self._workers)
        self._stop.set()
        idle: list[_Worker] = []
        for pool in pools:
            with pool.cond:
                pool.retired = True
                idle.extend(pool.idle)
                pool.count -= len(pool.idle)
                pool.idle = []
                pool.cond.notify_all()
        for worker in workers:
            worker.kill()  # busy ones: their invoke sees the exit, then releases and closes
        for worker in idle:
            self._discard(worker)
        if self._reaper is not None and self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pools and workers --

    def _pool_for(self, spec: FunctionSpec) -> _FunctionPool:
        region = _region_of(spec.arn)
        key = _pool_key(spec)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        retired: list[_FunctionPool] = []
        with self._lock:
            if self._closed:
                raise SandboxError("the local gateway's worker pool is closed")
            pool = self._pools.get(key)
            if pool is None:
                for other_key in list(self._pools):
                    if other_key[:2] == key[:2]:
                        retired.append(self._pools.pop(other_key))
                pool = _FunctionPool(key=key, spec=spec, region=region)
                self._pools[key] = pool
            if self._reaper is None and self.idle_timeout > 0:
                self._reaper = threading.Thread(
                    target=self._reap_loop, name="orch-gateway-reaper", daemon=True
                )
                self._reaper.start()
        for old in retired:
            self._retire(old)
        return pool

    def _retire(self, pool: _FunctionPool) -> None:
        with pool.cond:
            pool.retired = True
            idle, pool.idle = pool.idle, []
            pool.count -= len(idle)
            pool.cond.notify_all()
        for worker in idle:
            self._discard(worker)

    def _acquire(self, pool: _FunctionPool, deadline: float) -> _Worker | None:
        """A warm worker, or None when the caller may start one; raises _Throttled."""
        dead: list[_Worker] = []
        try:
            with pool.cond:
                while True:
                    if self._closed:
                        raise SandboxError("the local gateway's worker pool is closed")
                    while pool.idle:
                        worker = pool.idle.pop()
                        if not worker.dead:  # no waitpid here: see _run's "undelivered"
                            return worker
                        pool.count -= 1
                        dead.append(worker)
                    if pool.warming:  # a worker is starting for us: cheaper to wait for it
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise _Throttled
                        pool.cond.wait(remaining)
                        continue
                    if pool.count < self.max_workers_per_function:
                        pool.count += 1
                        return None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise _Throttled
                    pool.cond.wait(remaining)
        finally:
            for worker in dead:
                self._discard(worker)

    def _release(self, pool: _FunctionPool, worker: _Worker, keep: bool) -> None:
        with pool.cond:
            if keep and not pool.retired and not self._closed and not worker.dead:
                worker.last_used = time.monotonic()
                pool.idle.append(worker)
                worker = None  # type: ignore[assignment]
            else:
                pool.count -= 1
            pool.cond.notify()
        if worker is not None:
            self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.close()
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)

    def _reap_loop(self) -> None:
        interval = max(min(self.idle_timeout / 2.0, 30.0), 0.05)
        while not self._stop.wait(interval):
            self._reap()

    def _reap(self) -> None:
        cutoff = time.monotonic() - self.idle_timeout
        with self._lock:
            pools = list(self._pools.values())
        stale: list[_Worker] = []
        for pool in pools:
            with pool.cond:
                keep = [w for w in pool.idle if w.last_used > cutoff and w.alive()]
                if len(keep) != len(pool.idle):
                    stale.extend(w for w in pool.idle if w not in keep)
                    pool.count -= len(pool.idle) - len(keep)
                    pool.idle = keep
                    pool.cond.notify_all()
        for worker in stale:
            self._discard(worker)

    # -- starting a worker --

    def _start_worker(
        self, pool: _FunctionPool, request_id: str
    ) -> tuple[_Worker | None, InvokeResult | None]:
        spec = pool.spec
        stream = _stream_name(spec)
        try:
            worker = self._spawn(pool, stream)
        except (OSError, SandboxError) as e:
            self._release_slot(pool)
            message = str(e) if isinstance(e, SandboxError) else f"cannot start the worker: {e}"
            error = {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": message}
            return None, self._report_failure(spec, stream, request_id, error, crashed=True)
        ready = worker.exchange(b"", time.monotonic() + INIT_TIMEOUT)
        if ready.outcome == "frame" and ready.status == _STATUS_READY:
            events = ready.log.events()
            if events:
                self._emit(spec, stream, events)  # init output precedes the first START
            return worker, None
        self._release_slot(pool)
        self._discard(worker)
        events = ready.log.events()
        if ready.outcome == "frame" and ready.status == _STATUS_INIT_ERROR:
            error = _json_or_text(ready.body)
            result = self._report_failure(spec, stream, request_id, error, events=events)
        elif ready.outcome == "timeout":
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Init phase timed out after "
                f"{INIT_TIMEOUT:.2f} seconds",
            }
            result = self._report_failure(spec, stream, request_id, error, events=events, timed_out=True)
        else:
            error = _exit_error(worker, request_id, events, ready)
            result = self._report_failure(spec, stream, request_id, error, events=events, crashed=True)
        return None, result

    def _release_slot(self, pool: _FunctionPool) -> None:
        with pool.cond:
            pool.count -= 1
            pool.cond.notify()

    def _spawn(self, pool: _FunctionPool, stream: str) -> _Worker:
        spec = pool.spec
        runtime = spec.runtime
        if runtime.startswith("python"):
            argv = [sys.executable, "-B", str(PYTHON_BOOTSTRAP)]
        elif runtime.startswith("nodejs"):
            node = shutil.which("node")
            if node is None:
                raise SandboxError(
                    f"the local gateway needs `node` on PATH to run {spec.name} ({runtime})"
                )
            argv = [node, f"--max-old-space-size={spec.memory_size}", str(NODE_BOOTSTRAP)]
        else:
            raise SandboxError(
                f"the local gateway cannot run runtime {runtime!r} of {spec.name}: "
                "it runs python3.x and nodejs*.x functions"
            )
        code_dir = Path(spec.code_dir)
        if not code_dir.is_dir():
            raise SandboxError(f"the code directory of {spec.name} does not exist: {code_dir}")
        env = _lambda_environment(spec, pool.region, self.base_environment, stream)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        log_r, log_w = os.pipe()
        _set_pipe_size(req_w)
        _set_pipe_size(resp_w)
        _set_pipe_size(log_w)
        try:
            proc = subprocess.Popen(
                [*argv, str(req_r), str(resp_w)],
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=log_w,
                pass_fds=(req_r, resp_w),
                cwd=str(code_dir),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            for fd in (req_r, req_w, resp_r, resp_w, log_r, log_w):
                os.close(fd)
            raise
        for fd in (req_r, resp_w, log_w):
            os.close(fd)
        _set_nonblocking(log_r)
        _set_nonblocking(req_w)
        worker = _Worker(proc, req_w, resp_r, log_r, spec.name, stream, self.max_log_bytes)
        with self._lock:
            self._workers.add(worker)
            self.workers_started += 1
            closed = self._closed
        if closed:
            self._discard(worker)
            raise SandboxError("the local gateway's worker pool is closed")
        return worker

    # -- one invocation --

    def _run(
        self,
        spec: FunctionSpec,
        worker: _Worker,
        event: bytes,
        request_id: str,
        init_ms: float | None,
    ) -> tuple[InvokeResult | None, bool]:
        """The invocation's result (None when the worker turned out dead) and whether the
        worker can be reused."""
        now = time.time()
        meta = json.dumps(
            {"id": request_id, "deadline": int((now + spec.timeout) * 1000), "arn": spec.arn}
        ).encode()
        frame = b"".join((_REQ_HEADER.pack(len(meta), len(event)), meta, event))
        started_ms = _now_ms()  # START's timestamp: no line of this invocation is older
        started = time.perf_counter()
        ex = worker.exchange(frame, time.monotonic() + spec.timeout)
        duration = (time.perf_counter() - started) * 1000.0
        if ex.outcome == "undelivered":
            if init_ms is None:  # a warm worker: the caller retries on another one
                events = ex.log.events()
                if events:
                    self._emit(spec, worker.stream, events)
                return None, False
            ex.outcome = "eof"  # it died right after its init: report that
        worker.invocations += 1
        lines = ex.log.events()
        payload: bytes | None = None
        error: dict | None = None
        timed_out = crashed = False
        status_note = ""
        keep = False
        if ex.outcome == "frame" and worker.max_rss_kb > spec.memory_size * 1024:
            ex.status = _STATUS_OOM  # Lambda would have killed it on the way
        if ex.outcome == "frame" and ex.status == _STATUS_OK:
            payload, keep = ex.body, True
        elif ex.outcome == "frame" and ex.status == _STATUS_ERROR:
            error, keep = _json_or_text(ex.body), True
        elif ex.outcome == "timeout":
            timed_out = True
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                f"{spec.timeout:.2f} seconds",
            }
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            lines.append(
                (
                    _now_ms(),
                    f"{stamp}.{int(time.time() * 1000) % 1000:03d}Z {request_id} "
                    f"Task timed out after {spec.timeout:.2f} seconds",
                )
            )
            status_note = "\tStatus: timeout"
        else:
            crashed = True
            if ex.outcome == "frame" and ex.status == _STATUS_FATAL:
                error = _json_or_text(ex.body)
                worker.kill()
            else:
                error = _exit_error(worker, request_id, lines, ex)
            status_note = (
                f"\tStatus: error\tError Type: {error.get('errorType', 'Runtime.ExitError')}"
            )
        if not keep:
            worker.kill()
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {max(math.ceil(duration), 1)} ms\t"
            f"Memory Size: {spec.memory_size} MB\t"
            f"Max Memory Used: {max(worker.max_rss_kb // 1024, 1)} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        now = _now_ms()
        events = [(started_ms, f"START RequestId: {request_id} Version: {spec.version}"), *lines]
        events.append((now, f"END RequestId: {request_id}"))
        events.append((now, report + status_note))
        self._emit(spec, worker.stream, events)
        result = InvokeResult(
            payload=payload,
            error=error,
            timed_out=timed_out,
            crashed=crashed,
            duration_ms=duration,
            logs="".join(message + "\n" for _ts, message in events),
        )
        return result, keep

    # -- reporting --

    def _emit(self, spec: FunctionSpec, stream: str, events: list[tuple[int, str]]) -> None:
        sink = self.log_sink
        if sink is None or not events:
            return
        try:
            sink(LogBatch(f"/aws/lambda/{spec.name}", stream, tuple(events)))
        except Exception:  # noqa: BLE001 - a broken sink must not fail invocations
            pass

    def _report_failure(
        self,
        spec: FunctionSpec,
        stream: str,
        request_id: str,
        error: dict,
        *,
        events: list[tuple[int, str]] | None = None,
        crashed: bool = False,
        timed_out: bool = False,
    ) -> InvokeResult:
        now = _now_ms()
        events = list(events or [])
        detail = f"{error.get('errorType', '')}: {error.get('errorMessage', '')}"
        if not request_id:  # a worker started ahead of any request: only init's own lines
            events.append((now, f"INIT_REPORT Status: error\tError Type: {error.get('errorType', '')}"))
            self._emit(spec, stream, events)
            return InvokeResult(payload=None, error=error, timed_out=timed_out, crashed=crashed)
        all_events = [(now, f"START RequestId: {request_id} Version: {spec.version}"), *events]
        if error.get("errorType", "").startswith(("Runtime.Invalid", "Sandbox.")):
            all_events.append((now, f"{request_id}\t{detail}"))
        all_events.append((now, f"END RequestId: {request_id}"))
        all_events.append(
            (
                now,
                f"REPORT RequestId: {request_id}\tDuration: 0.00 ms\tBilled Duration: 0 ms\t"
                f"Memory Size: {spec.memory_size} MB\tMax Memory Used: 0 MB\t"
                f"Status: error\tError Type: {error.get('errorType', '')}",
            )
        )
        self._emit(spec, stream, all_events)
        return InvokeResult(
            payload=None,
            error=error,
            timed_out=timed_out,
            crashed=crashed,
            logs="".join(message + "\n" for _ts, message in all_events),
        )

    def _report_throttled(self, spec: FunctionSpec, request_id: str) -> InvokeResult:
        """Lambda throttles before any execution environment runs: nothing is logged in
        the function's log group; the gateway's request line tells."""
        error = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
        line = (
            f"{request_id}\tno free worker for {spec.name} after {self.queue_timeout:.1f} s "
            f"({self.max_workers_per_function} busy): TooManyRequestsException"
        )
        return InvokeResult(payload=None, error=error, logs=line + "\n")


# ---- helpers ------------------------------------------------------------------------------


def _pool_key(spec: FunctionSpec) -> tuple:
    """One execution environment kind: everything that makes workers interchangeable."""
    return (
        spec.name,
        spec.version,
        str(spec.code_dir),
        spec.handler,
        spec.runtime,
        spec.memory_size,  # not the timeout: it travels with each invocation
        _region_of(spec.arn),
        frozenset(spec.environment.items()),
        tuple(str(d) for d in spec.dependency_dirs),
        spec.revision,
    )


def _stream_name(spec: FunctionSpec) -> str:
    """Lambda's log stream name for a new execution environment,
    ``YYYY/MM/DD/[<version>]<32 hex>`` (https://docs.aws.amazon.com/lambda/latest/operatorguide/log-structure.html)."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{spec.version}]{uuid.uuid4().hex}"


def _lambda_environment(
    spec: FunctionSpec, region: str, base: Mapping[str, str], stream: str
) -> dict[str, str]:
    parent = os.environ
    env = {k: parent[k] for k in _PASSTHROUGH_ENV if k in parent}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "en_US.UTF-8")
    env["AWS_ACCESS_KEY_ID"] = parent.get("AWS_ACCESS_KEY_ID", SANDBOX_ACCESS_KEY_ID)
    env["AWS_SECRET_ACCESS_KEY"] = parent.get("AWS_SECRET_ACCESS_KEY", SANDBOX_SECRET_ACCESS_KEY)
    if "AWS_SESSION_TOKEN" in parent:
        env["AWS_SESSION_TOKEN"] = parent["AWS_SESSION_TOKEN"]
    for key, value in parent.items():
        if key.startswith("AWS_ENDPOINT_URL"):
            env[key] = value
    env.update(base)
    env.update({str(k): str(v) for k, v in spec.environment.items()})
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            STREAM_VARIABLE: stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "LAMBDA_TASK_ROOT": str(Path(spec.code_dir).resolve()),
            "LAMBDA_RUNTIME_DIR": str(RUNTIMES_DIR),
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
        }
    )
    if spec.dependency_dirs:
        dirs = [str(Path(d).resolve()) for d in spec.dependency_dirs]
        env[DEPENDENCY_PATH_VARIABLE] = os.pathsep.join(dirs)  # read (and removed) by the bootstraps
        if spec.runtime.startswith("nodejs"):
            # require() searches NODE_PATH last, as on Lambda (whose NODE_PATH ends with /var/task)
            env["NODE_PATH"] = os.pathsep.join(os.path.join(d, "node_modules") for d in dirs)
    return env


def _json_or_text(body: bytes) -> dict:
    try:
        doc = json.loads(body)
    except ValueError:
        return {"errorType": "Runtime.Unknown", "errorMessage": body.decode("utf-8", "replace")}
    return doc if isinstance(doc, dict) else {"errorType": "Runtime.Unknown", "errorMessage": doc}


def _exit_error(worker: _Worker, request_id: str, lines: list[tuple[int, str]], ex: _Exchange) -> dict:
    """Lambda's error for a runtime that exited (or was killed) during an invocation."""
    worker.kill()
    code = worker.proc.returncode
    oom = ex.status == _STATUS_OOM or any("heap out of memory" in line for _ts, line in lines)
    if oom:
        reason = "Runtime exited with error: signal: killed"
    elif code is None or code == 0:
        reason = "Runtime exited without providing a reason"
    elif code < 0:
        try:
            name = signal.strsignal(-code) or f"signal {-code}"
        except ValueError:
            name = f"signal {-code}"
        reason = f"Runtime exited with error: signal: {name.lower()}"
    else:
        reason = f"Runtime exited with error: exit status {code}"
    error_type = "Runtime.OutOfMemory" if oom else "Runtime.ExitError"
    lines.append((_now_ms(), f"RequestId: {request_id} Error: {reason}"))
    lines.append((_now_ms(), error_type))
    return {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {reason}"}


__all__ = ["FunctionSpec", "InvokeResult", "LogBatch", "WorkerPool"]
