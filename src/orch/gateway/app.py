"""The local gateway's composition root: builds and wires its parts, in every gateway process.

This module owns construction: the boto3 clients for the emulator, the registry of what is
deployed (``model.ApiRegistry``) bound to the sandbox's generation file, the worker pool,
the CloudWatch Logs shipper for handler output (``cloudwatch.ShipperProcess``, whose child
process sends it), the pipeline (``pipeline.Gateway``), Lambda's
Invoke API for ``orch invoke`` (``invoke_api.LambdaInvokeApi``), the HTTP server
(``server.HttpServer``), the watcher that re-reads the deployed APIs and warms a
worker for each new function version as soon as a deploy changes the generation, and the
helper processes that share the port (``multi.HelperProcesses`` running
``python -m orch.gateway.helper``). It also gives the daemon its rotating log file. It must
not parse HTTP, emulate API Gateway or run handlers itself: the parts it builds do.
"""

from __future__ import annotations

import gc
import logging
import logging.handlers
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orch.aws import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from orch.errors import SandboxError
from orch.gateway.cloudwatch import ShipperProcess
from orch.gateway.gcpause import bound_collection_pauses, collect_when_idle
from orch.gateway.generation import Generation, GenerationWatcher, WarmMarks
from orch.gateway.invoke_api import LambdaInvokeApi
from orch.gateway.localcode import LocalCode
from orch.gateway.model import ApiRegistry, FunctionRef, lambda_refs
from orch.gateway.multi import HelperProcesses, default_processes
from orch.gateway.pipeline import Gateway
from orch.gateway.server import HttpLimits, HttpServer, check_port_free, stderr_log
from orch.gateway.workers import FunctionSpec, LogBatch, WorkerPool
from orch.sandbox import generation_path

HELPER_MODULE = "orch.gateway.helper"
# Without a generation change the watcher still compares what it cached with the emulator
# this often (seconds, off the request path), for changes made without mark_changed.
SAFETY_INTERVAL = 10.0
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


class LocalGateway:
    """One process's gateway (and, in the first process, its helpers): the object
    ``build_server`` returns. ``serve_forever()`` until ``shutdown()``, then
    ``server_close()`` stops the helpers, the watcher, the workers and the log shipper."""

    def __init__(
        self,
        http: HttpServer,
        gateway: Gateway,
        registry: ApiRegistry,
        pool: Any,
        *,
        owns_pool: bool,
        shipper: ShipperProcess | None,
        log: Callable[[str], None],
    ) -> None:
        self.http = http
        self.gateway = gateway
        self.registry = registry
        self.pool = pool
        self.shipper = shipper
        self.log = log
        self.helpers: HelperProcesses | None = None
        self.watcher: GenerationWatcher | None = None
        self.marks: WarmMarks | None = None
        self.local: LocalCode | None = None  # hot reload, when on
        self._refs: list[FunctionRef] = []  # the functions deployed stages invoke (last refresh)
        self._owns_pool = owns_pool
        self._refresh_lock = threading.Lock()
        self.warmed_generation: str | None = None
        self.warm_seconds: float | None = None
        self._closed = False

    # -- the server's surface --

    @property
    def server_address(self) -> tuple[str, int]:
        return self.http.server_address

    @property
    def url(self) -> str:
        return self.http.url

    def serve_forever(self) -> None:
        self.http.serve_forever()

    def shutdown(self) -> None:
        self.http.shutdown()

    def server_close(self) -> None:
        """Stop serving and end everything this gateway started (idempotent). The helpers
        are asked to stop first and waited for later, so every process ends its workers at
        once (``orch sandbox stop`` gives the daemon 10 s)."""
        if self._closed:
            return
        self._closed = True
        started = time.monotonic()
        # workers first: `orch sandbox stop` SIGKILLs the daemon after 10 s, and workers (in
        # sessions of their own) and what their handlers started would then outlive it
        steps: list[tuple[str, Callable[[], None]]] = [("HTTP server", self.http.server_close)]
        if self.local is not None:
            steps.append(("hot reload watcher", self.local.close))
        if self.helpers is not None:
            steps.append(("helpers (asking)", self.helpers.request_stop))
        if self._owns_pool:
            steps.append(("workers", self.pool.close))
        if self.watcher is not None:
            steps.append(("watcher", self.watcher.close))
        if self.helpers is not None:
            steps.append(("helpers", self.helpers.close))
        if self.shipper is not None:
            steps.append(("CloudWatch shipper", self.shipper.close))
        if self.marks is not None:
            steps.append(("warm mark", self.marks.clear))
        for name, step in steps:
            began = time.monotonic()
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the other parts must still stop
                self.log(f"gateway: stopping the {name} failed: {exc!r}")
            if time.monotonic() - began > 1.0:
                self.log(f"gateway: stopping the {name} took {time.monotonic() - began:.1f} s")
        if time.monotonic() - started > 1.0:
            self.log(f"gateway: process {os.getpid()} stopped in {time.monotonic() - started:.1f} s")

    # -- processes and counters --

    @property
    def pids(self) -> list[int]:
        """The gateway processes serving this address: this one first, then the helpers."""
        return [os.getpid(), *(self.helpers.pids if self.helpers is not None else [])]

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until every helper process listens; True when all of them do."""
        return self.helpers.wait_ready(timeout) if self.helpers is not None else True

    def local_stats(self) -> dict[str, Any]:
        """This process's counters: pid, workers started, live worker pids, the generation
        its caches hold, the last generation it finished warming (and how long that took),
        the function versions with an idle warm worker, and how many objects the collector
        no longer walks (``gc_frozen``: non-zero once ``gcpause`` is in force)."""
        pool = self.pool
        pids = getattr(pool, "worker_pids", None)
        warm = getattr(pool, "warm_versions", None)
        return {
            "pid": os.getpid(),
            "workers_started": getattr(pool, "workers_started", None),
            "worker_pids": sorted(pids()) if callable(pids) else [],
            "generation": self.registry.generation.current() if self.registry.generation else None,
            "warmed_generation": self.warmed_generation,
            "warm_seconds": self.warm_seconds,
            "warm": warm() if callable(warm) else [],
            "gc_frozen": gc.get_freeze_count(),
        }

    def stats(self) -> list[dict[str, Any]]:
        """``local_stats()`` of every gateway process serving this address."""
        helpers = self.helpers.stats() if self.helpers is not None else []
        return [self.local_stats(), *helpers]

    # -- freshness --

    def refresh(self) -> list[FunctionSpec]:
        """Read what is deployed now and get ready for it: every stage's functions get a
        warm worker, environments of versions no longer deployed are retired. Runs on the
        watcher's thread after each generation change (and once at start)."""
        with self._refresh_lock:
            started = time.monotonic()
            generation = self.registry.generation.current() if self.registry.generation else None
            self.registry.sync()
            refs: list[FunctionRef] = []
            for api in self.registry.deployed_apis():
                refs += [ref for ref in lambda_refs(api) if ref not in refs]
            self._refs = refs
            specs = self._warm(refs)
            self.warm_seconds = time.monotonic() - started
            self.warmed_generation = generation
            if self.marks is not None and generation is not None:
                self.marks.mark(generation)
            return specs

    def rewarm(self) -> list[FunctionSpec]:
        """After a saved edit (hot reload): a warm worker for each function's new revision,
        the old revision's workers retired; what is deployed is not read again."""
        with self._refresh_lock:
            return self._warm(self._refs)

    def _warm(self, refs: list[FunctionRef]) -> list[FunctionSpec]:
        specs: list[FunctionSpec] = []
        for ref in refs:
            try:
                spec = self.registry.get_function(ref)
            except SandboxError:
                continue  # the request that needs it gets the error
            if spec not in specs:
                specs.append(spec)
        retain = getattr(self.pool, "retain", None)
        if callable(retain):
            retain(specs)
        prewarm = getattr(self.pool, "prewarm", None)
        if callable(prewarm):
            for spec in specs:
                prewarm(spec)
        return specs

    def _on_idle(self) -> None:
        """Every ``SAFETY_INTERVAL`` seconds without a generation change: re-read what is
        deployed if the emulator changed without a mark, and free frozen garbage
        (``gcpause``) while no request is in flight."""
        if self.registry.revalidate():
            self.refresh()
        collect_when_idle(lambda: self.http.in_flight() > 0)


# --- building ------------------------------------------------------------------------------


def _clients(aws_endpoint: str, region: str) -> dict[str, Any]:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=SANDBOX_ACCESS_KEY_ID, aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY, region_name=region
    )
    # no logs client: handler logs are shipped by ShipperProcess's child (orch.gateway.cloudwatch)
    return {name: session.client(name, endpoint_url=aws_endpoint) for name in ("apigateway", "lambda")}


def make_service_caller(aws_endpoint: str) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """Send an AWS service integration's request to the emulator, SigV4-signed."""
    import urllib3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    http = urllib3.PoolManager(maxsize=8)
    credentials = Credentials(SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY)
    base = aws_endpoint.rstrip("/")

    def call(
        *,
        service: str,
        region: str,
        kind: str,
        target: str,
        method: str,
        headers: dict[str, str],
        query: dict[str, str],
        body: bytes,
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        params = dict(query)
        if kind == "action":
            action, _, rest = target.partition("&")
            params = {"Action": action, **dict(urllib.parse.parse_qsl(rest)), **params}
            url = base + "/"
        else:
            url = f"{base}/{target.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(credentials, service, region).add_auth(request)
        response = http.request(
            method, url, body=body, headers=dict(request.headers.items()), timeout=timeout, retries=False
        )
        return response.status, dict(response.headers.items()), response.data

    return call


def _log_sink(shipper: ShipperProcess | None, echo: Callable[[str], None] | None) -> Callable[[LogBatch], None] | None:
    if echo is None:
        return shipper.put if shipper is not None else None

    def sink(batch: LogBatch) -> None:
        if shipper is not None:
            shipper.put(batch)
        for line in batch.lines:
            echo(line)

    return sink


def build_process(
    host: str,
    port: int,
    *,
    aws_endpoint: str,
    region: str,
    project_dir: Path,
    log: Callable[[str], None],
    worker_pool: Any = None,
    refresh_interval: float | None = None,
    worker_pool_options: Mapping[str, Any] | None = None,
    reuse_port: bool = False,
    limits: HttpLimits | None = None,
    cloudwatch: bool = True,
    echo_handler_output: bool = False,
    watch: bool = True,
    reload: bool = False,
    announce: bool = True,
) -> LocalGateway:
    """This process's gateway on ``host:port`` (no helpers): see ``build_server``;
    ``announce``: this process logs what hot reload serves (helpers do not)."""
    clients = _clients(aws_endpoint, region)
    local = LocalCode(Path(project_dir), log=log, announce=announce) if reload else None
    registry = ApiRegistry(
        clients["apigateway"],
        clients["lambda"],
        Path(project_dir),
        generation=Generation(generation_path(Path(project_dir))),
        refresh_interval=refresh_interval,
        log=log,
        code_overlay=local.local_spec if local is not None else None,
    )
    # handler logs leave this process at once: a child process sends them (its botocore
    # work would otherwise hold this process's GIL while requests wait)
    shipper = ShipperProcess(aws_endpoint, region, log=log) if cloudwatch else None
    owns_pool = worker_pool is None
    if worker_pool is None:
        worker_pool = WorkerPool(
            log_sink=_log_sink(shipper, log if echo_handler_output else None),
            **dict(worker_pool_options or {}),
        )
    gateway = Gateway(
        registry,
        worker_pool,
        aws_endpoint=aws_endpoint,
        log=log,
        service_caller=make_service_caller(aws_endpoint),
    )
    built: dict[str, LocalGateway] = {}
    try:
        http = HttpServer(
            (host, port),
            gateway.handle,
            log=log,
            reuse_port=reuse_port,
            limits=limits,
            health=lambda: {"generation": built["app"].warmed_generation},
            by_host=registry.route_domain,
            service=LambdaInvokeApi(registry, worker_pool, log=log),
        )
    except SandboxError:
        if owns_pool:
            worker_pool.close()
        if shipper is not None:
            shipper.close()
        raise
    app = built["app"] = LocalGateway(
        http, gateway, registry, worker_pool, owns_pool=owns_pool, shipper=shipper, log=log
    )
    if local is not None:
        local.on_change = app.rewarm
        app.local = local.start()
    if watch:
        app.marks = WarmMarks(generation_path(Path(project_dir)))
        app.watcher = GenerationWatcher(
            generation_path(Path(project_dir)),
            app.refresh,
            on_idle=app._on_idle,
            idle_interval=SAFETY_INTERVAL,
            initial=True,
            log=log,
        ).start()
    return app


def build_server(
    host: str,
    port: int,
    *,
    aws_endpoint: str,
    region: str,
    project_dir: Path,
    worker_pool: Any = None,
    log: Callable[[str], None] | None = None,
    refresh_interval: float | None = None,
    processes: int = 1,
    worker_pool_options: Mapping[str, Any] | None = None,
    reuse_port: bool = False,
    limits: HttpLimits | None = None,
    cloudwatch: bool = True,
    echo_handler_output: bool = False,
    watch: bool = True,
    reload: bool = False,
) -> LocalGateway:
    """A ready-to-serve gateway (call ``serve_forever()``; ``shutdown()`` + ``server_close()``).

    ``worker_pool`` defaults to a new ``WorkerPool`` (built with ``worker_pool_options``)
    that ``server_close()`` closes; a pool passed in stays the caller's to close.
    ``refresh_interval`` (seconds, tests): re-read a cached API or function on the request
    path when older than this; by default the caches last until the generation file changes.
    ``cloudwatch``: handler output goes to the emulator's CloudWatch Logs;
    ``echo_handler_output``: also to ``log`` (``orch serve``). ``watch``: re-read and warm
    workers as soon as the generation changes (else only on the next request).
    ``reload``: hot reload (``orch.gateway.localcode``): functions that are stages of the
    project run their source folders, and a saved edit gets new workers.

    ``processes`` > 1 also starts ``processes - 1`` helper gateway processes sharing the port
    through ``SO_REUSEPORT``, each with its own registry, pool and watcher; their log lines
    reach ``log``, and ``server_close()`` stops them (so does this process's death). They
    join as they become ready (``wait_ready()`` waits for them); this process serves
    meanwhile. Raises ``SandboxError`` when the port cannot be had.
    """
    if processes > 1 and worker_pool is not None:
        raise ValueError("worker_pool cannot be shared by several gateway processes")
    log = log or stderr_log
    if processes > 1 and port != 0:
        check_port_free(host, port)
    app = build_process(
        host,
        port,
        aws_endpoint=aws_endpoint,
        region=region,
        project_dir=project_dir,
        log=log,
        worker_pool=worker_pool,
        refresh_interval=refresh_interval,
        worker_pool_options=worker_pool_options,
        reuse_port=reuse_port or processes > 1,
        limits=limits,
        cloudwatch=cloudwatch,
        echo_handler_output=echo_handler_output,
        watch=watch,
        reload=reload,
    )
    if processes > 1:
        try:
            app.helpers = HelperProcesses(
                processes - 1,
                host=host,
                port=app.server_address[1],
                aws_endpoint=aws_endpoint,
                region=region,
                project_dir=Path(project_dir),
                refresh_interval=refresh_interval,
                worker_pool_options=worker_pool_options,
                log=log,
                module=HELPER_MODULE,
                options={
                    "cloudwatch": cloudwatch,
                    "echo_handler_output": echo_handler_output,
                    "watch": watch,
                    "reload": reload,
                    "limits": dict(limits.__dict__) if limits is not None else None,
                },
            )
        except BaseException:
            app.server_close()
            raise
    return app


def build_helper(config: dict[str, Any], log: Callable[[str], None]) -> LocalGateway:
    """A helper process's gateway from the JSON config ``HelperProcesses`` passed."""
    limits = config.get("limits")
    return build_process(
        config["host"],
        int(config["port"]),
        aws_endpoint=config["aws_endpoint"],
        region=config["region"],
        project_dir=Path(config["project_dir"]),
        log=log,
        refresh_interval=config.get("refresh_interval"),
        worker_pool_options=config.get("worker_pool_options") or None,
        reuse_port=True,
        limits=HttpLimits(**limits) if limits else None,
        cloudwatch=bool(config.get("cloudwatch", True)),
        echo_handler_output=bool(config.get("echo_handler_output", False)),
        watch=bool(config.get("watch", True)),
        reload=bool(config.get("reload", False)),
        announce=False,
    )


# --- logs and running ----------------------------------------------------------------------


class _StdioRotatingHandler(logging.handlers.RotatingFileHandler):
    """Rotates like its parent, then points this process's stdout and stderr at the new
    file, so whatever else the daemon prints stays inside the rotated set."""

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        super().doRollover()
        if self.stream is not None:
            for fd in (1, 2):
                try:
                    os.dup2(self.stream.fileno(), fd)
                except OSError:
                    pass


class RotatingLog:
    """A thread-safe ``log`` callable writing timestamped lines to ``path``, rotated at
    ``max_bytes`` with ``backups`` old files (``path.1`` ...), so a chatty gateway never
    fills the disk. ``capture_stdio``: stdout and stderr follow each rotation."""

    def __init__(
        self, path: Path, *, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS, capture_stdio: bool = False
    ) -> None:
        cls = _StdioRotatingHandler if capture_stdio else logging.handlers.RotatingFileHandler
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.handler = cls(str(path), maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        self.handler.setFormatter(formatter)

    def __call__(self, line: str) -> None:
        self.handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))

    def close(self) -> None:
        self.handler.close()


def run_foreground(
    host: str,
    port: int,
    *,
    aws_endpoint: str,
    region: str,
    project_dir: Path,
    log: Callable[[str], None] | None = None,
    ready: Callable[[LocalGateway], None] | None = None,
    reload: bool = True,
) -> None:
    """Serve until Ctrl-C (``orch serve``), request lines and handler output on ``log``,
    with hot reload unless ``reload`` is false; always stops the helpers and workers on
    the way out."""
    log = log or stderr_log
    server = build_server(
        host,
        port,
        aws_endpoint=aws_endpoint,
        region=region,
        project_dir=project_dir,
        log=log,
        processes=default_processes(),
        echo_handler_output=True,
        reload=reload,
    )
    log(
        f"gateway: listening on {server.url} (invoke URLs: "
        f"{server.url}/restapis/<rest_api_id>/<stage>/_user_request_/)"
    )
    bound_collection_pauses()
    if ready is not None:
        ready(server)
    previous = _stop_on_signals()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("gateway: stopping")
    finally:
        server.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> dict[int, Any]:
    """Make Ctrl-C (SIGINT) and SIGTERM stop a foreground gateway cleanly, even when the
    process inherited SIGINT ignored (started with `&` or nohup from a script) or is stopped
    the way CI and process managers do (SIGTERM); returns the previous handlers. Only the
    main thread may set handlers, so elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}


__all__ = ["LocalGateway", "RotatingLog", "build_helper", "build_process", "build_server", "run_foreground"]
