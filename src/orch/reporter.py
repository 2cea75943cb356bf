"""Everything orch prints passes through here: one Console per process, one Reporter per stage.

The Console owns the output streams and the one place a filter sees every line: secrets
registered with orch.redact are masked there. A Reporter prints what one stage run says: step starts and ends with
elapsed time, Terraform's lines, orch's notes and the closing summary, optionally prefixed
with the stage's name (several stages at once). ConsoleReporter writes plain lines (logs,
CI); LiveReporter, which the CLI swaps in when stderr is a terminal, keeps a live status
line (rich) under them. The engine cannot tell them apart. No module-level mutable state.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
    def step_failed(self, index: int, total: int, title: str, seconds: float) -> None: ...
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

    def step_failed(self, index: int, total: int, title: str, seconds: float) -> None:
        if seconds >= 1.0:
            self._orch(f"      failed after {seconds:.1f} s")

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

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """While a question is asked (nothing to pause for plain lines)."""
        yield


class LiveReporter:
    """On a terminal: while a step runs, a status line at the bottom (a spinner, the step as
    `[n/N]`, its elapsed seconds, redrawn several times a second, so a long Terraform run
    visibly progresses); above it, every line as it comes: each step once it is done (with
    its time), notes, and Terraform's own lines (its colours kept). The status line lives
    only while a step runs: it is gone before an error is printed, and `paused()` lifts it
    while a question is asked. Lines that belong on stdout (Terraform's, a dry run's) go to
    stdout itself when stdout is not the terminal. Built on rich's Live display.
    """

    REFRESH_PER_SECOND = 8

    def __init__(self, console: Console, prefix: str = "") -> None:
        from rich.console import Console as RichConsole

        self.console = console
        self.prefix = prefix
        self.rich = RichConsole(file=console.stderr, highlight=False, markup=False, emoji=False)
        self._stdout_is_terminal = _isatty(console.stdout)
        self._lock = threading.RLock()
        self._live: Any = None
        self._step: tuple[int, int, str, float] | None = None

    # -- the status line --

    def _status(self) -> Any:
        from rich.spinner import Spinner
        from rich.text import Text

        reporter = self

        class Status:
            spinner = Spinner("dots", style="cyan")

            def __rich__(self) -> Any:
                step = reporter._step
                if step is None:
                    return Text("")
                index, total, title, started = step
                line = Text(f"{reporter.prefix}[{index}/{total}] {title}", style="bold")
                line.append(f"  {time.monotonic() - started:.0f} s", style="dim")
                self.spinner.update(text=line)
                return self.spinner

        return Status()

    def _show(self) -> None:
        from rich.live import Live

        with self._lock:
            if self._live is None:
                self._live = Live(self._status(), console=self.rich, refresh_per_second=self.REFRESH_PER_SECOND,
                                  transient=True, redirect_stdout=False, redirect_stderr=False)
                self._live.start()

    def _hide(self) -> None:
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            live.stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No status line while a question is asked on the terminal."""
        self._hide()
        try:
            yield
        finally:
            if self._step is not None:
                self._show()

    # -- lines above it --

    def _line(self, text: str, *, style: str = "", ansi: bool = False, stdout: bool = False) -> None:
        from rich.text import Text

        if stdout and not self._stdout_is_terminal:
            self.console.out(text)
            return
        text = self.console.redact(text)
        self.rich.print(Text.from_ansi(text) if ansi else Text(text, style=style))

    def step_started(self, index: int, total: int, title: str) -> None:
        self._step = (index, total, title, time.monotonic())
        self._show()

    def step_finished(self, index: int, total: int, title: str, seconds: float) -> None:
        self._end()
        shown = f"  {seconds:.1f} s" if seconds >= 0.1 else ""
        self._line(f"{self.prefix}\u2713 [{index}/{total}] {title}{shown}", style="green")

    def step_failed(self, index: int, total: int, title: str, seconds: float) -> None:
        self._end()
        self._line(f"{self.prefix}\u2717 [{index}/{total}] {title}: failed after {seconds:.1f} s", style="bold red")

    def _end(self) -> None:
        self._step = None
        self._hide()

    def step_skipped(self, index: int, total: int, title: str, why: str) -> None:
        self._line(f"{self.prefix}- [{index}/{total}] skipped: {title} ({why})", style="dim")

    def terraform(self, line: str, is_error: bool) -> None:
        self._line(f"{self.prefix}{line}", ansi=True, stdout=not is_error)

    def note(self, text: str) -> None:
        self._line(f"{self.prefix}      {text}", style="dim")

    def display(self, text: str) -> None:
        self._line(f"{self.prefix}{text}", stdout=True)

    def smoke_report(self, report: Any) -> None:
        """A smoke report (orch.smoke.SmokeReport) as a table above the status line."""
        from orch.smoke import table_lines

        self._end()
        for line in table_lines(report):
            self._line(f"{self.prefix}{line}")

    def summary(self, text: str) -> None:
        self._end()
        self._line(f"{self.prefix}orch: {text}", style="bold")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def for_terminal(console: Console, prefix: str = "") -> ConsoleReporter | LiveReporter:
    """The reporter the CLI uses: LiveReporter when stderr is an interactive terminal
    (not TERM=dumb), else plain lines (ConsoleReporter)."""
    import os

    if _isatty(console.stderr) and os.environ.get("TERM", "") != "dumb":
        return LiveReporter(console, prefix)
    return ConsoleReporter(console, prefix)


class RecordingReporter:
    """Keeps every event in memory (tests, and callers that render later)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def step_started(self, index: int, total: int, title: str) -> None:
        self.events.append(("start", title))

    def step_finished(self, index: int, total: int, title: str, seconds: float) -> None:
        self.events.append(("done", title))

    def step_failed(self, index: int, total: int, title: str, seconds: float) -> None:
        self.events.append(("failed", title))

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
