"""The local gateway's HTTP server: a stage's invoke URL on loopback, spoken as strict HTTP/1.1.

This module owns HTTP and nothing else: reading requests with llhttp (through httptools, the
parser uvicorn uses) so malformed framing is refused rather than guessed at, the limits
(10 MB bodies, header size, idle and read timeouts), keep-alive and pipelining, the URL
scheme ``/restapis/<api_id>/<stage>/_user_request_/<path>`` from docs/design.md (and, for
any other path, the ``by_host`` lookup of a custom domain name it is given), ``GET
/_orch/health`` and one log line per request. It must not know API Gateway semantics, build
the gateway's parts or start processes: every invoke-URL request goes to the ``handle``
callable it is given (``orch.gateway.app`` wires it to ``pipeline.Gateway.handle``).

Connections are served by a pool of threads that each block in ``accept()`` and then serve
the connection they got, so a new connection never waits behind a busy one and nothing is
handed between threads on the way in (a thread is added whenever the last idle one takes
a connection).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from orch.errors import SandboxError
from orch.gateway.events import GatewayRequest, GatewayResponse

USER_REQUEST_PREFIX = "/restapis/"
USER_REQUEST_MARK = "/_user_request_"
HEALTH_PATH = "/_orch/health"
_JSON = [("Content-Type", "application/json")]
_TIMEVAL = struct.Struct("@ll")
SEND_TIMEOUT = 30.0  # a client that stops reading its answer frees the thread after this


def _timeval(seconds: float) -> bytes:
    return _TIMEVAL.pack(int(seconds), int((seconds % 1) * 1_000_000))


@dataclass(frozen=True)
class HttpLimits:
    """What a client may send, and how long it may take (seconds, bytes).

    ``max_body_bytes``: API Gateway's payload limit (10 MB), answered with 413 before the
    body is read. ``keep_alive_timeout``: an idle connection between requests is closed
    after this long. ``read_timeout``: silence in the middle of a request (headers or body
    not complete, e.g. a Content-Length larger than what was sent) gets a 400 and the
    connection is closed; the handler is never called on a partial body.
    ``request_timeout``: the longest one request may take to arrive, however it trickles.
    """

    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    keep_alive_timeout: float = 4.0
    read_timeout: float = 3.0
    request_timeout: float = 30.0


Handle = Callable[[str, str, GatewayRequest], GatewayResponse]
Service = Callable[[str, str, str, dict[str, str], bytes], "GatewayResponse | None"]

_date_cache: tuple[int, bytes] = (-1, b"")


def _date_header() -> bytes:
    """``Date: ...\\r\\n``, formatted once per second."""
    global _date_cache
    now = int(time.time())
    second, line = _date_cache
    if second != now:
        line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        _date_cache = (now, line)
    return line


def _status_line(status: int) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {status} {reason}\r\n".encode()


_STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}


def _encode_header(name: str, value: str) -> bytes | None:
    """``name: value\\r\\n``; None for a header that would break the framing (CR, LF)."""
    if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
        return None
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        return f"{name}: {value}\r\n".encode()


def serialize_response(
    status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool, head: bool
) -> bytes:
    """The response's bytes: status line, ``Date``, the headers, ``Content-Length``,
    ``Connection: close`` when closing, and the body (not for HEAD)."""
    parts = [_STATUS_LINES.get(status) or _status_line(status), _date_header()]
    for name, value in headers:
        lower = name.lower()
        if lower in ("content-length", "connection", "date"):
            continue  # framing headers are this module's
        line = _encode_header(name, value)
        if line is not None:
            parts.append(line)
    parts.append(b"Content-Length: %d\r\n" % len(body))
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if body and not head:
        parts.append(body)
    return b"".join(parts)


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


class _Refused(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.message = message
        self.detail = detail


class _Request:
    __slots__ = ("method", "url", "headers", "body", "version", "keep_alive")

    def __init__(self, method: str, url: bytes, headers: list, body: bytes, version: str, keep_alive: bool):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.version = version
        self.keep_alive = keep_alive


class _Parse:
    """httptools callbacks for one connection: collects complete requests in ``done``."""

    __slots__ = (
        "conn",
        "limits",
        "parser",
        "done",
        "url",
        "headers",
        "header_bytes",
        "body",
        "body_bytes",
        "started",
        "refused",
    )

    def __init__(self, conn: socket.socket, limits: HttpLimits) -> None:
        self.conn = conn
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[_Request] = []
        self.started: float | None = None  # monotonic time of a request's first byte
        self.refused: _Refused | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0

    def _refuse(self, status: int, message: str, detail: str) -> None:
        self.refused = _Refused(status, message, detail)
        raise self.refused

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()
        if self.started is None:
            self.started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.limits.max_header_bytes:
            self._refuse(414, "Request-URI Too Long", "request line over the limit")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.limits.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large", "headers over the limit")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._refuse(400, "Bad Request", f"HTTP/{version} is not served")
        expect = None
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length" and int(value) > self.limits.max_body_bytes:
                # refused before the body is read; the connection closes after the answer
                self._refuse(413, "Request Too Long", "body over 10 MB")
            elif lower == "expect":
                expect = value.strip().lower()
        if expect is not None:
            if expect != "100-continue":
                self._refuse(417, "Expectation Failed", f"unsupported Expect: {expect}")
            if version == "1.1":
                self.conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_body_bytes:
            self._refuse(413, "Request Too Long", "body over 10 MB")
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.done.append(
            _Request(
                parser.get_method().decode("latin-1"),
                self.url,
                self.headers,
                body,
                parser.get_http_version(),
                parser.should_keep_alive(),
            )
        )
        self.started = None
        self._reset()


class HttpServer:
    """A threaded HTTP/1.1 server on one listening socket (``SO_REUSEPORT`` on request).

    ``handle(rest_api_id, stage, request)`` answers invoke-URL requests; ``service(method,
    path, query, headers, body)`` may answer other paths (None: not its own; the composition
    root gives it Lambda's Invoke API); ``log`` gets one line per request; ``health`` adds
    fields to ``/_orch/health``'s answer. Call ``serve_forever()`` (returns after
    ``shutdown()``), then ``server_close()``. Raises ``SandboxError`` when the address cannot be bound.
    """

    max_threads = 512
    max_idle_threads = 16

    def __init__(
        self,
        address: tuple[str, int],
        handle: Handle,
        *,
        log: Callable[[str], None],
        reuse_port: bool = False,
        limits: HttpLimits | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        by_host: Callable[[str | None, str], Any] | None = None,
        service: Service | None = None,
    ) -> None:
        """``by_host(host, path)``: for a path outside the invoke-URL scheme, the stage a
        custom domain name maps it to (an object with ``rest_api_id``, ``stage``,
        ``raw_path``, ``base_path``) or None when the host is no custom domain."""
        self.handle = handle
        self.by_host = by_host
        self.service = service
        self.log = log
        self.limits = limits or HttpLimits()
        self.health = health
        host, port = address
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise _bind_error(host, port, exc) from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(256)
        except OSError as exc:
            sock.close()
            raise _bind_error(host, port, exc) from exc
        self.socket = sock
        self.server_address = sock.getsockname()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._connections: set[socket.socket] = set()
        self._closing = False
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # -- lifecycle --

    def serve_forever(self) -> None:
        """Serve until ``shutdown()``; connections are served by the acceptor threads."""
        with self._lock:
            if self._closing:
                return
            for _ in range(2):
                self._add_acceptor_locked()
        self._stopped.wait()

    def shutdown(self) -> None:
        """Stop accepting connections and make ``serve_forever`` return."""
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked in accept()
        except OSError:
            pass
        for conn in connections:  # idle keep-alive connections stop waiting at once
            try:
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self._stopped.set()

    def server_close(self) -> None:
        """Release the listening socket (after ``shutdown()``, or instead of it)."""
        if not self._closing:
            self.shutdown()
        self.socket.close()

    def in_flight(self) -> int:
        """Connections being served now (keep-alive ones between requests included)."""
        with self._lock:
            return len(self._connections)

    # -- threads --

    def _add_acceptor_locked(self) -> None:
        self._threads += 1
        self._idle += 1
        threading.Thread(target=self._acceptor, name="gateway-request", daemon=True).start()

    def _acceptor(self) -> None:
        """Accept and serve connections; ``_idle`` counts the threads waiting in accept()."""
        listener = self.socket
        while True:
            try:
                conn, address = listener.accept()
            except OSError as exc:
                if self._closing:
                    break
                # EMFILE and the like: say so and give descriptors a moment to free up
                self.log(f"gateway: accept failed: {exc}")
                if self._stopped.wait(0.1):
                    break
                continue
            with self._lock:
                self._idle -= 1
                if self._idle == 0 and self._threads < self.max_threads and not self._closing:
                    self._add_acceptor_locked()
                self._connections.add(conn)
            try:
                self._serve_connection(conn, address)
            except Exception as exc:  # noqa: BLE001 - one connection must not end the thread
                self.log(f"gateway: error while serving {address}: {exc!r}")
            finally:
                with self._lock:
                    self._connections.discard(conn)
                try:
                    conn.close()
                except OSError:
                    pass
            with self._lock:
                if self._closing or self._idle >= self.max_idle_threads:
                    self._threads -= 1
                    return
                self._idle += 1
        with self._lock:
            self._idle -= 1
            self._threads -= 1

    # -- one connection --

    def _serve_connection(self, conn: socket.socket, address: Any) -> None:
        # Timeouts are the kernel's (SO_RCVTIMEO/SO_SNDTIMEO on a blocking socket): Python's
        # own would poll() before every recv and fcntl() at every change, each a point where
        # the thread lets go of the GIL and may wait to get it back.
        limits = self.limits
        parse = _Parse(conn, limits)
        feed = parse.parser.feed_data
        recv = conn.recv
        setsockopt = conn.setsockopt
        setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(SEND_TIMEOUT))
        current = None
        client_ip = address[0] if isinstance(address, tuple) else "127.0.0.1"
        port = self.server_address[1]
        while True:
            if parse.started is None:
                timeout = limits.keep_alive_timeout
            else:
                left = parse.started + limits.request_timeout - time.monotonic()
                timeout = max(min(limits.read_timeout, left), 0.001)
            if timeout != current:
                setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeout))
                current = timeout
            try:
                data = recv(65536)
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO ran out
                if parse.started is not None:
                    self._refuse(conn, _Refused(400, "Bad Request", "request incomplete: timed out"))
                return
            except OSError:
                return
            if not data:
                if parse.started is not None:  # closed (or half-closed) inside a request
                    self._refuse(conn, _Refused(400, "Bad Request", "request incomplete: connection closed"))
                return
            if parse.started is None:
                parse.started = time.monotonic()
            upgrade = False
            try:
                feed(data)
            except httptools.HttpParserUpgrade:
                upgrade = True  # served as plain HTTP/1.1, then the connection closes
            except httptools.HttpParserError as exc:
                refused = parse.refused or _Refused(400, "Bad Request", f"malformed request: {exc}")
                for request in parse.done:  # complete requests before the bad one
                    if not self._answer(conn, request, client_ip, port, close=False):
                        return
                self._refuse(conn, refused)
                return
            requests, parse.done = parse.done, []
            for index, request in enumerate(requests):
                last = index == len(requests) - 1
                close = not request.keep_alive or (upgrade and last)
                if not self._answer(conn, request, client_ip, port, close=close) or close:
                    return

    def _refuse(self, conn: socket.socket, refused: _Refused) -> None:
        data = serialize_response(refused.status, list(_JSON), _message(refused.message), close=True, head=False)
        try:
            conn.sendall(data)
        except OSError:
            pass
        self.log(f"- - {refused.status} 0.0ms - ({refused.detail})")

    def _answer(self, conn: socket.socket, request: _Request, client_ip: str, port: int, *, close: bool) -> bool:
        """Serve one complete request; False when the connection is gone."""
        started = time.perf_counter()
        method = request.method
        target = request.url.decode("latin-1")
        if target.startswith(("http://", "https://")):  # absolute-form: keep the path
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
        query = query.partition("#")[0]
        status, request_id, detail = 500, "-", ""
        try:
            routed = _route(path)
            base_path = None
            if routed is None and path != HEALTH_PATH and self.by_host is not None:
                host = next((v for k, v in request.headers if k.lower() == "host"), None)
                domain = self.by_host(host, path)
                if domain is not None:
                    routed = (domain.rest_api_id, domain.stage, domain.raw_path)
                    base_path = domain.base_path
            served = None
            if routed is None and self.service is not None and path != HEALTH_PATH:
                served = self.service(method, path, query, dict(request.headers), request.body)
            if served is not None:
                status, request_id, detail = served.status, served.request_id, served.detail
                headers, body = served.headers, served.body
            elif routed is None:
                if path == HEALTH_PATH and method in ("GET", "HEAD"):
                    info = {"status": "ok", "service": "orch-gateway", "pid": os.getpid()}
                    if self.health is not None:
                        info.update(self.health())
                    status, headers, body = 200, list(_JSON), json.dumps(info).encode()
                else:
                    status, headers = 404, list(_JSON)
                    body = json.dumps(
                        {
                            "message": "Not Found",
                            "hint": "invoke URLs look like /restapis/<rest_api_id>/<stage>/_user_request_/<path>",
                        }
                    ).encode()
            else:
                api_id, stage, rest = routed
                response = self.handle(
                    api_id,
                    stage,
                    GatewayRequest(
                        method=method,
                        raw_path=rest,
                        query_string=query,
                        headers=request.headers,
                        body=request.body,
                        source_ip=client_ip,
                        server_port=port,
                        protocol=f"HTTP/{request.version}",
                        base_path=base_path,
                    ),
                )
                status, request_id, detail = response.status, response.request_id, response.detail
                headers, body = response.headers, response.body
            data = serialize_response(status, headers, body, close=close, head=method == "HEAD")
            try:
                conn.sendall(data)
            except OSError:
                return False
            return True
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            line = f"{method} {path} {status} {elapsed:.1f}ms {request_id}"
            self.log(f"{line} ({detail})" if detail else line)


def _route(path: str) -> tuple[str, str, str] | None:
    """``/restapis/<id>/<stage>/_user_request_<rest>`` -> (id, stage, rest); else None."""
    stripped = path.lstrip("/")
    if not stripped.startswith("restapis/"):
        return None
    pieces = stripped.split("/", 3)
    if len(pieces) < 4 or not pieces[1] or not pieces[2]:
        return None
    rest = "/" + pieces[3]
    if not rest.startswith(USER_REQUEST_MARK):
        return None
    tail = rest[len(USER_REQUEST_MARK) :]
    if tail and not tail.startswith("/"):
        return None  # '/_user_request_x' is not the marker
    return pieces[1], pieces[2], tail


def _bind_error(host: str, port: int, exc: OSError) -> SandboxError:
    return SandboxError(
        f"The local gateway cannot listen on {host}:{port}: {exc.strerror or exc}.",
        hint="Pick another port (0 chooses a free one) or stop what is using it.",
    )


def check_port_free(host: str, port: int) -> None:
    """Raise ``SandboxError`` when ``host:port`` is taken. SO_REUSEPORT would let the
    gateway share a port another server (an earlier gateway) holds; a plain bind tells."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0] if infos else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise _bind_error(host, port, exc) from exc


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


__all__ = ["HttpLimits", "HttpServer", "check_port_free", "serialize_response", "stderr_log"]
