"""Everything orch prints passes through here: one Console per process, one Reporter per stage.

The Console owns the output streams and the one place a filter sees every line: secrets
registered with orch.redact are masked there. A Reporter prints what one stage run says: step starts and ends with
elapsed time, Terraform's lines, orch's notes and the closing summary, optionally prefixed
with the stage's name (several stages at once). Plain lines; a live status display can
replace ConsoleReporter without the engine noticing. No module-level mutable state.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from orch import redact as redact_mod


class Console:
    """Writes lines to stdout/stderr through `redact` (orch.redact's registry by default);
    thread-safe."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 redact: Callable[[str], str] | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.redact = redact or redact_mod.redact
        self._lock = threading.Lock()

    def out(self, text: str) -> None:
        """A result for scripts (stdout)."""
        self._write(self.stdout, text)

    def err(self, text: str) -> None:
        """Progress, notes and errors for people (stderr)."""
        self._write(self.stderr, text)

    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(self.redact(text) + "\n")
            stream.flush()


class Reporter(Protocol):
    """What the engine tells the person watching. Implementations decide how it looks."""

    def step_started(self, index: int, total: int, title: str) -> None: ...
    def step_finished(self, index: int, total: int, title: str, seconds: float) -> None: ...
    def step_skipped(self, index: int, total: int, title: str, why: str) -> None: ...
    def terraform(self, line: str, is_error: bool) -> None: ...
    def note(self, text: str) -> None: ...
    def display(self, text: str) -> None: ...
    def summary(self, text: str) -> None: ...


class ConsoleReporter:
    """Plain lines: `orch: [3/9] title`, `done in 12.3 s`, Terraform's lines as they come."""

    def __init__(self, console: Console, prefix: str = "") -> None:
        self.console = console
        self.prefix = prefix

    def _orch(self, text: str) -> None:
        self.console.err(f"{self.prefix}orch: {text}")

    def step_started(self, index: int, total: int, title: str) -> None:
        self._orch(f"[{index}/{total}] {title}")

    def step_finished(self, index: int, total: int, title: str, seconds: float) -> None:
        if seconds >= 1.0:
            self._orch(f"      done in {seconds:.1f} s")

    def step_skipped(self, index: int, total: int, title: str, why: str) -> None:
        self._orch(f"[{index}/{total}] skipped: {title} ({why})")

    def terraform(self, line: str, is_error: bool) -> None:
        # A rendered message can span lines (diagnostics, Outputs:): each carries the prefix.
        text = "\n".join(f"{self.prefix}{part}" for part in line.split("\n")) if self.prefix else line
        if is_error:
            self.console.err(text)
        else:
            self.console.out(text)

    def note(self, text: str) -> None:
        self._orch(f"      {text}")

    def display(self, text: str) -> None:
        self.console.out(f"{self.prefix}{text}")

    def summary(self, text: str) -> None:
        self._orch(text)

    def smoke_report(self, report: Any) -> None:
        """A smoke report (orch.smoke.SmokeReport) as a table on stderr (optional method:
        the engine falls back to notes for reporters without it)."""
        from orch.smoke import table_lines

        for line in table_lines(report):
            self.console.err(f"{self.prefix}{line}")


class RecordingReporter:
    """Keeps every event in memory (tests, and callers that render later)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def step_started(self, index: int, total: int, title: str) -> None:
        self.events.append(("start", title))

    def step_finished(self, index: int, total: int, title: str, seconds: float) -> None:
        self.events.append(("done", title))

    def step_skipped(self, index: int, total: int, title: str, why: str) -> None:
        self.events.append(("skip", title, why))

    def terraform(self, line: str, is_error: bool) -> None:
        self.events.append(("terraform", line))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def display(self, text: str) -> None:
        self.events.append(("display", text))

    def summary(self, text: str) -> None:
        self.events.append(("summary", text))

    def smoke_report(self, report: Any) -> None:
        self.events.append(("smoke", report.summary()))

    def of(self, kind: str) -> list[str]:
        return [event[1] for event in self.events if event[0] == kind]
