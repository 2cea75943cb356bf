"""Fixtures shared by every test layer, the test tiers, and sandbox clean-up on any exit."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import make_project, stop_sandboxes_under

TOOL_MARKERS = ("terraform", "vendoring", "daemon", "deploy", "wheel", "browser")


def _xdist_worker(config: pytest.Config) -> bool:
    """This process is a pytest-xdist worker (not the controlling pytest, not a plain run).
    Asked of the config, not of PYTEST_XDIST_WORKER, which a pytest started by a test inherits."""
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test that runs an external tool is also `integration`, so `-m "not integration"`
    (the fast tier) never runs one."""
    for item in items:
        if any(item.get_closest_marker(name) for name in TOOL_MARKERS):
            item.add_marker(pytest.mark.integration)


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI job cancelled, `kill`) becomes KeyboardInterrupt, so fixture teardown and
    # pytest_sessionfinish run and stop every sandbox the run started.
    if not _xdist_worker(config):
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Whatever happened (failure, Ctrl-C, SIGTERM), stop every sandbox daemon whose project
    folder lies under this run's temporary folders."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        try:
            stop_sandboxes_under(factory.getbasetemp())
        except OSError:
            pass


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway project: this repo's stages/ and functions/, its modules/ linked."""
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An in-process moto server (real AWS API shapes over HTTP) for one test module, empty
    when the module starts: moto keeps its resources in process-wide state, so without the
    reset a module would see what an earlier module's server created."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    try:
        yield endpoint
    finally:
        server.stop()
