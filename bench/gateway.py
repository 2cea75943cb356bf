#!/usr/bin/env python
"""Benchmark orch's local API gateway against a bare HTTP echo server and `chalice local`.

One run measures three targets with ``wrk`` at the same concurrency, each request on a new
TCP connection (``Connection: close``), for ``--duration`` seconds after a warm-up:

  gateway  the sandbox stack orch runs: moto's ThreadedMotoServer holding the REST API
           (POST / with the prototype's passthrough template, the Authorization header
           and the deptno-param query string, 200/400 integration responses), a stage
           ``dev`` and the Lambda function built from functions/loopback; the local
           gateway (``orch.gateway.server.build_server``, as ``orch.sandboxd`` starts it:
           usable CPUs + 1 gateway processes sharing the port, ``--processes``) runs the
           handler in warm workers;
  bare     a standard-library ThreadingHTTPServer (HTTP/1.1) that returns the request body;
  chalice  ``chalice local --no-autoreload`` serving a throwaway app whose POST / returns
           the request's JSON.

Every target must answer 200 with the expected body before it is measured. The script
checks that wrk really opened one connection per request (TIME_WAIT sockets counted from
/proc/net/snmp) and whether the gateway started processes on its warm path (every gateway
process's worker pids and spawn count before/after, processes this process started, and
new processes anywhere below it in /proc). It prints a table and, as its last line, a JSON
summary.

    .venv/bin/python bench/gateway.py [--duration 10] [--connections 8]

Needs ``wrk`` (Debian: ``apt-get install wrk``; exit code 2 without it) and, for the
chalice target, ``pip install chalice`` (the target is skipped without it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

REGION = "ap-northeast-2"
STAGE = "dev"
BODY = b'{"a":1}'
AUTHORIZATION = "Bearer bench-token"
QUERY = "deptno-param=10"


# ---- measuring -----------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    connections: int | None = None


def parse_wrk(output: str) -> WrkResult:
    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000.0 if unit == "us" else value * 1000.0 if unit == "s" else value

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if not total or not rps:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    unit = total.group(3)
    seconds = float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds,
        rps=float(rps.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def passive_opens() -> int | None:
    """The kernel's count of accepted TCP connections (``Tcp: PassiveOpens``)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        return int(rows[1][rows[0].index("PassiveOpens")])
    except (OSError, ValueError, IndexError):
        return None


class ProcessCounter:
    """Counts processes this Python process starts (subprocess and os.fork)."""

    def __init__(self) -> None:
        self.count = 0
        original = subprocess.Popen._execute_child  # type: ignore[attr-defined]
        counter = self

        def counting(self: subprocess.Popen, *args: object, **kwargs: object) -> None:
            counter.count += 1
            return original(self, *args, **kwargs)

        subprocess.Popen._execute_child = counting  # type: ignore[attr-defined,assignment]
        os.register_at_fork(before=self._forked)

    def _forked(self) -> None:
        self.count += 1


def run_wrk(
    wrk: str,
    url: str,
    headers: dict[str, str],
    *,
    duration: float,
    connections: int,
    threads: int,
    script: Path,
) -> WrkResult:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(duration, 1):g}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        "-H",
        "Connection: close",
    ]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def check_answer(url: str, headers: dict[str, str], check: Callable[[bytes], None]) -> None:
    """One request on its own connection: 200 and a body that passes ``check``."""
    parsed = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert parsed, url
    conn = http.client.HTTPConnection(parsed.group(1), int(parsed.group(2)), timeout=30)
    try:
        conn.request(
            "POST",
            parsed.group(3),
            body=BODY,
            headers={"Content-Type": "application/json", "Connection": "close", **headers},
        )
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{url} answered {response.status}: {body[:500]!r}")
    check(body)


def measure(
    name: str,
    wrk: str,
    url: str,
    headers: dict[str, str],
    check: Callable[[bytes], None],
    args: argparse.Namespace,
    script: Path,
    around: Callable[[], Callable[[], None]] | None = None,
) -> WrkResult:
    """Check, warm up, check, measure, check. ``around()`` runs just before the measured
    run and returns what to call just after it."""
    check_answer(url, headers, check)
    print(f"[{name}] warming up for {args.warmup:g}s", file=sys.stderr, flush=True)
    run_wrk(
        wrk,
        url,
        headers,
        duration=args.warmup,
        connections=args.connections,
        threads=args.threads,
        script=script,
    )
    check_answer(url, headers, check)
    print(f"[{name}] measuring for {args.duration:g}s", file=sys.stderr, flush=True)
    after = around() if around else None
    before = passive_opens()
    result = run_wrk(
        wrk,
        url,
        headers,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        script=script,
    )
    opened = passive_opens()
    if after:
        after()
    if before is not None and opened is not None:
        result.connections = opened - before
    check_answer(url, headers, check)
    return result


# ---- targets -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, pattern: str, log: Path, timeout: float = 60.0) -> None:
    """Read ``proc``'s output until a line matches ``pattern``; then copy the rest to ``log``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern.encode(), seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise RuntimeError(f"no {pattern!r} after {timeout:g}s: {seen[-2000:]!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"the server exited ({proc.wait()}): {seen[-2000:]!r}")
        seen += chunk

    def drain() -> None:
        with open(log, "ab") as out:
            out.write(seen)
            while chunk := os.read(fd, 65536):
                out.write(chunk)

    threading.Thread(target=drain, daemon=True).start()


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    server.daemon_threads = True
    server.request_queue_size = 128
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


CHALICE_APP = """
from chalice import Chalice

app = Chalice(app_name="bench-echo")


@app.route("/", methods=["POST"])
def echo():
    return app.current_request.json_body
"""


@contextlib.contextmanager
def chalice_server(tmp: Path) -> Iterator[str]:
    chalice = Path(sys.executable).with_name("chalice")
    if not chalice.exists():
        found = shutil.which("chalice")
        if found is None:
            raise FileNotFoundError("chalice is not installed (pip install chalice)")
        chalice = Path(found)
    project = tmp / "chalice-echo"
    (project / ".chalice").mkdir(parents=True)
    (project / "app.py").write_text(textwrap.dedent(CHALICE_APP))
    (project / "requirements.txt").write_text("")
    (project / ".chalice" / "config.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "app_name": "bench-echo",
                "stages": {"dev": {"api_gateway_stage": "api"}},
            }
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(chalice), "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_line(proc, r"Serving on", tmp / "chalice.log")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def package_loopback(store: Path) -> Path:
    """functions/loopback as .orch/packages/<sha256-hex>.zip (orch's packager if present)."""
    source = ROOT / "functions" / "loopback"
    if not (source / "handler.py").exists():
        source = store.parent / "echo-src"
        source.mkdir(parents=True, exist_ok=True)
        (source / "handler.py").write_text(
            "def handler(event, context):\n    return {'event': event}\n"
        )
    try:
        from orch.package import build_package
    except ImportError:
        build_package = None  # type: ignore[assignment]
    if build_package is not None:
        return Path(build_package(source, "python3.12", store, name="loopback").path)
    import hashlib

    store.mkdir(parents=True, exist_ok=True)
    tmp = store / "tmp.zip"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(str(path.relative_to(source)), (1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    final = store / f"{hashlib.sha256(tmp.read_bytes()).hexdigest()}.zip"
    os.replace(tmp, final)
    return final


def deploy_to_moto(endpoint: str, project: Path) -> tuple[str, str]:
    """The prototype's stack in the emulator; returns (rest_api_id, function name)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    iam = session.client("iam", endpoint_url=endpoint)
    lam = session.client("lambda", endpoint_url=endpoint)
    apigw = session.client("apigateway", endpoint_url=endpoint)

    zip_path = package_loopback(project / ".orch" / "packages")
    role = iam.create_role(
        RoleName="orch-bench-loopback",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    name = "orch-loopback-dev"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": zip_path.read_bytes()},
        Timeout=10,
        MemorySize=128,
        Environment={"Variables": {"LOG_LEVEL": "debug"}},
        Publish=True,
    )
    version = lam.publish_version(FunctionName=name)["Version"]
    alias_arn = lam.create_alias(FunctionName=name, Name=STAGE, FunctionVersion=version)["AliasArn"]

    from orch.render import passthrough_template

    template = passthrough_template(ROOT)
    api_id = apigw.create_rest_api(name=name, endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    apigw.put_method(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        authorizationType="NONE",
        requestParameters={
            "method.request.header.Authorization": False,
            "method.request.querystring.deptno-param": False,
        },
    )
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{alias_arn}/invocations"
    apigw.put_integration(
        restApiId=api_id,
        resourceId=root,
        httpMethod="POST",
        type="AWS",
        integrationHttpMethod="POST",
        uri=uri,
        requestTemplates={"application/json": template},
        passthroughBehavior="WHEN_NO_TEMPLATES",
        timeoutInMillis=29000,
    )
    for status, pattern in (
        ("200", ""),
        ("400", r".*\[BadRequest\].*"),
        ("500", r".*\[InternalServerError\].*"),
    ):
        apigw.put_method_response(
            restApiId=api_id, resourceId=root, httpMethod="POST", statusCode=status
        )
        apigw.put_integration_response(
            restApiId=api_id,
            resourceId=root,
            httpMethod="POST",
            statusCode=status,
            selectionPattern=pattern,
            responseTemplates={},
        )
    apigw.create_deployment(
        restApiId=api_id,
        stageName=STAGE,
        variables={"env": "dev", "greeting": "hello-from-dev"},
    )
    return api_id, name


@contextlib.contextmanager
def gateway_server(project: Path, processes: int) -> Iterator[tuple[str, object]]:
    """The stack ``orch sandbox`` runs: moto and the gateway (``processes`` gateway
    processes sharing the port, as ``orch.sandboxd``) in this process."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    import logging

    from moto.server import ThreadedMotoServer

    from orch.gateway.app import build_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        api_id, _name = deploy_to_moto(endpoint, project)
        server = build_server(
            "127.0.0.1",
            0,
            aws_endpoint=endpoint,
            region=REGION,
            project_dir=project,
            log=lambda line: None,
            processes=processes,
            worker_pool_options={"max_workers_per_function": 4},
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            if not server.wait_ready(120):
                raise RuntimeError("the gateway's helper processes did not start")
            gport = server.server_address[1]
            url = f"http://127.0.0.1:{gport}/restapis/{api_id}/{STAGE}/_user_request_/?{QUERY}"
            yield url, server
        finally:
            server.shutdown()
            server.server_close()
    finally:
        moto.stop()


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below ``root``, from /proc."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[19])))
    found: set[tuple[int, int]] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def warm_up_every_process(url: str, headers: dict[str, str], server: object) -> None:
    """One answered request per gateway process, so each has a warm worker (cold starts
    stay outside the numbers): new connections until every process has served one."""
    want = len(server.pids)  # type: ignore[attr-defined]
    for _ in range(200 * want):
        stats = server.stats()  # type: ignore[attr-defined]
        if sum(1 for s in stats if s["workers_started"]) >= want:
            return
        check_answer(url, headers, check_gateway)
    raise RuntimeError("not every gateway process answered a request")


# ---- checks --------------------------------------------------------------------------------


def check_echo(body: bytes) -> None:
    if json.loads(body) != json.loads(BODY):
        raise RuntimeError(f"expected the request body back, got {body[:300]!r}")


def check_gateway(body: bytes) -> None:
    answer = json.loads(body)
    event = answer.get("event", {})
    if event.get("body-json") != json.loads(BODY):
        raise RuntimeError(f"the loopback answer lacks the request body: {body[:500]!r}")
    params = event.get("params", {})
    if "context" in answer and params:  # the real loopback under the passthrough template
        if params.get("querystring", {}).get("deptno-param") != "10":
            raise RuntimeError(f"the query string did not reach the handler: {params}")
        if params.get("header", {}).get("Authorization") != AUTHORIZATION:
            raise RuntimeError(f"the Authorization header did not reach the handler: {params}")


# ---- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per target")
    parser.add_argument("--connections", type=int, default=8, help="wrk concurrency")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="gateway processes (default: what orch sandbox runs, default_processes())",
    )
    parser.add_argument(
        "--targets", default="gateway,bare,chalice", help="comma-separated subset to run"
    )
    args = parser.parse_args(argv)
    if args.processes is None:
        from orch.gateway.multi import default_processes

        args.processes = default_processes()
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "bench/gateway.py needs wrk, which is not installed: "
            "`apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`.",
            file=sys.stderr,
        )
        return 2
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    results: dict[str, WrkResult | None] = {}
    notes: dict[str, object] = {}
    processes = ProcessCounter()

    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY.decode()}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        if "gateway" in targets:
            project = tmp / "project"
            project.mkdir()
            with gateway_server(project, args.processes) as (url, server):
                headers = {"Authorization": AUTHORIZATION}
                warm_up_every_process(url, headers, server)  # cold starts outside the numbers
                notes["gateway_processes"] = len(server.pids)  # type: ignore[attr-defined]

                def around() -> Callable[[], None]:
                    stats = server.stats()  # type: ignore[attr-defined]
                    tree = descendants(os.getpid())
                    spawned = processes.count

                    def after() -> None:
                        later = server.stats()  # type: ignore[attr-defined]
                        notes["worker_pids_before"] = sorted(
                            p for s in stats for p in s["worker_pids"]
                        )
                        notes["worker_pids_after"] = sorted(
                            p for s in later for p in s["worker_pids"]
                        )
                        notes["workers_started"] = sum(s["workers_started"] for s in later) - sum(
                            s["workers_started"] for s in stats
                        )
                        notes["processes_started"] = processes.count - spawned - 1  # - wrk
                        # wrk is a child of this process and has exited by now
                        notes["new_descendants"] = len(descendants(os.getpid()) - tree)

                    return after

                results["gateway"] = measure(
                    "gateway", wrk, url, headers, check_gateway, args, script, around
                )
        if "bare" in targets:
            with bare_server() as url:
                results["bare"] = measure("bare", wrk, url, {}, check_echo, args, script)
        if "chalice" in targets:
            try:
                with chalice_server(tmp) as url:
                    results["chalice"] = measure("chalice", wrk, url, {}, check_echo, args, script)
            except FileNotFoundError as exc:
                print(f"[chalice] skipped: {exc}", file=sys.stderr)
                results["chalice"] = None

    bare = results.get("bare")
    print()
    print(
        f"wrk: {args.connections} connections, new connection per request, "
        f"{args.duration:g}s per target after {args.warmup:g}s warm-up"
    )
    print(
        f"{'target':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs bare':>9}"
        f"{'requests':>10}{'conns':>8}{'errors':>8}{'non-2xx':>9}"
    )
    for name in ("gateway", "bare", "chalice"):
        r = results.get(name)
        if r is None:
            if name in targets:
                print(f"{name:<10}{'skipped':>10}")
            continue
        ratio = f"{r.rps / bare.rps:.2f}" if bare and bare.rps else "-"
        print(
            f"{name:<10}{r.rps:>10.1f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{ratio:>9}"
            f"{r.requests:>10}{r.connections if r.connections is not None else '-':>8}"
            f"{r.errors:>8}{r.non_2xx:>9}"
        )
    for name, r in results.items():
        if r is not None and r.connections is not None and r.connections < 0.95 * r.requests:
            print(
                f"warning: {name}: {r.connections} connections accepted for {r.requests} "
                "requests: wrk reused connections"
            )
    if "chalice" in results and results["chalice"] is not None and results["chalice"].errors:
        print(
            "note: chalice local closes the connection without answering `Connection: close`, "
            "so wrk finds each socket closed when it tries to reuse it, counts a read error "
            "and reconnects (its request count only has the answered requests)"
        )
    if "gateway" in results:
        print(
            f"gateway warm path ({notes.get('gateway_processes')} gateway processes): worker "
            f"processes started while measuring: {notes.get('workers_started')}, processes "
            "started by the benchmark process (gateway + moto) while measuring: "
            f"{notes.get('processes_started')}, new processes below it: "
            f"{notes.get('new_descendants')}; worker pids "
            f"before {notes.get('worker_pids_before')} after {notes.get('worker_pids_after')}"
        )

    def rps(name: str) -> float | None:
        r = results.get(name)
        return round(r.rps, 1) if r else None

    def ratio(name: str) -> float | None:
        r = results.get(name)
        return round(r.rps / bare.rps, 3) if r and bare and bare.rps else None

    def p99(name: str) -> float | None:
        r = results.get(name)
        return round(r.p99_ms, 2) if r else None

    summary = {
        "gateway_rps": rps("gateway"),
        "bare_rps": rps("bare"),
        "chalice_rps": rps("chalice"),
        "gateway_ratio": ratio("gateway"),
        "chalice_ratio": ratio("chalice"),
        "gateway_p99_ms": p99("gateway"),
        "bare_p99_ms": p99("bare"),
        "chalice_p99_ms": p99("chalice"),
        "connections": args.connections,
        "duration_s": args.duration,
        "new_connection_per_request": all(
            r.connections is not None and r.connections >= 0.95 * r.requests
            for r in results.values()
            if r is not None
        ),
        "gateway_workers_started_while_measuring": notes.get("workers_started"),
        "gateway_processes_started_while_measuring": notes.get("processes_started"),
        "gateway_new_descendant_processes": notes.get("new_descendants"),
        "gateway_processes": notes.get("gateway_processes"),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
