"""The example functions: called directly (Python) and through `node -e` (Node.js)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"

SUMMARY_KEYS = {
    "function_name",
    "function_version",
    "memory_limit_in_mb",
    "aws_request_id",
    "remaining_time_in_millis",
    "log_group_name",
    "invoked_function_arn",
}


def passthrough_event(stage: str, body: Any = None) -> dict[str, Any]:
    """What API Gateway's method-request passthrough template hands the function."""
    return {
        "body-json": body if body is not None else {"hello": "world"},
        "params": {
            "path": {},
            "querystring": {"deptno-param": "10"},
            "header": {"Authorization": "Bearer x"},
        },
        "stage-variables": {"env": stage},
        "context": {
            "account-id": "123456789012",
            "api-id": "abc123",
            "http-method": "POST",
            "stage": stage,
            "request-id": "req-1",
            "resource-path": "/",
        },
    }


@pytest.fixture(scope="module")
def loopback() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "loopback_handler", FUNCTIONS / "loopback" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="orch-loopback-dev",
        function_version="3",
        memory_limit_in_mb="128",
        aws_request_id="11111111-2222-3333-4444-555555555555",
        log_group_name="/aws/lambda/orch-loopback-dev",
        invoked_function_arn="arn:aws:lambda:ap-northeast-2:123456789012:function:orch-loopback-dev:dev",
        get_remaining_time_in_millis=lambda: 9000,
    )


# --------------------------------------------------------------------------- Python


def test_python_dev_answers_with_detail(
    loopback: ModuleType,
    context: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    event = passthrough_event("dev")
    answer = loopback.handler(event, context)
    assert answer["stage"] == "dev"
    assert answer["event"] == event
    assert set(answer["context"]) == SUMMARY_KEYS
    assert answer["context"]["function_name"] == "orch-loopback-dev"
    assert answer["context"]["remaining_time_in_millis"] == 9000
    assert answer["detail"]["log_level"] == "debug"
    assert answer["detail"]["stage_variables"] == {"env": "dev"}
    assert answer["detail"]["python_version"].count(".") == 2
    json.dumps(answer)  # Lambda must be able to serialize it

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["stage"] == "dev"


def test_python_prod_answers_with_a_smaller_body(
    loopback: ModuleType, context: SimpleNamespace
) -> None:
    event = passthrough_event("prod")
    answer = loopback.handler(event, context)
    assert answer["stage"] == "prod"
    assert "detail" not in answer
    assert answer["event"] == {"body-json": event["body-json"], "params": event["params"]}
    assert set(answer["context"]) == {"function_name", "function_version", "aws_request_id"}
    assert len(json.dumps(answer)) < len(
        json.dumps(loopback.handler(event | {"context": {}}, context))
    )


def test_python_direct_invoke_without_api_context(
    loopback: ModuleType, context: SimpleNamespace
) -> None:
    answer = loopback.handler({"key": "value"}, context)
    assert answer["stage"] is None
    assert answer["event"] == {"key": "value"}
    assert set(answer["context"]) == SUMMARY_KEYS
    assert "detail" not in answer
    # no context object at all (e.g. a local call) and a non-dict event
    answer = loopback.handler("plain", None)
    assert answer["event"] == {"value": "plain"}
    assert answer["context"]["aws_request_id"] is None


@pytest.mark.parametrize(
    ("fail", "prefix", "error_type"),
    [
        ("bad-request", "[BadRequest]", "BadRequest"),
        ("internal", "[InternalServerError]", "InternalServerError"),
    ],
)
def test_python_errors_carry_the_mapping_prefix(
    loopback: ModuleType, context: SimpleNamespace, fail: str, prefix: str, error_type: str
) -> None:
    with pytest.raises(Exception) as err:  # noqa: B017 - the type is checked below
        loopback.handler(passthrough_event("dev", {"fail": fail}), context)
    assert type(err.value).__name__ == error_type
    assert str(err.value).startswith(prefix)


# --------------------------------------------------------------------------- Node.js

NODE_RUNNER = r"""
const fn = require(process.argv[1]);
const input = JSON.parse(process.argv[2]);
const context = {
  functionName: 'orch-loopback-dev', functionVersion: '3', memoryLimitInMB: '128',
  awsRequestId: 'req-node', logGroupName: '/aws/lambda/orch-loopback-dev',
  invokedFunctionArn: 'arn:aws:lambda:ap-northeast-2:123456789012:function:orch-loopback-dev:dev',
  getRemainingTimeInMillis: () => 9000,
};
fn.handler(input, input.__noContext ? undefined : context, (err, result) => {
  process.stdout.write('\nRESULT ' + JSON.stringify(err ? {error: err.message} : {result}) + '\n');
});
"""


def run_node(event: Any, env: dict[str, str] | None = None) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    proc = subprocess.run(
        [node, "-e", NODE_RUNNER, str(FUNCTIONS / "loopback-node" / "index.js"), json.dumps(event)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, proc.stdout
    logs = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(logs) == 1, proc.stdout
    return json.loads(results[0].removeprefix("RESULT "))


def test_node_dev_answers_with_detail() -> None:
    event = passthrough_event("dev")
    out = run_node(event, {"LOG_LEVEL": "debug"})["result"]
    assert out["stage"] == "dev"
    assert out["event"] == event
    assert set(out["context"]) == SUMMARY_KEYS
    assert out["context"]["memory_limit_in_mb"] == 128
    assert out["context"]["remaining_time_in_millis"] == 9000
    assert out["detail"]["log_level"] == "debug"
    assert out["detail"]["stage_variables"] == {"env": "dev"}
    assert out["detail"]["node_version"].startswith("v")


def test_node_prod_answers_with_a_smaller_body() -> None:
    event = passthrough_event("prod")
    out = run_node(event)["result"]
    assert out["stage"] == "prod"
    assert "detail" not in out
    assert out["event"] == {"body-json": event["body-json"], "params": event["params"]}
    assert set(out["context"]) == {"function_name", "function_version", "aws_request_id"}


def test_node_direct_invoke_without_api_context() -> None:
    out = run_node({"key": "value", "__noContext": True})["result"]
    assert out["stage"] is None
    assert out["event"]["key"] == "value"
    assert out["context"]["aws_request_id"] is None


@pytest.mark.parametrize(
    ("fail", "prefix"), [("bad-request", "[BadRequest]"), ("internal", "[InternalServerError]")]
)
def test_node_errors_carry_the_mapping_prefix(fail: str, prefix: str) -> None:
    out = run_node(passthrough_event("prod", {"fail": fail}))
    assert out["error"].startswith(prefix)
