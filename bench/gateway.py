#!/usr/bin/env python
"""Benchmark orch's local API gateway against a bare HTTP echo server and `chalice local`.

All three targets run at once and are measured with ``wrk`` in interleaved rounds (each
round measures every target for ``--duration`` seconds, in a rotating order), at the same
concurrency, each request on a new TCP connection (``Connection: close``); ratios are taken
within a round and the medians reported, so a machine whose load changes (it is shared)
skews every target alike. The machine's load is reported: load average, and the share of
its CPU that processes outside this benchmark used while it measured.

  gateway  the sandbox stack orch runs: the emulator process (moto) holding the REST API
           (POST / with the prototype's passthrough template, the Authorization header
           and the deptno-param query string, 200/400 integration responses), a stage
           ``dev`` and the Lambda function built from functions/loopback behind its alias;
           the local gateway (``orch.gateway.app.build_server`` in this process, as
           ``orch.sandboxd`` starts it: usable CPUs + 1 gateway processes sharing the port,
           ``--processes``) runs the handler in warm workers;
  bare     a standard-library ThreadingHTTPServer (HTTP/1.1) that returns the request body;
  chalice  ``chalice local --no-autoreload`` serving a throwaway app whose POST / returns
           the request's JSON;
  gw-nologs  (diagnostic; only when named in ``--targets``) a second gateway stack like the
           first but without shipping handler logs to CloudWatch Logs, measured side by
           side: what log shipping adds to the gateway's figures in the same run (the
           ``--no-cloudwatch`` flag removes shipping from the gateway target itself instead);
  floor    bench/floor_server.py: the gateway's architecture with none of its work (as many
           processes sharing the port, each handing the body over a pipe to one of 4 warm
           worker processes that JSON-decode and re-encode it): what running handlers in
           their own processes costs on this machine, the floor under the gateway's figures.

Every target must answer 200 with the expected body before and after it is measured. The
script checks that wrk really opened one connection per request (TCP PassiveOpens from
/proc/net/snmp) and that the gateway started no process on its warm path (every gateway
process's worker pids and spawn count, processes this process started, new processes
below it in /proc).

Then it measures the first requests after an apply, ``--releases`` times: new code is
published and the stage's alias moved to it, ``orch.sandbox.mark_changed`` is called, and
it reports how long every gateway process took to have a warm worker for the new version,
the latency of the requests that follow (new connections, so every process serves some)
and whether any of them paid a cold start; and, once more, a request sent the instant
after ``mark_changed`` (the registry reads the emulator on that request's path).

It prints a table and, as its last line, a JSON summary.

    .venv/bin/python bench/gateway.py [--duration 5] [--rounds 3] [--connections 8]

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
from typing import Any

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
    cpu_ms_per_request: float | None = None


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


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    check: Callable[[bytes], None]


def serving_cpu_seconds() -> float:
    """CPU seconds used so far by this process (the in-process servers) and every live
    process below it (the emulator, gateway helpers, workers, chalice); wrk, reaped, is
    left out."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def measure(target: Target, wrk: str, args: argparse.Namespace, script: Path, duration: float) -> WrkResult:
    """Check, measure ``duration`` seconds (counting accepted connections and the CPU the
    servers used per request, which other load on the machine hardly changes), check."""
    check_answer(target.url, target.headers, target.check)
    cpu = serving_cpu_seconds()
    before = passive_opens()
    result = run_wrk(
        wrk,
        target.url,
        target.headers,
        duration=duration,
        connections=args.connections,
        threads=args.threads,
        script=script,
    )
    opened = passive_opens()
    if result.requests:
        result.cpu_ms_per_request = (serving_cpu_seconds() - cpu) * 1000.0 / result.requests
    if before is not None and opened is not None:
        result.connections = opened - before
    check_answer(target.url, target.headers, target.check)
    return result


class MachineLoad:
    """CPU the whole machine used (/proc/stat) against what this benchmark's processes
    used, between ``start()`` and ``stop()``: the rest is other people's load."""

    def __init__(self) -> None:
        self.started: tuple[float, float, float] | None = None
        self.result: dict[str, float] = {}

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        """Our servers' CPU and what our reaped children (wrk) used."""
        return serving_cpu_seconds() + sum(os.times()[2:4])

    def start(self) -> None:
        self.started = (time.monotonic(), self._machine_busy(), self._ours())
        self.result["loadavg_start"] = round(os.getloadavg()[0], 2)

    def stop(self) -> dict[str, float]:
        assert self.started is not None
        wall, busy, ours = self.started
        wall = time.monotonic() - wall
        cpus = len(os.sched_getaffinity(0))
        others = max((self._machine_busy() - busy) - (self._ours() - ours), 0.0)
        self.result.update(
            loadavg_end=round(os.getloadavg()[0], 2),
            others_cpu_share=round(others / (wall * cpus), 3),
            cpus=cpus,
        )
        return self.result


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


@contextlib.contextmanager
def floor_server(processes: int) -> Iterator[str]:
    """bench/floor_server.py: the gateway's architecture with no gateway work in it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "floor_server.py"), "--port", str(port), "--processes", str(processes)],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("bench/floor_server.py did not start")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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


@dataclass
class Stack:
    url: str
    server: Any
    project: Path
    endpoint: str
    function: str


@contextlib.contextmanager
def gateway_server(project: Path, processes: int, cloudwatch: bool = True) -> Iterator[Stack]:
    """The stack ``orch sandbox`` runs, as ``orch.sandboxd`` runs it: the emulator in its own
    process (``EmulatorProcess``) and the gateway (``processes`` gateway processes sharing
    the port) in this one."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    from orch.gateway.app import build_server
    from orch.gateway.gcpause import bound_collection_pauses
    from orch.sandbox import mark_changed
    from orch.sandboxd import EmulatorProcess

    emulator = EmulatorProcess().start(0)
    try:
        endpoint = emulator.wait_ready()
        api_id, name = deploy_to_moto(endpoint, project)
        mark_changed(project)  # as orch does after an apply
        server = build_server(
            "127.0.0.1",
            0,
            aws_endpoint=endpoint,
            region=REGION,
            project_dir=project,
            log=lambda line: None,
            processes=processes,
            worker_pool_options={"max_workers_per_function": 4},
            cloudwatch=cloudwatch,
        )
        bound_collection_pauses()  # as orch.sandboxd does once its gateway is built
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            if not server.wait_ready(120):
                raise RuntimeError("the gateway's helper processes did not start")
            gport = server.server_address[1]
            url = f"http://127.0.0.1:{gport}/restapis/{api_id}/{STAGE}/_user_request_/?{QUERY}"
            yield Stack(url, server, project, endpoint, name)
        finally:
            server.shutdown()
            server.server_close()
    finally:
        emulator.stop()


def release(stack: Stack, number: int) -> str:
    """New code for the function (the loopback plus a marker file), published, the stage's
    alias moved to it and the package in the store: what an apply of a code change leaves.
    Returns the new version."""
    import hashlib
    import io

    import boto3

    source = ROOT / "functions" / "loopback"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.writestr(zipfile.ZipInfo(str(path.relative_to(source)), (1980, 1, 1, 0, 0, 0)), path.read_bytes())
        zf.writestr(zipfile.ZipInfo("release.txt", (1980, 1, 1, 0, 0, 0)), f"{number}\n")
    data = buffer.getvalue()
    store = stack.project / ".orch" / "packages"
    (store / f"{hashlib.sha256(data).hexdigest()}.zip").write_bytes(data)
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    lam = session.client("lambda", endpoint_url=stack.endpoint)
    version = lam.update_function_code(FunctionName=stack.function, ZipFile=data, Publish=True)["Version"]
    lam.update_alias(FunctionName=stack.function, Name=STAGE, FunctionVersion=version)
    return version


def timed_answer(url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    check_answer(url, headers, check_gateway)
    return (time.perf_counter() - started) * 1000.0


def first_requests_after_apply(stack: Stack, headers: dict[str, str], releases: int) -> dict[str, Any]:
    """See the module doc: per release, the time until every process is warm for the new
    version after mark_changed (``wait_until_warm``, what orch can wait for after an apply),
    and the latency of the requests that follow."""
    from orch.gateway.generation import wait_until_warm
    from orch.sandbox import generation_path, mark_changed

    server = stack.server
    processes = len(server.pids)
    rows = []
    for number in range(1, releases + 1):
        version = release(stack, number)
        want = f"{stack.function}:{version}"
        started = time.monotonic()
        token = mark_changed(stack.project)
        if not wait_until_warm(generation_path(stack.project), token, timeout=60):
            raise RuntimeError(f"the gateway processes were not warm for {want} within 60 s")
        ready_ms = (time.monotonic() - started) * 1000.0
        if not all(s["warmed_generation"] == token and want in s["warm"] for s in server.stats()):
            raise RuntimeError(f"a gateway process said it was warm for {want} and is not: {server.stats()}")
        cold = sum(s["workers_started"] for s in server.stats())
        latencies = [timed_answer(stack.url, headers) for _ in range(3 * processes)]
        cold = sum(s["workers_started"] for s in server.stats()) - cold
        rows.append(
            {
                "version": version,
                "warm_everywhere_after_ms": round(ready_ms, 1),
                "first_ms": round(latencies[0], 2),
                "max_ms": round(max(latencies), 2),
                "cold_starts": cold,
            }
        )
    version = release(stack, releases + 1)
    mark_changed(stack.project)
    immediate = timed_answer(stack.url, headers)  # no waiting: the request reads the emulator
    return {"releases": rows, "immediately_after_mark_changed_ms": round(immediate, 2)}


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


def warm_up_every_process(url: str, headers: dict[str, str], server: Any) -> None:
    """One answered request per gateway process, so each has a warm worker (cold starts
    stay outside the numbers): new connections until every process has served one."""
    want = len(server.pids)
    for _ in range(200 * want):
        stats = server.stats()
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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per target per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per target")
    parser.add_argument("--connections", type=int, default=8, help="wrk concurrency")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--releases", type=int, default=3, help="applies for the first-request measurement")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="gateway processes (default: what orch sandbox runs, default_processes())",
    )
    parser.add_argument("--targets", default="gateway,bare,chalice,floor", help="comma-separated subset to run")
    parser.add_argument(
        "--no-cloudwatch",
        action="store_true",
        help="diagnostic: run the gateway without shipping handler logs (not what orch runs)",
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
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    runs: dict[str, list[WrkResult]] = {name: [] for name in names}
    notes: dict[str, Any] = {}
    load = MachineLoad()
    processes = ProcessCounter()

    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY.decode()}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        targets: list[Target] = []
        gateway: Stack | None = None
        headers = {"Authorization": AUTHORIZATION}

        def gateway_target(name: str, cloudwatch: bool) -> Stack:
            """A gateway stack in its own project folder, warm in every process (cold
            starts stay outside the numbers), measured as target ``name``."""
            project = tmp / f"project-{name}"
            project.mkdir()
            started = stack.enter_context(gateway_server(project, args.processes, cloudwatch))
            warm_up_every_process(started.url, headers, started.server)
            targets.append(Target(name, started.url, headers, check_gateway))
            return started

        if "gateway" in names:
            gateway = gateway_target("gateway", not args.no_cloudwatch)
            notes["gateway_processes"] = len(gateway.server.pids)
        if "gw-nologs" in names:
            gateway_target("gw-nologs", False)
        if "bare" in names:
            targets.append(Target("bare", stack.enter_context(bare_server()), {}, check_echo))
        if "floor" in names:
            targets.append(Target("floor", stack.enter_context(floor_server(args.processes)), {}, check_echo))
        if "chalice" in names:
            try:
                targets.append(Target("chalice", stack.enter_context(chalice_server(tmp)), {}, check_echo))
            except FileNotFoundError as exc:
                print(f"[chalice] skipped: {exc}", file=sys.stderr)
                runs.pop("chalice")
        for target in targets:
            print(f"[{target.name}] warming up for {args.warmup:g}s", file=sys.stderr, flush=True)
            check_answer(target.url, target.headers, target.check)
            run_wrk(
                wrk,
                target.url,
                target.headers,
                duration=args.warmup,
                connections=args.connections,
                threads=args.threads,
                script=script,
            )

        before_stats = gateway.server.stats() if gateway else []
        tree = descendants(os.getpid())
        spawned = processes.count
        load.start()
        for round_number in range(args.rounds):
            order = targets[round_number % len(targets) :] + targets[: round_number % len(targets)]
            for target in order:
                print(f"[{target.name}] round {round_number + 1}: {args.duration:g}s", file=sys.stderr, flush=True)
                runs[target.name].append(measure(target, wrk, args, script, args.duration))
        notes["load"] = load.stop()
        if gateway is not None:
            after_stats = gateway.server.stats()
            notes["worker_pids_before"] = sorted(p for s in before_stats for p in s["worker_pids"])
            notes["worker_pids_after"] = sorted(p for s in after_stats for p in s["worker_pids"])
            notes["workers_started"] = sum(s["workers_started"] for s in after_stats) - sum(
                s["workers_started"] for s in before_stats
            )
            wrk_runs = sum(len(r) for r in runs.values())
            notes["processes_started"] = processes.count - spawned - wrk_runs
            notes["new_descendants"] = len(descendants(os.getpid()) - tree)
            if args.releases:
                print(f"[gateway] first requests after {args.releases} applies", file=sys.stderr, flush=True)
                notes["after_apply"] = first_requests_after_apply(gateway, headers, args.releases)

    def ratio_runs(name: str) -> list[float]:
        if name not in runs or "bare" not in runs:
            return []
        return [r.rps / b.rps for r, b in zip(runs[name], runs["bare"], strict=True) if b.rps]

    print()
    print(
        f"wrk: {args.connections} connections, new connection per request, {args.rounds} interleaved rounds "
        f"of {args.duration:g}s per target after {args.warmup:g}s warm-up; medians over rounds"
    )
    print(
        f"{'target':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'vs bare':>9}{'p99 rounds':>24}{'cpu ms/req':>11}"
        f"{'requests':>10}{'conns':>8}{'errors':>8}{'non-2xx':>9}"
    )
    for name in ("gateway", "gw-nologs", "bare", "chalice", "floor"):
        results = runs.get(name)
        if not results:
            if name in names:
                print(f"{name:<10}{'skipped':>10}")
            continue
        ratios = ratio_runs(name)
        ratio = f"{_median(ratios):.2f}" if ratios else "-"
        p99s = "/".join(f"{r.p99_ms:.0f}" for r in results)
        print(
            f"{name:<10}{_median([r.rps for r in results]):>10.1f}{_median([r.p50_ms for r in results]):>10.2f}"
            f"{_median([r.p99_ms for r in results]):>10.2f}{ratio:>9}{p99s:>24}"
            f"{_median([r.cpu_ms_per_request or 0.0 for r in results]):>11.2f}"
            f"{sum(r.requests for r in results):>10}{sum(r.connections or 0 for r in results):>8}"
            f"{sum(r.errors for r in results):>8}{sum(r.non_2xx for r in results):>9}"
        )
    for name, results in runs.items():
        for r in results:
            if r.connections is not None and r.connections < 0.95 * r.requests:
                print(f"warning: {name}: {r.connections} connections accepted for {r.requests} requests")
    if runs.get("chalice") and any(r.errors for r in runs["chalice"]):
        print(
            "note: chalice local closes the connection without answering `Connection: close`, "
            "so wrk finds each socket closed when it tries to reuse it, counts a read error "
            "and reconnects (its request count only has the answered requests)"
        )
    load_note = notes["load"]
    print(
        f"machine: {load_note['cpus']} CPUs, load average {load_note['loadavg_start']} -> {load_note['loadavg_end']}, "
        f"other processes used {100 * load_note['others_cpu_share']:.0f}% of the CPU while measuring"
    )
    if "gateway" in runs:
        print(
            f"gateway warm path ({notes.get('gateway_processes')} gateway processes): worker "
            f"processes started while measuring: {notes.get('workers_started')}, processes "
            "started by the benchmark process (gateway, emulator) while measuring: "
            f"{notes.get('processes_started')}, new processes below it: "
            f"{notes.get('new_descendants')}; worker pids "
            f"before {notes.get('worker_pids_before')} after {notes.get('worker_pids_after')}"
        )
    after_apply = notes.get("after_apply")
    if after_apply:
        for row in after_apply["releases"]:
            print(
                f"after apply (version {row['version']}): every process warm {row['warm_everywhere_after_ms']:.0f} ms "
                f"after mark_changed; next {3 * notes['gateway_processes']} requests: first {row['first_ms']:.2f} ms, "
                f"max {row['max_ms']:.2f} ms, cold starts {row['cold_starts']}"
            )
        print(
            "a request sent the instant after mark_changed (reads the emulator on its path): "
            f"{after_apply['immediately_after_mark_changed_ms']:.2f} ms"
        )

    def median_of(name: str, field: str) -> float | None:
        results = runs.get(name)
        return round(_median([getattr(r, field) for r in results]), 2) if results else None

    def median_ratio(name: str) -> float | None:
        ratios = ratio_runs(name)
        return round(_median(ratios), 3) if ratios else None

    releases = (after_apply or {}).get("releases", [])
    summary = {
        "gateway_rps": median_of("gateway", "rps"),
        "bare_rps": median_of("bare", "rps"),
        "chalice_rps": median_of("chalice", "rps"),
        "gateway_ratio": median_ratio("gateway"),
        "chalice_ratio": median_ratio("chalice"),
        "gateway_p99_ms": median_of("gateway", "p99_ms"),
        "bare_p99_ms": median_of("bare", "p99_ms"),
        "chalice_p99_ms": median_of("chalice", "p99_ms"),
        "floor_ratio": median_ratio("floor"),
        "floor_p99_ms": median_of("floor", "p99_ms"),
        "gateway_p99_rounds_ms": [round(r.p99_ms, 2) for r in runs.get("gateway", [])],
        "floor_p99_rounds_ms": [round(r.p99_ms, 2) for r in runs.get("floor", [])],
        "gateway_cpu_ms_per_request": median_of("gateway", "cpu_ms_per_request"),
        "bare_cpu_ms_per_request": median_of("bare", "cpu_ms_per_request"),
        "chalice_cpu_ms_per_request": median_of("chalice", "cpu_ms_per_request"),
        "floor_cpu_ms_per_request": median_of("floor", "cpu_ms_per_request"),
        **(
            {
                "gw_nologs_ratio": median_ratio("gw-nologs"),
                "gw_nologs_p99_ms": median_of("gw-nologs", "p99_ms"),
                "gw_nologs_cpu_ms_per_request": median_of("gw-nologs", "cpu_ms_per_request"),
            }
            if "gw-nologs" in runs
            else {}
        ),
        "connections": args.connections,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "new_connection_per_request": all(
            r.connections is not None and r.connections >= 0.95 * r.requests for rs in runs.values() for r in rs
        ),
        "gateway_workers_started_while_measuring": notes.get("workers_started"),
        "gateway_processes_started_while_measuring": notes.get("processes_started"),
        "gateway_new_descendant_processes": notes.get("new_descendants"),
        "gateway_processes": notes.get("gateway_processes"),
        "gateway_cloudwatch": not args.no_cloudwatch,
        "after_apply_max_ms": max((row["max_ms"] for row in releases), default=None),
        "after_apply_cold_starts": sum(row["cold_starts"] for row in releases) if releases else None,
        "after_apply_warm_everywhere_ms": [row["warm_everywhere_after_ms"] for row in releases],
        "immediately_after_mark_changed_ms": (after_apply or {}).get("immediately_after_mark_changed_ms"),
        **{f"machine_{k}": v for k, v in notes["load"].items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
