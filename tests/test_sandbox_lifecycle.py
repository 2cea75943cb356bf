"""No sandbox daemon outlives what it belongs to: a deleted project folder, an interrupted
test run. Each test starts a real sandbox daemon (moto server + local gateway), no Terraform."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, make_project, orch, sandbox_daemons
from orch import sandbox as sandbox_mod

pytestmark = pytest.mark.daemon


def wait_gone(pid: int, timeout: float) -> bool:
    return sandbox_mod._wait_exit(pid, timeout)


def test_a_daemon_whose_project_folder_is_deleted_stops_itself(tmp_path: Path) -> None:
    project = make_project(tmp_path / "doomed")
    assert orch("sandbox", "start", cwd=project).code == 0
    pid = sandbox_mod.read_state(project).pid
    shutil.rmtree(project)
    assert wait_gone(pid, 15), "the daemon kept running after its project folder was deleted"


INNER = '''
import threading
from pathlib import Path

from helpers import make_project, orch


def test_hangs_with_a_sandbox(tmp_path):
    project = make_project(tmp_path / "proj")
    assert orch("sandbox", "start", cwd=project).code == 0
    Path({marker!r}).write_text(str(project))
    threading.Event().wait(120)  # interrupted long before this
'''


@pytest.mark.parametrize("workers", [[], ["-n", "1", "--dist", "loadfile"]], ids=["serial", "xdist"])
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_test_run_leaves_no_sandbox(tmp_path: Path, how: signal.Signals, workers: list[str]) -> None:
    """Also under pytest-xdist (the README's test command runs two workers): the signal goes
    to the controlling pytest alone, and the test's daemon runs under a worker's basetemp."""
    marker = tmp_path / "started"
    os.mkfifo(marker)
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(INNER.format(marker=str(marker))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src")])}
    inner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", *workers,
         f"--basetemp={tmp_path / 'inner-tmp'}", "--rootdir", str(tmp_path), str(test_file)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # the inner test writes its project folder into a FIFO: block on it, bounded
        fd = os.open(marker, os.O_RDONLY | os.O_NONBLOCK)
        try:
            ready, _, _ = select.select([fd], [], [], 90)
            text = os.read(fd, 4096).decode() if ready else ""
        finally:
            os.close(fd)
        assert text, "the inner test never started its sandbox"
        project = Path(text)
        if workers:  # the test ran in a worker (its basetemp: inner-tmp/popen-gw0/...)
            assert any(part.startswith("popen-gw") for part in project.parts), project
        daemons = [pid for pid, folder in sandbox_daemons().items() if folder == project]
        assert daemons, "no daemon found for the inner test's project"
        inner.send_signal(how)
        out, _ = inner.communicate(timeout=60)
    finally:
        if inner.poll() is None:
            inner.kill()
    assert all(wait_gone(pid, 10) for pid in daemons), f"a sandbox outlived the interrupted run:\n{out}"


def test_hot_reload_is_on_unless_turned_off_and_a_running_sandbox_says_which(tmp_path: Path) -> None:
    import json

    project = make_project(tmp_path / "quiet")
    try:
        assert orch("sandbox", "start", cwd=project, env={"ORCH_RELOAD": "0"}).code == 0
        status = json.loads(orch("sandbox", "status", "--json", cwd=project).stdout)
        assert status["running"] is True and status["reload"] is False
        again = orch("sandbox", "start", "--reload", cwd=project)
        assert again.code == 0 and "already runs with hot reload off" in again.stderr
        assert "--no-reload" in (Path("/proc") / str(status["pid"]) / "cmdline").read_bytes().decode(errors="replace")
    finally:
        orch("sandbox", "stop", cwd=project)


def _emulator_of(daemon: int) -> int:
    """The daemon's emulator process (`python -m orch.sandboxd --emulator`)."""
    import psutil

    found = [p.pid for p in psutil.Process(daemon).children() if "--emulator" in p.cmdline()]
    assert len(found) == 1, f"daemon {daemon} should have one emulator child, has {found}"
    return found[0]


def test_the_emulator_process_lives_and_dies_with_its_daemon(tmp_path: Path) -> None:
    """The emulator runs in a child of the daemon (not in the process that serves invoke
    URLs); neither outlives the other, however one of them ends."""
    project = make_project(tmp_path / "pair")
    try:
        assert orch("sandbox", "start", cwd=project).code == 0
        daemon = sandbox_mod.read_state(project).pid
        emulator = _emulator_of(daemon)
        assert orch("sandbox", "stop", cwd=project).code == 0
        assert wait_gone(daemon, 15) and wait_gone(emulator, 10), "`orch sandbox stop` left a process"

        assert orch("sandbox", "start", cwd=project).code == 0
        daemon = sandbox_mod.read_state(project).pid
        emulator = _emulator_of(daemon)
        os.kill(daemon, signal.SIGKILL)  # no cleanup at all: the emulator's stdin ends
        assert wait_gone(emulator, 10), "the emulator outlived a killed daemon"

        assert orch("sandbox", "start", cwd=project).code == 0
        daemon = sandbox_mod.read_state(project).pid
        os.kill(_emulator_of(daemon), signal.SIGKILL)  # every resource is gone with it
        assert wait_gone(daemon, 15), "the daemon kept serving without its emulator"
        assert orch("sandbox", "start", cwd=project).code == 0  # the next command gets a fresh one
        assert sandbox_mod.read_state(project).pid != daemon
    finally:
        orch("sandbox", "stop", cwd=project)
