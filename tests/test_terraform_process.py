"""How orch runs a Terraform process so that none is lost with orch (issue 12, kind 1).

A fake terraform (tests/fakes/fake_terraform.py) stands in for the binary and a driver
(tests/fakes/run_driver.py) for orch: what is tested is orch.terraform.run_process itself,
with real processes, real signals and `kill -9`. The same with the real terraform binary
and provider runs in bench/faults.py and tests/integration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orch import tfruns

FAKES = Path(__file__).resolve().parent / "fakes"
FAKE_TF = FAKES / "fake_terraform.py"


class Run:
    """The driver (orch's stand-in) running the fake terraform in `workdir`."""

    def __init__(self, tmp_path: Path, *, child: bool = False, signal_at_start: str | None = None) -> None:
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.gate = tmp_path / "gate"
        os.mkfifo(self.gate)
        self.done = tmp_path / "done"
        self.child_pid_file = tmp_path / "child"
        env = {**os.environ, "FAKE_TF_GATE": str(self.gate), "FAKE_TF_DONE": str(self.done)}
        if child:
            env["FAKE_TF_CHILD"] = str(self.child_pid_file)
        if signal_at_start:
            env["DRIVER_SIGNAL_AT_START"] = signal_at_start
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKES / "run_driver.py"), str(self.workdir), str(FAKE_TF), "apply"],
            stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
        )
        self.lines: list[str] = []

    def read_until(self, text: str) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} never came: {self.lines}")

    def open_gate(self) -> None:
        with open(self.gate, "w") as gate:
            gate.write("go\n")

    def record(self) -> tfruns.RunRecord:
        found = tfruns.records(self.workdir)
        assert len(found) == 1, found
        return found[0]

    def terraform(self) -> psutil.Process:
        return psutil.Process(self.record().pid)

    def finish(self) -> int:
        assert self.proc.stdout is not None
        self.lines += list(self.proc.stdout)  # through the same buffer as read_until
        return self.proc.wait(timeout=30)


@pytest.fixture(autouse=True)
def _no_fake_terraform_outlives_its_test(tmp_path: Path) -> Iterator[None]:
    """A test that fails before opening the gate would leave its fake Terraform (and the
    child it may have started) waiting on the FIFO for good: end whatever this test started."""
    yield
    for proc in psutil.process_iter(["cmdline"]):
        try:
            started_here = str(FAKE_TF) in (proc.info["cmdline"] or []) and \
                proc.environ().get("FAKE_TF_GATE", "").startswith(str(tmp_path))
            if started_here:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def test_lines_arrive_in_order_and_a_finished_run_leaves_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.read_until("OUT started")
    assert run.record().verb == "apply" and run.record().alive
    run.open_gate()
    assert run.finish() == 0
    # Each stream keeps its order; between stdout and stderr there is no order to keep
    # (Terraform writes them to two files, as it would to two pipes).
    assert [line for line in run.lines if line.startswith("OUT ")] == [
        "OUT started\n", "OUT finished\n", "OUT partial line without newline\n",
    ]
    assert [line for line in run.lines if line.startswith("ERR ")] == ["ERR note\n"]
    assert list((run.workdir / tfruns.RUNS_DIR).iterdir()) == []  # no record, no log


def test_kill_9_of_orch_lets_terraform_finish_and_the_next_run_knows(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.read_until("OUT started")
    terraform = run.terraform()
    run.proc.kill()
    run.proc.wait(timeout=10)
    run.open_gate()  # Terraform writes after orch is gone: a pipe would have killed it here
    terraform.wait(timeout=10)
    assert run.done.read_text() == "0"
    record = run.record()
    assert record.exit_code is None and not record.alive
    assert "finished" in record.stdout_path(run.workdir).read_text()
    left = tfruns.leftovers(run.workdir)
    assert left.unfinished == (record,) and left.running == () and left.stray == ()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_orch_is_passed_on_as_sigint_and_orch_says_so(tmp_path: Path, sig: int, code: int) -> None:
    run = Run(tmp_path)
    run.read_until("OUT started")  # orch forwards signals from before Terraform started
    run.proc.send_signal(sig)
    run.read_until("OUT stopping gracefully")  # Terraform got SIGINT, its graceful stop
    run.open_gate()  # the operation in flight completes
    assert run.finish() == code
    last = run.lines[-1]
    assert last.startswith(f"INTERRUPTED {signal.Signals(sig).name} during `terraform apply`"), run.lines
    assert "stopped gracefully (exit 1)" in last
    assert run.done.read_text() == "1"
    record = run.record()  # a state-changing run that did not succeed: the next run checks
    assert record.exit_code == 1 and tfruns.leftovers(run.workdir).unfinished == (record,)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_as_terraform_starts_is_passed_on_too(tmp_path: Path, sig: int, code: int) -> None:
    """The signal comes after Terraform started and before orch recorded the run: orch
    neither dies of it (leaving Terraform unwatched) nor drops it."""
    run = Run(tmp_path, signal_at_start=signal.Signals(sig).name)
    run.read_until("OUT stopping gracefully")  # passed on as SIGINT once Terraform was recorded
    run.open_gate()
    assert run.finish() == code, run.lines
    assert run.lines[-1].startswith(f"INTERRUPTED {signal.Signals(sig).name} during `terraform apply`"), run.lines
    assert "stopped gracefully (exit 1)" in run.lines[-1]
    assert run.done.read_text() == "1"


def test_what_a_killed_terraform_leaves_running_is_found_and_ended(tmp_path: Path) -> None:
    run = Run(tmp_path, child=True)
    run.read_until("OUT started")
    terraform = run.terraform()
    child = psutil.Process(int(run.child_pid_file.read_text()))
    run.proc.kill()
    terraform.kill()  # the whole tree but the provider, as a CI runner might
    run.proc.wait(timeout=10)
    terraform.wait(timeout=10)
    assert child.is_running()
    left = tfruns.leftovers(run.workdir)
    assert [r.pid for r in left.stray] == [terraform.pid]
    assert tfruns.end_leftovers(left.stray[0]) == [child.pid]
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert tfruns.leftovers(run.workdir).stray == ()


def test_records_are_json_a_person_can_read(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.read_until("OUT started")
    data = json.loads(run.record().path(run.workdir).read_text())
    assert {"verb", "pid", "created", "started_at", "orch_pid", "exit_code"} <= set(data)
    run.open_gate()
    assert run.finish() == 0
