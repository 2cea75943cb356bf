"""Fixtures for the local gateway: a real moto server, a project with a package store, and
helpers that deploy a Lambda function whose CodeSha256 resolves to a package there."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

ECHO_HANDLER = "def handler(event, context):\n    return event\n"
PROXY_ECHO_HANDLER = (
    "import json\n\n\ndef handler(event, context):\n"
    "    return {'statusCode': 200, 'body': json.dumps(event), 'isBase64Encoded': False}\n"
)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Aws:
    endpoint: str
    apigw: Any
    lambda_: Any
    iam: Any
    sqs: Any
    role_arn: str


@pytest.fixture(scope="session")
def aws(moto_endpoint: str) -> Aws:
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    clients = {
        name: session.client(name, endpoint_url=moto_endpoint)
        for name in ("apigateway", "lambda", "iam", "sqs")
    }
    role = clients["iam"].create_role(
        RoleName="orch-gateway-tests",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    return Aws(
        moto_endpoint,
        clients["apigateway"],
        clients["lambda"],
        clients["iam"],
        clients["sqs"],
        role,
    )


@pytest.fixture(scope="session")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / ".orch" / "packages").mkdir(parents=True)
    return root


def build_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


_counter = iter(range(1_000_000))
_counter_lock = threading.Lock()


def deploy_function(
    aws: Aws, project_dir: Path, name: str, files: dict[str, str], *, store: bool = True, timeout: int = 10
) -> str:
    """Create a python function from ``files`` in moto (published, alias 'live') and keep its
    zip in the project's package store (unless ``store`` is false); returns the alias ARN."""
    data = build_zip(files)
    if store:
        digest = hashlib.sha256(data).hexdigest()
        (project_dir / ".orch" / "packages" / f"{digest}.zip").write_bytes(data)
    created = aws.lambda_.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=aws.role_arn,
        Handler="handler.handler",
        Code={"ZipFile": data},
        Timeout=timeout,
        Publish=True,
    )
    alias = aws.lambda_.create_alias(FunctionName=name, Name="live", FunctionVersion=created["Version"])
    return alias["AliasArn"]


@pytest.fixture(scope="session")
def make_function(aws: Aws, project_dir: Path) -> Callable[..., str]:
    """Deploy a python handler (published, alias 'live'); returns the alias ARN."""

    def make(source: str, *, name: str | None = None, store: bool = True, timeout: int = 10):
        with _counter_lock:
            name = name or f"fn-{next(_counter)}"
        return deploy_function(aws, project_dir, name, {"handler.py": source}, store=store, timeout=timeout)

    return make


def lambda_uri(function_arn: str) -> str:
    return (
        f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )


@pytest.fixture(scope="session")
def worker_pool() -> Iterator[Any]:
    """The real warm-worker pool when it exists, else an in-process stand-in."""
    try:
        from orch.gateway.workers import WorkerPool
    except ImportError:
        pool: Any = InProcessPool()
    else:
        pool = WorkerPool(max_workers_per_function=2)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def gateway_server(aws: Aws, project_dir: Path, worker_pool: Any) -> Iterator[Any]:
    from orch.gateway.app import build_server

    lines: list[str] = []
    server = build_server(
        "127.0.0.1",
        0,
        aws_endpoint=aws.endpoint,
        region=REGION,
        project_dir=project_dir,
        worker_pool=worker_pool,
        log=lines.append,
        refresh_interval=0.0,
    )
    server.log_lines = lines  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def invoke_url(server: Any, rest_api_id: str, stage: str) -> str:
    return f"{server.url}/restapis/{rest_api_id}/{stage}/_user_request_"


class InProcessPool:
    """Runs ``handler.handler`` from the unpacked code in this process (tests only)."""

    def invoke(self, spec: Any, event: bytes, request_id: str) -> Any:
        import importlib.util
        import traceback

        from orch.gateway.workers import InvokeResult

        module_spec = importlib.util.spec_from_file_location(
            f"h_{spec.code_dir.name}", spec.code_dir / "handler.py"
        )
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        try:
            result = module.handler(json.loads(event or b"{}"), None)
        except Exception as exc:
            return InvokeResult(
                payload=None,
                error={
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                },
            )
        return InvokeResult(payload=json.dumps(result).encode(), error=None)

    def close(self) -> None:
        pass


@pytest.fixture
def gw_project(tmp_path: Path) -> Path:
    """A project folder of its own (package store, generation file) for one test."""
    (tmp_path / ".orch" / "packages").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def serve(aws: Aws, gw_project: Path) -> Iterator[Callable[..., Any]]:
    """``serve(**build_server options)``: a gateway of the test's own on ``gw_project``,
    serving until the test ends (then stopped with its workers and helpers)."""
    from orch.gateway.app import build_server

    started: list[tuple[Any, threading.Thread]] = []

    def start(**options: Any) -> Any:
        options.setdefault("log", lambda _line: None)
        server = build_server(
            "127.0.0.1", 0, aws_endpoint=aws.endpoint, region=REGION, project_dir=gw_project, **options
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        assert server.wait_ready(120)
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()
