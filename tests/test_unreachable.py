"""Unreachable AWS (issue 12, kind 6): orch checks reachability and credentials within seconds
before Terraform starts (exit 5, naming the endpoint), and bounds the provider's retries.

Nothing here leaves the machine: every AWS endpoint points at a socket on 127.0.0.1 (closed,
silent, or answering as STS does), and instance metadata is disabled."""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Result, assert_clean_failure, fake_sts, free_port
from orch import aws as aws_mod
from orch.cli import main
from orch.config import load_stage
from orch.render import PROVIDER_MAX_RETRIES, PackageRef, Target, render


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Dummy credentials, no metadata service, no shared config: AWS only where a test points it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAORCHTESTEXAMPLE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "orch/test/secret/key/that/is/not/real0000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # closed: refused at once
    return monkeypatch


def plan(project: Path) -> tuple[Result, float]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    started = time.monotonic()
    try:
        code = main(["plan", "dev", "--project", str(project)])
    finally:
        sys.stdout, sys.stderr = old
    return Result(code, out.getvalue(), err.getvalue()), time.monotonic() - started


def test_a_refused_connection_stops_orch_at_once_naming_the_endpoint(project: Path, offline) -> None:
    import os

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    result, seconds = plan(project)
    assert_clean_failure(result, 5, f"cannot reach AWS at {endpoint}", "before Terraform started")
    assert seconds < 10
    assert not (project / ".orch" / "work").exists()  # no package, no render, no terraform


class Silent:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_an_endpoint_that_never_answers_is_given_up_on_in_bounded_time(project: Path, offline, silent) -> None:
    offline.setenv("AWS_ENDPOINT_URL", silent.url)
    offline.setattr(aws_mod, "CHECK_TIMEOUTS", {**aws_mod.CHECK_TIMEOUTS, "read_timeout": 1})
    result, seconds = plan(project)
    assert_clean_failure(result, 5, f"cannot reach AWS at {silent.url}", "ReadTimeoutError")
    assert seconds < 15  # two attempts of one second each, and orch's own start


def test_refused_credentials_are_exit_5_with_aws_words(project: Path, offline) -> None:
    with fake_sts(accept=False) as sts:
        offline.setenv("AWS_ENDPOINT_URL", sts)
        result, _ = plan(project)
    assert_clean_failure(result, 5, "refused the credentials: InvalidClientTokenId")
    assert "orch/test/secret/key" not in result.output


def test_no_credentials_at_all(project: Path, offline) -> None:
    offline.delenv("AWS_ACCESS_KEY_ID")
    offline.delenv("AWS_SECRET_ACCESS_KEY")
    result, seconds = plan(project)
    assert_clean_failure(result, 5, "no AWS credentials found", "--sandbox")
    assert seconds < 10


def test_the_providers_retries_are_bounded(project: Path) -> None:
    stage = load_stage(project, "dev")
    for target in (Target("aws"), Target("sandbox", "http://127.0.0.1:1")):
        main_tf = render(stage, target, PackageRef("x" * 43 + "="))["main.tf"]
        assert f"  max_retries = {PROVIDER_MAX_RETRIES}\n" in main_tf
    assert PROVIDER_MAX_RETRIES < 25  # the provider's own default
