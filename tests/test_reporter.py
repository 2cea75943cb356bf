"""Progress a person can follow (issue 11): the live status line on a terminal, plain lines
elsewhere, one step numbering from start to end, the closing summary."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from pathlib import Path

import pytest

from helpers import REPO
from orch.executor import Executor
from orch.reporter import Console, ConsoleReporter, LiveReporter, for_terminal
from orch.steps import DeployPlan, RemoveFile

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal (what rich and orch check)."""

    def isatty(self) -> bool:
        return True


def wait_until(condition, timeout: float = 10.0) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        pause.wait(0.02)
    raise AssertionError("condition not met in time")


def test_the_live_line_shows_the_running_step_and_its_time_under_terraforms_lines() -> None:
    err, out = Terminal(), Terminal()
    reporter = LiveReporter(Console(stdout=out, stderr=err))
    reporter.step_started(7, 9, "terraform apply (plan and apply in one run)")
    wait_until(lambda: "[7/9] terraform apply (plan and apply in one run)" in err.getvalue())
    assert HIDE_CURSOR in err.getvalue()  # rich's live display is running
    reporter.terraform("\x1b[1mPlan:\x1b[0m 1 to add, 0 to change, 0 to destroy.", False)
    reporter.note("wrote main.tf")
    reporter.step_finished(7, 9, "terraform apply (plan and apply in one run)", 12.34)
    reporter.summary("stage 'dev' deployed in 12.5 s (1 to add, 0 to change, 0 to destroy)")
    text = ANSI.sub("", err.getvalue())
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in text  # Terraform's line, its colour as rich styles
    # the live line; its refresh thread draws it when it gets a turn, so the seconds vary
    assert re.search(r"\[7/9\] terraform apply \(plan and apply in one run\)  \d+ s", text)
    assert "\u2713 [7/9] terraform apply (plan and apply in one run)  12.3 s" in text
    assert text.rstrip().endswith("orch: stage 'dev' deployed in 12.5 s (1 to add, 0 to change, 0 to destroy)")
    raw = err.getvalue()
    assert raw.rindex(SHOW_CURSOR) > raw.rindex(HIDE_CURSOR)  # the terminal is left as it was
    assert out.getvalue() == ""  # stdout is the same terminal: everything went above the live line


def test_a_failed_step_ends_the_live_line_before_the_error_is_printed() -> None:
    err = Terminal()
    reporter = LiveReporter(Console(stdout=Terminal(), stderr=err))
    reporter.step_started(2, 5, "check AWS credentials (ap-northeast-2)")
    wait_until(lambda: HIDE_CURSOR in err.getvalue())
    reporter.step_failed(2, 5, "check AWS credentials (ap-northeast-2)", 0.5)
    raw = err.getvalue()
    assert raw.rindex(SHOW_CURSOR) > raw.rindex(HIDE_CURSOR)
    assert "\u2717 [2/5] check AWS credentials (ap-northeast-2): failed after 0.5 s" in ANSI.sub("", raw)


def test_terraform_output_goes_to_stdout_when_stdout_is_not_the_terminal() -> None:
    err, out = Terminal(), io.StringIO()
    reporter = LiveReporter(Console(stdout=out, stderr=err))
    reporter.terraform("Plan: 1 to add", False)
    reporter.display("orch apply dev (sandbox) would run 3 steps:")
    assert out.getvalue() == "Plan: 1 to add\norch apply dev (sandbox) would run 3 steps:\n"


def test_the_cli_picks_the_live_display_only_for_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(for_terminal(Console(stdout=io.StringIO(), stderr=Terminal())), LiveReporter)
    assert isinstance(for_terminal(Console(stdout=Terminal(), stderr=io.StringIO())), ConsoleReporter)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(for_terminal(Console(stdout=io.StringIO(), stderr=Terminal())), ConsoleReporter)


class Numbers:
    """Records (index, total, event) of every step report."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, str]] = []

    def step_started(self, index, total, title):
        self.seen.append((index, total, "start"))

    def step_finished(self, index, total, title, seconds):
        self.seen.append((index, total, "done"))

    def step_failed(self, index, total, title, seconds):
        self.seen.append((index, total, "failed"))

    def step_skipped(self, index, total, title, why):
        self.seen.append((index, total, "skip"))

    def note(self, text):
        pass


def test_one_numbering_from_the_first_step_to_the_last_cleanup_step(tmp_path: Path) -> None:
    files = [tmp_path / name for name in "abcd"]
    plan = DeployPlan("apply", "dev", "sandbox", (RemoveFile(files[0]), RemoveFile(files[1])),
                      cleanup=(RemoveFile(files[2]), RemoveFile(files[3])))
    numbers = Numbers()
    Executor(None, None, numbers).execute(plan)  # type: ignore[arg-type]
    assert numbers.seen == [(1, 4, "start"), (1, 4, "done"), (2, 4, "start"), (2, 4, "done"),
                            (3, 4, "start"), (3, 4, "done"), (4, 4, "start"), (4, 4, "done")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals as on Linux")
def test_on_a_pseudo_terminal_orch_shows_the_live_display_and_ends_it_cleanly(project: Path) -> None:
    """The real `orch` under a pseudo-terminal: the live display's step lines, and a failure
    (no credentials, so no AWS and no Terraform are reached) printed after it, cursor back."""
    import pexpect

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "NO_COLOR"}
    env.update({"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true", "TERM": "xterm-256color", "PYTHONPATH": str(REPO / "src")})
    child = pexpect.spawn(sys.executable, ["-m", "orch.cli", "plan", "dev"], cwd=str(project), env=env,
                          encoding="utf-8", timeout=120, dimensions=(40, 160))
    child.expect(pexpect.EOF)
    child.close()
    raw = child.before
    text = ANSI.sub("", raw)
    assert child.exitstatus == 5, text
    assert "\u2713 [1/" in text and "check the handler handler.handler (python3.12)" in text
    assert "\u2717 [2/" in text and "check AWS credentials" in text
    assert "orch: AWS error: no AWS credentials found" in text and "Traceback" not in text
    assert raw.rindex(SHOW_CURSOR) > raw.rindex(HIDE_CURSOR)
