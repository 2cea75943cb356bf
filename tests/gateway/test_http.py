"""Strict HTTP at the local gateway (issue 10 acceptance 3, issue 12 item 8): malformed
framing is refused with a JSON 4xx or a closed connection within 5 s, the gateway keeps
serving, and a handler never runs on a partial body. Through the real gateway, a real moto
server and a real worker."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from tests.gateway.conftest import build_zip, invoke_url, lambda_uri

from orch.gateway.server import HttpLimits, serialize_response

DEADLINE = 5.0


@pytest.fixture(scope="module")
def calls_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("calls") / "calls.txt"


@pytest.fixture(scope="module")
def strict_api(aws, make_function, gateway_server, calls_file: Path) -> str:
    """POST / (AWS_PROXY): the handler appends each body it gets to ``calls_file``."""
    source = (
        "import json\n\n\ndef handler(event, context):\n"
        f"    with open({str(calls_file)!r}, 'a') as f:\n"
        "        f.write(repr(event['body']) + '\\n')\n"
        "    return {'statusCode': 200, 'body': json.dumps({'got': event['body']})}\n"
    )
    fn = make_function(source)
    api_id = aws.apigw.create_rest_api(name="strict-http")["id"]
    root = aws.apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    aws.apigw.put_method(restApiId=api_id, resourceId=root, httpMethod="POST", authorizationType="NONE")
    aws.apigw.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=lambda_uri(fn),
    )
    aws.apigw.create_deployment(restApiId=api_id, stageName="dev")
    return invoke_url(gateway_server, api_id, "dev") + "/"


def _address(url: str) -> tuple[str, int, str]:
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    return host, int(port), "/" + path


def _exchange(url: str, data: bytes, *, half_close: bool = False) -> tuple[bytes, float]:
    """Send ``data`` on a new connection; read until the server closes it (or DEADLINE)."""
    host, port, _ = _address(url)
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        sock.settimeout(DEADLINE)
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except TimeoutError:
            pytest.fail(f"no answer and no close within {DEADLINE} s; got {reply!r}")
        except ConnectionResetError:
            pass
    return reply, time.monotonic() - started


def _status(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/1.1 "):
        return None
    return int(reply[9:12])


def _normal(url: str, body: bytes = b'{"ok": 1}') -> tuple[int, bytes]:
    _, _, path = _address(url)
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    reply, _ = _exchange(url, request)
    head, _, payload = reply.partition(b"\r\n\r\n")
    return _status(reply) or 0, payload


def _calls(calls_file: Path) -> list[str]:
    return calls_file.read_text().splitlines() if calls_file.exists() else []


MALFORMED = {
    "negative chunk size": b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "0x chunk size": b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "signed content length": b"Content-Length: +5\r\n\r\nhello",
    "two content lengths": b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content length and chunked": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "unknown transfer coding": b"Transfer-Encoding: gzip\r\n\r\nhello",
    "folded header": b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_framing_is_a_json_400_then_the_gateway_serves(strict_api, calls_file, name):
    _, _, path = _address(strict_api)
    before = _calls(calls_file)
    reply, took = _exchange(strict_api, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + MALFORMED[name])
    assert took < DEADLINE
    assert _status(reply) == 400, reply
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert json.loads(body) == {"message": "Bad Request"}
    assert _calls(calls_file) == before  # the handler never saw it
    assert _normal(strict_api) == (200, b'{"got": "{\\"ok\\": 1}"}')


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01garbage\r\n\r\n", b"GET /\r\n\r\n", b"NOT-A-METHOD / HTTP/1.1\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n"],
)
def test_garbage_request_line_gets_a_status_line_and_json(strict_api, garbage):
    reply, took = _exchange(strict_api, garbage)
    assert took < DEADLINE
    assert _status(reply) == 400, reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["message"] == "Bad Request"
    assert _normal(strict_api)[0] == 200


def _short_body(url: str, calls_file: Path) -> None:
    _, _, path = _address(url)
    partial = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode() + b'{"partial": '
    reply, took = _exchange(url, partial)
    assert _status(reply) == 400 and took < DEADLINE, (reply, took)
    # the same with a half-close: the client says it is done, the body is still short
    reply, took = _exchange(url, partial, half_close=True)
    # answered at the half-close, not after the read timeout's silence (3 s)
    assert _status(reply) == 400 and took < 2.0, (reply, took)
    assert not [call for call in _calls(calls_file) if "partial" in call]


def _endless_headers(url: str) -> None:
    _, _, path = _address(url)
    reply, took = _exchange(url, f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
    assert _status(reply) == 400 and took < DEADLINE


def _idle_keep_alive(url: str) -> None:
    host, port, path = _address(url)
    with socket.create_connection((host, port), timeout=DEADLINE + 2) as sock:
        body = b"{}"
        request = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock.sendall(request * 2)  # two pipelined requests on one keep-alive connection
        reply = b""
        while reply.count(b"HTTP/1.1 200") < 2 or not reply.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, reply
            reply += chunk
        assert b"Connection: close" not in reply
        idle_since = time.monotonic()
        assert sock.recv(1) == b""  # the server closes the idle connection ...
        assert time.monotonic() - idle_since < DEADLINE  # ... within the deadline


def test_slow_clients_time_out_and_a_partial_body_is_never_handled(strict_api, calls_file):
    """A Content-Length larger than the body (also half-closed), headers that never end and
    an idle keep-alive connection, at once (each waits out a timeout of a few seconds)."""
    failures: list[BaseException] = []

    def run(check, *args) -> None:
        try:
            check(*args)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(_short_body, strict_api, calls_file)),
        threading.Thread(target=run, args=(_endless_headers, strict_api)),
        threading.Thread(target=run, args=(_idle_keep_alive, strict_api)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert _normal(strict_api)[0] == 200


def test_over_ten_megabytes_is_413_before_the_body_is_read(strict_api):
    _, _, path = _address(strict_api)
    reply, took = _exchange(strict_api, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n\r\n".encode())
    assert _status(reply) == 413 and json.loads(reply.partition(b"\r\n\r\n")[2]) == {"message": "Request Too Long"}
    chunked = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
    reply, _ = _exchange(strict_api, chunked + chunk * 11)
    assert _status(reply) == 413


def test_expect_100_continue_and_chunked_bodies(strict_api):
    host, port, path = _address(strict_api)
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert _status(reply) == 200
    chunked = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    reply, _ = _exchange(strict_api, chunked.encode() + b"4\r\n{\"a\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
    assert _status(reply) == 200 and json.loads(reply.partition(b"\r\n\r\n")[2]) == {"got": '{"a": 1}'}


def test_many_malformed_connections_at_once_leave_the_gateway_serving(strict_api):
    _, _, path = _address(strict_api)
    bad = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + MALFORMED["negative chunk size"]
    statuses: list[int | None] = []

    def send() -> None:
        statuses.append(_status(_exchange(strict_api, bad)[0]))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [400] * 20
    assert _normal(strict_api)[0] == 200


def test_response_serialisation_never_lets_a_header_break_the_framing():
    data = serialize_response(
        200,
        [("X-Ok", "1"), ("X-Bad", "a\r\nInjected: yes"), ("Content-Length", "999"), ("X-Ünï", "v")],
        b"body",
        close=True,
        head=False,
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Injected" not in head and b"Content-Length: 4" in head and b"999" not in head
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ") and b"Connection: close" in head
    assert body == b"body"


def test_limits_are_what_the_acceptance_needs():
    limits = HttpLimits()
    assert limits.keep_alive_timeout < DEADLINE and limits.read_timeout < DEADLINE
    assert limits.max_body_bytes == 10 * 1024 * 1024


def test_build_zip_is_deterministic():  # the packages these tests store are content-addressed
    assert build_zip({"a.py": "x"}) == build_zip({"a.py": "x"})
