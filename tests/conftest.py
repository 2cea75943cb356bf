"""Fixtures shared by every test layer, the test tiers, and sandbox clean-up on any exit."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import make_project, stop_sandboxes_under

TOOL_MARKERS = ("terraform", "vendoring", "daemon", "deploy", "wheel", "browser")
WHOLE_MODULE_DISTS = ("loadfile", "loadscope")  # xdist modes that keep a module on one worker


def _xdist_worker(config: pytest.Config) -> bool:
    """This process is a pytest-xdist worker (not the controlling pytest, not a plain run).
    Asked of the config, not of PYTEST_XDIST_WORKER, which a pytest started by a test inherits."""
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test that runs an external tool is also `integration`, so `-m "not integration"`
    (the fast tier) never runs one.

    Under pytest-xdist (`-n 2 --dist loadfile --no-loadscope-reorder`, the README's command)
    the `deploy` modules come first: each module runs whole on one worker, and the first
    worker free starts the longest one (tests/integration/test_sandbox_deploy.py, most of the
    suite's time) at once while the other worker runs the rest. Without xdist the order is
    pytest's own. Every worker sorts alike (a stable sort), so their collections agree.
    (Not `--dist loadgroup` with xdist_group marks: under pytest 9.2 it silently stops
    grouping, pytest-xdist issue 1386; pytest_configure refuses the modes that split a module.)"""
    for item in items:
        if any(item.get_closest_marker(name) for name in TOOL_MARKERS):
            item.add_marker(pytest.mark.integration)
    if _xdist_worker(config):
        items.sort(key=lambda item: item.get_closest_marker("deploy") is None)


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI job cancelled, `kill`) becomes KeyboardInterrupt, so fixture teardown and
    # pytest_sessionfinish run and stop every sandbox the run started.
    if not _xdist_worker(config):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        # The tests of a module may share state in order (test_sandbox_deploy.py: one
        # deployment), so xdist must keep each module on one worker.
        dist = config.getoption("dist", None)
        if config.getoption("numprocesses", None) and dist not in WHOLE_MODULE_DISTS:
            raise pytest.UsageError(
                f"pytest -n with --dist {dist} would split a module's tests across workers; the tests of "
                "tests/integration/test_sandbox_deploy.py share one deployment, in order. Run "
                "`pytest -n 2 --dist loadfile --no-loadscope-reorder` (the README's command)."
            )


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
