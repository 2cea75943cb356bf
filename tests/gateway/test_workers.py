"""The local gateway's handler workers: warm reuse, Lambda context/env, errors and limits."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from orch.gateway.workers import FunctionSpec, InvokeResult, LogBatch, WorkerPool

ARN = "arn:aws:lambda:ap-northeast-2:123456789012:function:{name}"

PY_HANDLER = """
import json, os, sys, time

def echo(event, context):
    return {"event": event, "pid": os.getpid()}

def ctx(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity": context.identity.cognito_identity_id,
        "client_context": context.client_context,
    }

ENV_KEYS = [
    "GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_TASK_ROOT",
    "_HANDLER", "TZ",
]

def env(event, context):
    return {k: os.environ.get(k) for k in ENV_KEYS} | {"cwd": os.getcwd(), "path0": sys.path[0]}

class Oops(Exception):
    pass

def fail(event, context):
    raise Oops("it broke")

def stdlib_fail(event, context):
    return json.loads("{not json")

def sleepy(event, context):
    time.sleep(event.get("sleep", 5))
    return "woke"

def die(event, context):
    os._exit(3)

def leave(event, context):
    sys.exit(2)

def hog(event, context):
    block = bytearray(event["mb"] * 1024 * 1024)
    return len(block)

def toucher(event, context):
    block = b"x" * (event["mb"] * 1024 * 1024)
    return len(block)

def chatty(event, context):
    print("printed", json.dumps(event))
    print("to stderr", file=sys.stderr)
    sys.stdout.write("no newline at the end")
    return {"ok": True}

def unserialisable(event, context):
    return {"x": object()}

def big(event, context):
    return "x" * (3 * 1024 * 1024)
"""

NODE_HANDLER = """
exports.callback = function (event, context, callback) {
  console.log('callback handler', JSON.stringify(event));
  callback(null, {event: event, pid: process.pid, fn: context.functionName,
    mem: context.memoryLimitInMB, id: context.awsRequestId,
    arn: context.invokedFunctionArn, group: context.logGroupName,
    remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop});
};
exports.asyncEcho = async (event, context) => {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return {async: true, event: event, region: process.env.AWS_REGION};
};
exports.fail = async () => { throw new TypeError('bad type'); };
exports.callbackFail = (event, context, callback) => callback(new Error('cb failed'));
exports.hog = async () => { const a = []; for (;;) a.push(new Array(100000).fill(1.5)); };
exports.sleepy = (event, context, callback) => setTimeout(() => callback(null, 'late'), 5000);
"""

NODE_ESM = """
export const handler = async (event) => ({esm: true, event});
"""


def make_spec(
    code_dir: Path, handler: str, *, runtime: str = "python3.11", **overrides: object
) -> FunctionSpec:
    values: dict = {
        "name": "fn",
        "version": "$LATEST",
        "code_dir": code_dir,
        "handler": handler,
        "runtime": runtime,
        "timeout": 5,
        "memory_size": 128,
        "environment": {"GREETING": "hi"},
        "arn": ARN.format(name="fn"),
    }
    values.update(overrides)
    return FunctionSpec(**values)


@pytest.fixture(scope="module")
def py_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = tmp_path_factory.mktemp("pycode")
    (code / "handler.py").write_text(textwrap.dedent(PY_HANDLER))
    pkg = code / "pkg" / "sub"
    pkg.mkdir(parents=True)
    (code / "pkg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("def fn(event, context):\n    return {'nested': event}\n")
    (code / "broken.py").write_text("import does_not_exist_anywhere\n")
    return code


@pytest.fixture(scope="module")
def node_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = tmp_path_factory.mktemp("nodecode")
    (code / "index.js").write_text(NODE_HANDLER)
    (code / "esm.mjs").write_text(NODE_ESM)
    return code


@pytest.fixture
def pool():
    batches: list[LogBatch] = []
    with WorkerPool(max_workers_per_function=4, log_sink=batches.append) as p:
        p.batches = batches  # type: ignore[attr-defined]
        yield p


def body(result: InvokeResult) -> object:
    assert result.error is None, result.error
    assert result.payload is not None
    return json.loads(result.payload)


needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


# ---- python ------------------------------------------------------------------------------


def test_python_echo_and_warm_reuse(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.echo")
    first = pool.invoke(spec, b'{"a": 1}', "req-1")
    assert body(first)["event"] == {"a": 1}
    assert "Init Duration" in first.logs
    pids = set()
    for i in range(10):
        result = pool.invoke(spec, json.dumps({"i": i}).encode(), f"req-{i + 2}")
        assert body(result)["event"] == {"i": i}
        assert "Init Duration" not in result.logs
        pids.add(body(result)["pid"])
    assert pids == {body(first)["pid"]}
    assert pool.worker_pids("fn") == [body(first)["pid"]]


def test_python_context_fields(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.ctx", name="ctx-fn", arn=ARN.format(name="ctx-fn"))
    ctx = body(pool.invoke(spec, b"{}", "req-ctx"))
    assert ctx["function_name"] == "ctx-fn"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == ARN.format(name="ctx-fn")
    assert ctx["memory_limit_in_mb"] == "128"  # a str, as in awslambdaric
    assert ctx["aws_request_id"] == "req-ctx"
    assert ctx["log_group_name"] == "/aws/lambda/ctx-fn"
    assert "[$LATEST]" in ctx["log_stream_name"]
    assert 4000 < ctx["remaining"] <= 5000
    assert ctx["identity"] is None and ctx["client_context"] is None


def test_python_nested_handler_paths(pool: WorkerPool, py_code: Path) -> None:
    for handler in ("pkg/sub/mod.fn", "pkg.sub.mod.fn"):
        spec = make_spec(py_code, handler, name=f"nested-{handler[3]}")
        assert body(pool.invoke(spec, b"[1, 2]", "req")) == {"nested": [1, 2]}


def test_python_environment(pool: WorkerPool, py_code: Path) -> None:
    env = body(pool.invoke(make_spec(py_code, "handler.env"), b"{}", "req-env"))
    assert env["GREETING"] == "hi"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "ap-northeast-2"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["LAMBDA_TASK_ROOT"] == str(py_code.resolve()) == env["cwd"] == env["path0"]
    assert env["_HANDLER"] == "handler.env"
    assert env["TZ"] == ":UTC"


def test_python_exception_shape(pool: WorkerPool, py_code: Path) -> None:
    result = pool.invoke(make_spec(py_code, "handler.fail"), b"{}", "req-err")
    assert result.payload is None and not result.crashed and not result.timed_out
    assert result.error is not None
    assert result.error["errorType"] == "Oops"
    assert result.error["errorMessage"] == "it broke"
    assert result.error["requestId"] == "req-err"
    trace = result.error["stackTrace"]
    assert len(trace) == 1 and "in fail" in trace[0]
    # frames name the file as Lambda does, never a path of this machine
    assert trace[0].startswith('  File "/var/task/handler.py", line ')
    assert str(py_code) not in json.dumps(result.error)
    assert "[ERROR] Oops: it broke" in result.logs


def test_python_frames_outside_the_code_name_lambdas_folders(pool: WorkerPool, py_code: Path) -> None:
    result = pool.invoke(make_spec(py_code, "handler.stdlib_fail"), b"{}", "req-std")
    assert result.error is not None
    trace = "".join(result.error["stackTrace"])
    assert '"/var/task/handler.py"' in trace
    assert '"/var/lang/lib/python3.11/json/' in trace  # the standard library, as on Lambda
    assert str(py_code) not in trace and sys.prefix not in trace and sys.base_prefix not in trace


def test_python_runtime_errors(pool: WorkerPool, py_code: Path) -> None:
    missing = pool.invoke(make_spec(py_code, "broken.handler"), b"{}", "r1")
    assert missing.error is not None
    assert missing.error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'broken'" in missing.error["errorMessage"]
    no_fn = pool.invoke(make_spec(py_code, "handler.nope"), b"{}", "r2")
    assert no_fn.error is not None and no_fn.error["errorType"] == "Runtime.HandlerNotFound"
    marshal = pool.invoke(make_spec(py_code, "handler.unserialisable"), b"{}", "r3")
    assert marshal.error is not None and marshal.error["errorType"] == "Runtime.MarshalError"
    # the worker survives a marshal error
    spec = make_spec(py_code, "handler.unserialisable")
    assert pool.invoke(spec, b"{}", "r4").error["errorType"] == "Runtime.MarshalError"
    assert len(pool.worker_pids("fn")) == 1


def test_python_timeout_then_recovers(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.sleepy", timeout=1)
    assert pool.invoke(spec, b'{"sleep": 0}', "warm").payload == b'"woke"'
    started = time.monotonic()
    result = pool.invoke(spec, b'{"sleep": 5}', "slow")
    elapsed = time.monotonic() - started
    assert result.timed_out and result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result.error["errorMessage"]
    assert "Task timed out after 1.00 seconds" in result.logs
    assert 0.95 < elapsed < 4.0  # the 1 s timeout, plus killing and reaping on a busy machine; not the 5 s sleep
    assert pool.invoke(spec, b'{"sleep": 0}', "after").payload == b'"woke"'


def test_python_crash_is_isolated(pool: WorkerPool, py_code: Path) -> None:
    echo = make_spec(py_code, "handler.echo", name="crashy")
    pid = body(pool.invoke(echo, b"{}", "before"))["pid"]
    result = pool.invoke(dataclasses.replace(echo, handler="handler.die"), b"{}", "crash")
    assert result.crashed and result.error is not None
    assert result.error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in result.error["errorMessage"]
    left = pool.invoke(dataclasses.replace(echo, handler="handler.leave"), b"{}", "exit")
    assert left.crashed and "exit status 2" in left.error["errorMessage"]
    again = body(pool.invoke(echo, b'{"x": 1}', "after"))
    assert again["event"] == {"x": 1}
    assert again["pid"] != pid


def test_worker_that_died_while_idle_is_replaced(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.echo", name="killed")
    pid = body(pool.invoke(spec, b"{}", "first"))["pid"]
    exited = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([exited], [], [], 5)[0]
    finally:
        os.close(exited)
    result = pool.invoke(spec, b'{"after": 1}', "second")
    assert not result.crashed
    assert body(result)["event"] == {"after": 1} and body(result)["pid"] != pid


def test_python_memory_limit(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.hog", memory_size=128)
    assert body(pool.invoke(spec, b'{"mb": 16}', "small")) == 16 * 1024 * 1024
    result = pool.invoke(spec, b'{"mb": 256}', "huge")
    assert result.crashed and result.error is not None
    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert body(pool.invoke(spec, b'{"mb": 16}', "again")) == 16 * 1024 * 1024
    # under the hard limit, but the peak RSS is over memory_size: Lambda kills that too
    touch = pool.invoke(dataclasses.replace(spec, handler="handler.toucher"), b'{"mb": 130}', "rss")
    assert touch.crashed and touch.error is not None
    assert touch.error["errorType"] == "Runtime.OutOfMemory"
    assert "Error Type: Runtime.OutOfMemory" in touch.logs


def test_python_prints_go_to_logs_not_protocol(pool: WorkerPool, py_code: Path) -> None:
    spec = make_spec(py_code, "handler.chatty")
    result = pool.invoke(spec, b'{"k": "v"}', "req-chat")
    assert body(result) == {"ok": True}
    # print() lines reach the log as written, as on Lambda (python-logging in AWS's docs)
    assert '\nprinted {"k": "v"}\n' in result.logs
    assert "\nto stderr\n" in result.logs
    assert "\nno newline at the end\n" in result.logs
    assert result.logs.startswith("START RequestId: req-chat Version: $LATEST\n")
    assert "\nEND RequestId: req-chat\n" in result.logs
    report = result.logs.splitlines()[-1]
    assert report.startswith("REPORT RequestId: req-chat\tDuration: ")
    assert "Billed Duration" in report and "Memory Size: 128 MB" in report
    assert "Max Memory Used" in report
    batch = pool.batches[-1]
    assert batch.lines == result.logs.splitlines()
    assert batch.group == "/aws/lambda/" + spec.name
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", batch.stream)
    assert [ts for ts, _ in batch.events] == sorted(ts for ts, _ in batch.events)
    # a large result passes through the pipe intact
    big = pool.invoke(dataclasses.replace(spec, handler="handler.big"), b"{}", "big")
    assert big.payload is not None and len(big.payload) == 3 * 1024 * 1024 + 2
    # and so does a large event (more than a pipe buffer)
    event = json.dumps({"blob": "y" * (5 * 1024 * 1024)}).encode()
    echoed = pool.invoke(dataclasses.replace(spec, handler="handler.echo"), event, "big-in")
    assert body(echoed)["event"] == json.loads(event)


def test_python_concurrency(py_code: Path) -> None:
    with WorkerPool(max_workers_per_function=4) as pool:
        spec = make_spec(py_code, "handler.echo", name="busy")
        errors: list[str] = []
        pids: set[int] = set()

        def work(t: int) -> None:
            for i in range(20):
                event = {"t": t, "i": i}
                result = pool.invoke(spec, json.dumps(event).encode(), f"{t}-{i}")
                answer = json.loads(result.payload or b"null")
                if not answer or answer["event"] != event:
                    errors.append(f"{event} -> {result}")
                else:
                    pids.add(answer["pid"])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert 1 <= len(pids) <= 4
        assert set(pool.worker_pids("busy")) == pids


def test_idle_workers_are_reaped(py_code: Path) -> None:
    with WorkerPool(idle_timeout=0.2) as pool:
        spec = make_spec(py_code, "handler.echo", name="reaped")
        pid = body(pool.invoke(spec, b"{}", "r"))["pid"]
        exited = os.pidfd_open(pid)
        try:
            assert select.select([exited], [], [], 5)[0], "the idle worker was not reaped"
        finally:
            os.close(exited)
        assert pool.worker_pids("reaped") == []
        assert body(pool.invoke(spec, b"{}", "r2"))["pid"] != pid


def test_closed_pool_kills_workers(py_code: Path) -> None:
    pool = WorkerPool()
    pid = body(pool.invoke(make_spec(py_code, "handler.echo"), b"{}", "r"))["pid"]
    pool.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---- node --------------------------------------------------------------------------------


@needs_node
def test_node_callback_handler(pool: WorkerPool, node_code: Path) -> None:
    spec = make_spec(node_code, "index.callback", runtime="nodejs20.x", name="node-cb")
    first = body(pool.invoke(spec, b'{"a": 1}', "n-1"))
    assert first["event"] == {"a": 1}
    assert first["fn"] == "node-cb" and first["mem"] == "128" and first["id"] == "n-1"
    assert first["arn"] == ARN.format(name="fn") and first["group"] == "/aws/lambda/node-cb"
    assert 4000 < first["remaining"] <= 5000 and first["waits"] is True
    result = pool.invoke(spec, b'{"a": 2}', "n-2")
    assert body(result)["pid"] == first["pid"]
    assert '\tn-2\tINFO\tcallback handler {"a":2}' in result.logs


@needs_node
def test_node_async_and_esm_handlers(pool: WorkerPool, node_code: Path) -> None:
    spec = make_spec(node_code, "index.asyncEcho", runtime="nodejs20.x", name="node-async")
    assert body(pool.invoke(spec, b"[1]", "a-1")) == {
        "async": True,
        "event": [1],
        "region": "ap-northeast-2",
    }
    esm = make_spec(node_code, "esm.handler", runtime="nodejs20.x", name="node-esm")
    assert body(pool.invoke(esm, b'{"m": 1}', "e-1")) == {"esm": True, "event": {"m": 1}}


@needs_node
def test_node_errors(pool: WorkerPool, node_code: Path) -> None:
    spec = make_spec(node_code, "index.fail", runtime="nodejs20.x", name="node-err")
    result = pool.invoke(spec, b"{}", "e-1")
    assert result.error is not None and not result.crashed
    assert result.error["errorType"] == "TypeError"
    assert result.error["errorMessage"] == "bad type"
    assert result.error["trace"][0] == "TypeError: bad type"
    # frames name /var/task and /var/runtime as on Lambda, never a path of this machine
    assert "/var/task/index.js:" in result.error["trace"][1]
    assert str(node_code) not in json.dumps(result.error)
    assert "node_bootstrap" not in json.dumps(result.error)
    cb = pool.invoke(dataclasses.replace(spec, handler="index.callbackFail"), b"{}", "e-2")
    assert cb.error is not None and cb.error["errorMessage"] == "cb failed"
    missing = pool.invoke(dataclasses.replace(spec, handler="nope.handler"), b"{}", "e-3")
    assert missing.error is not None
    assert missing.error["errorType"] == "Runtime.ImportModuleError"
    assert str(node_code) not in json.dumps(missing.error)


@needs_node
def test_node_timeout_then_recovers(pool: WorkerPool, node_code: Path) -> None:
    spec = make_spec(node_code, "index.sleepy", runtime="nodejs20.x", name="node-slow", timeout=1)
    assert pool.prewarm(spec)  # the timeout counts from the invocation, not from node's start-up
    started = time.monotonic()
    result = pool.invoke(spec, b"{}", "t-1")
    elapsed = time.monotonic() - started
    assert result.timed_out and 0.95 < elapsed < 4.0, elapsed  # the 1 s timeout, not the handler's sleep
    fast = dataclasses.replace(spec, handler="index.asyncEcho")
    assert body(pool.invoke(fast, b"{}", "t-2"))["async"] is True


@needs_node
def test_node_memory_limit(pool: WorkerPool, node_code: Path) -> None:
    spec = make_spec(node_code, "index.hog", runtime="nodejs20.x", name="node-hog")
    result = pool.invoke(spec, b"{}", "m-1")
    assert result.crashed and result.error is not None
    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert "Error Type: Runtime.OutOfMemory" in result.logs.splitlines()[-1]
    fast = dataclasses.replace(spec, handler="index.asyncEcho")
    assert body(pool.invoke(fast, b"{}", "m-2"))["async"] is True
