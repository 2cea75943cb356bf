"""The local gateway's HTTP server: a stage's invoke URL on loopback, answered like AWS does.

This module owns HTTP: parsing requests (Content-Length or chunked bodies, the 10 MB limit,
``Connection: close``), the URL scheme
``/restapis/<api_id>/<stage>/_user_request_/<path>`` from docs/design.md, ``GET
/_orch/health``, one log line per request, and ``run_foreground`` for ``orch serve``. It must
not know API Gateway semantics: every gateway request goes to ``pipeline.Gateway.handle``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orch.aws import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from orch.errors import SandboxError
from orch.gateway.events import GatewayRequest, GatewayResponse
from orch.gateway.model import ApiRegistry
from orch.gateway.pipeline import MAX_BODY_BYTES, Gateway

USER_REQUEST = re.compile(r"^/+restapis/([^/?#]+)/([^/?#]+)/_user_request_(?P<rest>[^?#]*)")
HEALTH_PATH = "/_orch/health"
_TOO_LONG = json.dumps({"message": "Request Too Long"}).encode()


_date_cache: tuple[int, str] = (-1, "")


def _http_date() -> str:
    """The Date header, formatted once per second."""
    global _date_cache
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = formatdate(now, usegmt=True)
        _date_cache = (now, text)
    return text


def _stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _BodyTooLarge(Exception):
    pass


class GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A buffered wfile: the status line, headers and body leave in one send when the
    # response is written (handle_one_request and finish() flush it); larger bodies go
    # straight through.
    wbufsize = 64 * 1024
    server: GatewayServer

    # BaseHTTPRequestHandler would add "Server: BaseHTTP/..."; API Gateway sends no Server.
    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", _http_date())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request is written by _dispatch instead

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyTooLarge()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        size = int(length)
        if size < 0:
            raise ValueError("negative Content-Length")
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge()
        return self.rfile.read(size)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _dispatch(self) -> None:
        started = time.perf_counter()
        path, _, query = self.path.partition("?")
        query = query.partition("#")[0]
        status, request_id, detail = 500, "-", ""
        try:
            match = USER_REQUEST.match(path)
            if match is None:
                if path == HEALTH_PATH and self.command in ("GET", "HEAD"):
                    status = 200
                    body = json.dumps(
                        {"status": "ok", "service": "orch-gateway", "pid": os.getpid()}
                    ).encode()
                    self._send(200, [("Content-Type", "application/json")], body)
                else:
                    status = 404
                    body = json.dumps(
                        {
                            "message": "Not Found",
                            "hint": "invoke URLs look like "
                            "/restapis/<rest_api_id>/<stage>/_user_request_/<path>",
                        }
                    ).encode()
                    self.close_connection = self.close_connection or bool(
                        self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding")
                    )
                    self._send(404, [("Content-Type", "application/json")], body)
                return
            try:
                body = self._read_body()
            except _BodyTooLarge:
                status, detail = 413, "body over 10 MB"
                self.close_connection = True  # the rest of the body is never read
                self._send(413, [("Content-Type", "application/json")], _TOO_LONG)
                return
            except ValueError:
                status, detail = 400, "unreadable body framing"
                self.close_connection = True
                self._send(
                    400, [("Content-Type", "application/json")], b'{"message": "Bad Request"}'
                )
                return
            request = GatewayRequest(
                method=self.command,
                raw_path=match.group("rest"),
                query_string=query,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                server_port=self.server.server_address[1],
                protocol=self.request_version,
            )
            response: GatewayResponse = self.server.gateway.handle(
                match.group(1), match.group(2), request
            )
            status, request_id, detail = response.status, response.request_id, response.detail
            self._send(response.status, response.headers, response.body)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            line = f"{self.command} {path} {status} {elapsed:.1f}ms {request_id}"
            self.server.log(f"{line} ({detail})" if detail else line)
            if self.server.flush_log is not None:
                self.server.flush_log()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class GatewayServer(ThreadingHTTPServer):
    """ThreadingHTTPServer serving stages through a ``Gateway``; daemon request threads.

    Request threads are reused: a connection goes to an idle thread when there is one and
    to a new thread otherwise (so a connection never waits behind busy ones, as with a
    thread per connection); threads idle for ``thread_idle_timeout`` seconds exit.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        *,
        log: Callable[[str], None],
        on_close: Callable[[], None] | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.gateway = gateway
        self.log = log
        self._on_close = on_close
        self.allow_reuse_port = reuse_port
        self.helpers: Any = None  # orch.gateway.multi.HelperProcesses when processes > 1
        # a log that batches a request thread's lines has a flush(), called after each request
        self.flush_log: Callable[[], None] | None = getattr(log, "flush", None)
        self._pool_lock = threading.Lock()
        self._idle: list[_RequestThread] = []
        self._pool_closed = False
        super().__init__(address, GatewayRequestHandler)

    thread_idle_timeout = 60.0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._pool_lock:
            thread = self._idle.pop() if self._idle else None
        if thread is not None:
            thread.hand(request, client_address)
            return
        thread = _RequestThread(self)
        thread.hand(request, client_address)
        thread.start()

    def _park(self, thread: _RequestThread) -> bool:
        """A request thread is free again; False when it should exit instead."""
        with self._pool_lock:
            if self._pool_closed:
                return False
            self._idle.append(thread)
            return True

    def _unpark(self, thread: _RequestThread) -> bool:
        """An idle thread timed out; False when a connection was handed to it meanwhile."""
        with self._pool_lock:
            if thread in self._idle:
                self._idle.remove(thread)
                return True
            return False

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.log(f"gateway: error while serving {client_address}: {sys.exc_info()[1]!r}")

    def server_close(self) -> None:
        with self._pool_lock:
            self._pool_closed = True
            idle, self._idle = self._idle, []
        for thread in idle:
            thread.hand(None, None)
        super().server_close()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pids(self) -> list[int]:
        """The gateway processes serving this address: this one first, then the helpers."""
        return [os.getpid(), *(self.helpers.pids if self.helpers is not None else [])]

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until every helper process listens; True when all of them do."""
        return self.helpers.wait_ready(timeout) if self.helpers is not None else True

    def local_stats(self) -> dict[str, Any]:
        """This process's counters: pid, worker processes started so far, live worker pids."""
        pool = self.gateway.invoker
        pids = getattr(pool, "worker_pids", None)
        return {
            "pid": os.getpid(),
            "workers_started": getattr(pool, "workers_started", None),
            "worker_pids": sorted(pids()) if callable(pids) else [],
        }

    def stats(self) -> list[dict[str, Any]]:
        """``local_stats()`` of every gateway process serving this address."""
        helpers = self.helpers.stats() if self.helpers is not None else []
        return [self.local_stats(), *helpers]


class _RequestThread(threading.Thread):
    """A daemon thread that serves the connections handed to it, one at a time."""

    def __init__(self, server: GatewayServer) -> None:
        super().__init__(name="gateway-request", daemon=True)
        self.server = server
        self._ready = threading.Lock()  # held while there is no job: released by hand()
        self._ready.acquire()
        self._job: tuple[Any, Any] | None = None

    def hand(self, request: Any, client_address: Any) -> None:
        self._job = (request, client_address)
        self._ready.release()

    def run(self) -> None:
        server = self.server
        while True:
            if not self._ready.acquire(timeout=server.thread_idle_timeout):
                if server._unpark(self):
                    return
                self._ready.acquire()  # a connection was handed over as we timed out
            job, self._job = self._job, None
            request, client_address = job or (None, None)
            if request is None:
                return
            server.process_request_thread(request, client_address)
            if server.flush_log is not None:
                server.flush_log()  # e.g. handle_error's line
            del job, request, client_address
            if not server._park(self):
                return


def make_service_caller(aws_endpoint: str) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """Send an AWS service integration's request to the emulator, SigV4-signed."""
    import urllib.parse

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
            method,
            url,
            body=body,
            headers=dict(request.headers.items()),
            timeout=timeout,
            retries=False,
        )
        return response.status, dict(response.headers.items()), response.data

    return call


def build_server(
    host: str,
    port: int,
    *,
    aws_endpoint: str,
    region: str,
    project_dir: Path,
    worker_pool: Any = None,
    log: Callable[[str], None] | None = None,
    refresh_interval: float = 1.0,
    processes: int = 1,
    worker_pool_options: Mapping[str, Any] | None = None,
    reuse_port: bool = False,
) -> GatewayServer:
    """A ready-to-serve gateway (call ``serve_forever()``; ``shutdown()`` + ``server_close()``).

    ``worker_pool`` defaults to a new ``orch.gateway.workers.WorkerPool`` (built with
    ``worker_pool_options``) that the server closes in ``server_close()``; a pool passed in
    stays the caller's to close.

    ``processes`` > 1 also starts ``processes - 1`` helper gateway processes (see
    ``orch.gateway.multi``) that share the listening port through ``SO_REUSEPORT``, each
    with its own registry and worker pool; their log lines reach ``log``, and
    ``server_close()`` stops them (so does this process's death). They join as they become
    ready (``server.wait_ready()`` waits for them); this process serves meanwhile.
    """
    import boto3

    if processes > 1 and worker_pool is not None:
        raise ValueError("worker_pool cannot be shared by several gateway processes")
    log = log or _stderr_log
    if processes > 1 and port != 0:
        _check_port_free(host, port)
    session = boto3.session.Session(
        aws_access_key_id=SANDBOX_ACCESS_KEY_ID, aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY, region_name=region
    )
    apigw = session.client("apigateway", endpoint_url=aws_endpoint)
    lambda_ = session.client("lambda", endpoint_url=aws_endpoint)
    registry = ApiRegistry(
        apigw, lambda_, Path(project_dir), refresh_interval=refresh_interval, log=log
    )
    on_close = None
    if worker_pool is None:
        from orch.gateway.workers import WorkerPool

        worker_pool = WorkerPool(log_sink=log, **dict(worker_pool_options or {}))
        on_close = worker_pool.close
    gateway = Gateway(
        registry,
        worker_pool,
        aws_endpoint=aws_endpoint,
        log=log,
        service_caller=make_service_caller(aws_endpoint),
    )
    try:
        server = GatewayServer(
            (host, port),
            gateway,
            log=log,
            on_close=on_close,
            reuse_port=reuse_port or processes > 1,
        )
    except OSError as exc:
        if on_close:
            on_close()
        raise SandboxError(
            f"The local gateway cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick another port (0 chooses a free one) or stop what is using it.",
        ) from exc
    if processes > 1:
        from orch.gateway.multi import HelperProcesses

        try:
            helpers = HelperProcesses(
                processes - 1,
                host=host,
                port=server.server_address[1],
                aws_endpoint=aws_endpoint,
                region=region,
                project_dir=Path(project_dir),
                refresh_interval=refresh_interval,
                worker_pool_options=worker_pool_options,
                log=log,
            )
        except BaseException:
            server.server_close()
            raise
        server.helpers = helpers

        def close_all(pool_close: Callable[[], None] | None = on_close) -> None:
            try:
                helpers.close()
            finally:
                if pool_close is not None:
                    pool_close()

        server._on_close = close_all
    return server


def _check_port_free(host: str, port: int) -> None:
    """SO_REUSEPORT would let the gateway share a port another server (e.g. an earlier
    gateway) holds; a plain bind first tells that the port is in use."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0] if infos else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise SandboxError(
            f"The local gateway cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick another port (0 chooses a free one) or stop what is using it.",
        ) from exc


def run_foreground(
    host: str,
    port: int,
    *,
    aws_endpoint: str,
    region: str,
    project_dir: Path,
    log: Callable[[str], None] | None = None,
    ready: Callable[[GatewayServer], None] | None = None,
) -> None:
    """Serve until Ctrl-C (``orch serve``); always stops the workers on the way out."""
    from orch.gateway.multi import default_processes

    log = log or _stderr_log
    server = build_server(
        host,
        port,
        aws_endpoint=aws_endpoint,
        region=region,
        project_dir=project_dir,
        log=log,
        processes=default_processes(),
    )
    log(
        f"gateway: listening on {server.url} (invoke URLs: "
        f"{server.url}/restapis/<rest_api_id>/<stage>/_user_request_/)"
    )
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log("gateway: stopping")
    finally:
        server.server_close()
