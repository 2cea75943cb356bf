"""Records of the Terraform runs in a working folder, so that no run is lost with orch.

Every Terraform process orch starts runs in its own session and writes its output to files
in `<workdir>/.orch-runs/` (orch follows them), so it outlives orch however orch dies. This
module owns those files: a record per run (`<id>.json`: pid, process start time, verb),
its `<id>.stdout`/`<id>.stderr`, finding the runs an earlier orch left behind (still
running, killed, failed), following a log, and ending the provider processes a killed
Terraform leaves behind. It never starts Terraform (orch.terraform does) and never reads
Terraform's output for meaning.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

RUNS_DIR = ".orch-runs"
UNLOCKED = "unlock"
STATE_CHANGING = frozenset({"apply", "destroy", "import", UNLOCKED})
"""Verbs whose interruption can leave AWS and the state apart; `unlock` marks a lock that
`orch unlock` forced open (its holder was interrupted)."""
REAP_TIMEOUT = 10.0  # seconds a leftover provider gets to end after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class RunRecord:
    """One Terraform run in a working folder.

    `pid` is Terraform's (also its session and process group: it leads its own session);
    `created` is the process's start time (psutil, seconds since the epoch), so a reused pid
    is never mistaken for it. `exit_code` is None while it runs, or when orch did not see
    it end (orch was killed); `note` says why a record was written by hand (`orch unlock`).
    """

    run_id: str
    verb: str
    pid: int
    created: float
    started_at: float
    orch_pid: int
    exit_code: int | None = None
    note: str = ""

    # ------------------------------------------------------------------ files

    def path(self, workdir: Path) -> Path:
        return workdir / RUNS_DIR / f"{self.run_id}.json"

    def stdout_path(self, workdir: Path) -> Path:
        return workdir / RUNS_DIR / f"{self.run_id}.stdout"

    def stderr_path(self, workdir: Path) -> Path:
        return workdir / RUNS_DIR / f"{self.run_id}.stderr"

    def write(self, workdir: Path) -> None:
        """Write the record atomically (temp file + rename)."""
        target = self.path(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        os.replace(tmp, target)

    def finished(self, workdir: Path, exit_code: int) -> None:
        """Terraform ended while orch watched: its logs are no longer needed (orch printed
        them); the record stays only when a state-changing run failed, so the next run
        checks what it may have left behind."""
        for path in (self.stdout_path(workdir), self.stderr_path(workdir)):
            path.unlink(missing_ok=True)
        if exit_code == 0 or self.verb not in STATE_CHANGING:
            self.path(workdir).unlink(missing_ok=True)
        else:
            replace(self, exit_code=exit_code).write(workdir)

    def forget(self, workdir: Path) -> None:
        """Remove the record and its logs."""
        for path in (self.path(workdir), self.stdout_path(workdir), self.stderr_path(workdir)):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ processes

    def process(self) -> psutil.Process | None:
        """Terraform's process while it still runs (not a zombie, not a reused pid), else None."""
        if self.pid <= 0:
            return None
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.created) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    @property
    def alive(self) -> bool:
        return self.process() is not None

    def leftovers(self) -> list[psutil.Process]:
        """Processes still in the run's session after Terraform itself is gone: providers a
        killed Terraform could not stop (they never exit on their own)."""
        if self.pid <= 1 or self.alive:
            return []
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != os.getpid() and os.getsid(proc.pid) == self.pid:
                    found.append(proc)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return found

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        if self.note:
            return f"{self.note} ({when})"
        return f"terraform {self.verb} (pid {self.pid}, started {when})"

    @property
    def changes_state(self) -> bool:
        return self.verb in STATE_CHANGING


def new_record(verb: str, pid: int, run_id: str) -> RunRecord:
    """The record of a Terraform process just started (`pid`)."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = time.time()
    return RunRecord(run_id, verb, pid, created, time.time(), os.getpid())


def record_unlock(workdir: Path, lock_id: str) -> RunRecord:
    """Remember that a lock was forced open: its holder was interrupted, so the next plan or
    apply looks for what it left in AWS outside the state."""
    record = RunRecord(f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-0-{UNLOCKED}", UNLOCKED, 0, 0.0,
                       time.time(), os.getpid(), note=f"lock {lock_id} forced open by orch unlock")
    record.write(workdir)
    return record


def records(workdir: Path) -> list[RunRecord]:
    """Every run record in `workdir`, oldest first (unreadable ones are skipped)."""
    found = []
    for path in sorted((workdir / RUNS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(RunRecord(**data))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda r: r.started_at)


@dataclass(frozen=True)
class Leftovers:
    """What earlier orch runs left in a working folder, read without changing anything.

    `running`: Terraform runs still going (orch was killed, Terraform carried on);
    `unfinished`: state-changing runs that ended without orch seeing success (killed,
    interrupted, failed, or a lock forced open), so AWS may hold what the state does not;
    `stray`: ended runs whose provider processes are still alive.
    """

    running: tuple[RunRecord, ...] = ()
    unfinished: tuple[RunRecord, ...] = ()
    stray: tuple[RunRecord, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.running or self.unfinished or self.stray)


def leftovers(workdir: Path) -> Leftovers:
    """Classify the records of `workdir` (orch.facts calls this; it writes nothing)."""
    running, unfinished, stray = [], [], []
    for record in records(workdir):
        if record.orch_pid == os.getpid():
            continue  # this very process's own runs
        if record.alive:
            running.append(record)
            continue
        if record.changes_state:
            unfinished.append(record)
        if record.leftovers():
            stray.append(record)
    return Leftovers(tuple(running), tuple(unfinished), tuple(stray))


def end_leftovers(record: RunRecord, timeout: float = REAP_TIMEOUT) -> list[int]:
    """End the processes a killed Terraform left in its session (SIGTERM, then SIGKILL after
    `timeout` seconds); return their pids."""
    procs = record.leftovers()
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout)
    return [p.pid for p in procs]


def settle(workdir: Path, keep: set[str] | None = None) -> None:
    """Forget every record of an ended run (after a state-changing run succeeded: whatever
    earlier runs left behind is now in the state or adopted)."""
    for record in records(workdir):
        if (keep and record.run_id in keep) or record.alive:
            continue
        record.forget(workdir)


# ---------------------------------------------------------------------------- following output


class Follower:
    """Reads files another process appends to, handing each complete line to its sink as it
    arrives; `stop()` reads what is left (and a last unterminated line) and ends the thread.

    Waits with inotify for the files to grow (a wake-up pipe for `stop`), falling back to a
    short select timeout where inotify is unavailable.
    """

    def __init__(self, sinks: dict[Path, Callable[[str], None]]) -> None:
        self._sinks = sinks
        self._handles = {path: open(path, "rb") for path in sinks}  # noqa: SIM115 - closed in run()
        self._partial = {path: b"" for path in sinks}
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._notify = _inotify_for(list(sinks))
        self._thread = threading.Thread(target=self.run, daemon=True, name="orch-terraform-output")

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join()

    def run(self) -> None:
        try:
            while True:
                self._drain()
                if self._stopping:
                    self._drain(final=True)
                    return
                watched = [self._wake_r] + ([self._notify.fileno()] if self._notify else [])
                ready, _, _ = select.select(watched, [], [], None if self._notify else 0.1)
                if self._notify is not None and self._notify.fileno() in ready:
                    self._notify.read(timeout=0)
        finally:
            for handle in self._handles.values():
                handle.close()
            if self._notify is not None:
                self._notify.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _drain(self, final: bool = False) -> None:
        for path, handle in self._handles.items():
            chunk = handle.read()
            if not chunk and not (final and self._partial[path]):
                continue
            data = self._partial[path] + chunk
            lines = data.split(b"\n")
            self._partial[path] = lines.pop()
            if final and self._partial[path]:
                lines.append(self._partial[path])
                self._partial[path] = b""
            for line in lines:
                self._sinks[path](line.decode("utf-8", errors="replace") + "\n")


def _inotify_for(paths: list[Path]):
    try:
        from inotify_simple import INotify, flags
    except ImportError:  # pragma: no cover - inotify_simple is a dependency, but Linux-only
        return None
    try:
        notify = INotify()
        for path in paths:
            notify.add_watch(str(path), flags.MODIFY | flags.CLOSE_WRITE)
        return notify
    except OSError:  # pragma: no cover - no inotify on this system
        return None


def follow_until_exit(record: RunRecord, workdir: Path, sink: Callable[[str], None], timeout: float) -> bool:
    """Show an earlier orch's still-running Terraform's output (from its log) until it ends
    or `timeout` seconds pass; True when it ended."""
    proc = record.process()
    if proc is None:
        return True
    paths = [p for p in (record.stdout_path(workdir), record.stderr_path(workdir)) if p.is_file()]
    follower = Follower({path: sink for path in paths}).start() if paths else None
    try:
        proc.wait(timeout=timeout)
        return True
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        return True
    finally:
        if follower is not None:
            follower.stop()


# ---------------------------------------------------------------------------- signals


class Forwarded(Exception):
    """Raised in the main thread by the forwarding handler to stop waiting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Forwarding:
    """What `forwarding()` yields: the signals received (`received`, in order) and, once
    `attach(pid)` was called, the Terraform process they are passed on to."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.pid: int | None = None

    def attach(self, pid: int) -> None:
        """Pass signals on to Terraform (`pid`) from now on. A signal that came before it
        existed is passed on here, and Forwarded raised, as if it had come just now."""
        self.pid = pid  # from here the handler passes signals on and raises itself
        if self.received:
            _pass_on(pid)
            raise Forwarded(self.received[0])

    def handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.pid is None:  # Terraform is being started: attach() passes it on
            return
        _pass_on(self.pid)
        raise Forwarded(signum)


def _pass_on(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass


@contextmanager
def forwarding() -> Iterator[Forwarding]:
    """While orch starts and waits for Terraform: SIGINT and SIGTERM to orch become SIGINT
    to Terraform (its graceful stop; a second one stops it at once), recorded in
    `Forwarding.received`. Enter it before starting Terraform and `attach` its pid once it
    is recorded, so no signal finds orch between the two with Python's default handlers
    (which would end orch and leave Terraform unwatched). Once attached, the handler raises
    Forwarded in the main thread so the caller stops waiting and bounds the rest.

    Only the main thread can handle signals; elsewhere nothing is forwarded.
    """
    state = Forwarding()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {sig: signal.signal(sig, state.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = [
    "Follower",
    "Forwarded",
    "Forwarding",
    "Leftovers",
    "RUNS_DIR",
    "RunRecord",
    "end_leftovers",
    "follow_until_exit",
    "forwarding",
    "leftovers",
    "new_record",
    "record_unlock",
    "records",
    "settle",
]
