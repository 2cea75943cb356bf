#!/usr/bin/env python
"""The floor of the local gateway's architecture, for bench/gateway.py's ``floor`` target.

What the gateway does per request, minus everything API Gateway: ``--processes`` processes
share one port (``SO_REUSEPORT``), each a standard-library ``ThreadingHTTPServer`` whose
request thread hands the body to one of ``--workers`` warm worker processes over a pipe
(4-byte length + bytes; the worker ``json.loads`` it and ``json.dumps`` it back, as a
handler that echoes its event would) and answers with what came back. No templates, no
routing, no logs. The gap between this and the bare server is what isolating handlers in
processes costs on this machine; the gap between the gateway and this is the gateway's own.

    python bench/floor_server.py --port PORT [--processes 3] [--workers 4]

Prints ``ready`` once every process listens; stops on SIGTERM (its processes with it).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_LENGTH = struct.Struct("!I")

WORKER = """
import json, os, struct, sys
length = struct.Struct("!I")
r, w = int(sys.argv[1]), int(sys.argv[2])
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(r, n - len(data))
        if not chunk:
            raise SystemExit(0)
        data += chunk
    return data
while True:
    (n,) = length.unpack(read(4))
    answer = json.dumps(json.loads(read(n))).encode()
    os.write(w, length.pack(len(answer)) + answer)
"""


class Worker:
    def __init__(self) -> None:
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(req_r), str(resp_w)], pass_fds=(req_r, resp_w)
        )
        os.close(req_r)
        os.close(resp_w)

    def exchange(self, body: bytes) -> bytes:
        os.write(self.req_w, _LENGTH.pack(len(body)) + body)
        data = b""
        while len(data) < 4:
            data += os.read(self.resp_r, 4 - len(data))
        (n,) = _LENGTH.unpack(data)
        data = b""
        while len(data) < n:
            data += os.read(self.resp_r, n - len(data))
        return data


class ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def serve(port: int, workers: int) -> None:
    pool: queue.Queue[Worker] = queue.Queue()
    for _ in range(workers):
        pool.put(Worker())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            worker = pool.get()
            try:
                answer = worker.exchange(body)
            finally:
                pool.put(worker)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ReusePortServer(("127.0.0.1", port), Handler)
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    print("ready", flush=True)
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="warm workers per process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        serve(args.port, args.workers)
        return 0
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", "--port", str(args.port), "--workers", str(args.workers)],
            stdout=subprocess.PIPE,
            start_new_session=False,
        )
        for _ in range(args.processes)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != b"ready":
            return 1

    def stop(*_: object) -> None:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
