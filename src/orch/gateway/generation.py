"""Which generation of the deployed state the gateway serves: the sandbox's generation file.

After every change to deployed state orch rewrites ``.orch/sandbox/generation`` atomically
with a new token (``orch.sandbox.mark_changed``). This module owns reading that token
cheaply enough to do before every request (one ``stat``; the file is read only when the stat
changed or is too recent to trust) and watching the file (inotify) so a gateway process can
get ready for a new generation before the next request arrives, and the marks by which
each gateway process says it is ready for a generation (``WarmMarks``), which
``wait_until_warm`` reads so orch can wait for them after an apply. It must not read the
emulator, cache deployed APIs or start workers: ``model.ApiRegistry`` and
``orch.gateway.app`` do that with what this module tells them.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

# A file's mtime has the kernel's coarse clock granularity (a few ms), and a replaced file
# can get a freed inode number back: a stat signature is trusted only once the file is this
# old, and the file is read again before that.
_TRUST_AFTER_NS = 1_000_000_000


class Generation:
    """The current token in ``path`` (``""`` while there is no file).

    ``current()`` costs one ``stat`` on the warm path and is safe from any thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._seen: tuple[tuple[int, int, int, int], str] | None = None

    def current(self) -> str:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return ""
        signature = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        seen = self._seen
        if seen is not None and seen[0] == signature and time.time_ns() - st.st_mtime_ns > _TRUST_AFTER_NS:
            return seen[1]
        try:
            with open(self.path, "rb") as handle:
                token = handle.read(4096).decode("utf-8", "replace").strip()
        except FileNotFoundError:  # replaced between stat and open: the next call reads it
            return seen[1] if seen is not None else ""
        self._seen = (signature, token)
        return token


class GenerationWatcher:
    """Calls ``on_change()`` from a daemon thread soon after the generation file is
    replaced (inotify on its folder), and ``on_idle()`` after every ``idle_interval``
    seconds without a change (a safety net for changes made without ``mark_changed``);
    with ``initial``, ``on_change()`` also runs once when the thread starts.

    Changes that arrive while ``on_change`` runs are coalesced into one more call. Without
    inotify (not Linux) the thread only runs ``on_idle``. ``close()`` stops the thread.
    """

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], None],
        *,
        on_idle: Callable[[], None] | None = None,
        idle_interval: float | None = None,
        initial: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.on_idle = on_idle
        self.idle_interval = idle_interval
        self.initial = initial
        self.log = log or (lambda _line: None)
        self._stop_r, self._stop_w = os.pipe()
        self._released = False
        self._release_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._inotify = None
        try:
            from inotify_simple import INotify, flags

            self.path.parent.mkdir(parents=True, exist_ok=True)
            inotify = INotify()
            inotify.add_watch(
                str(self.path.parent),
                flags.CREATE | flags.MOVED_TO | flags.CLOSE_WRITE | flags.DELETE | flags.MOVED_FROM,
            )
            self._inotify = inotify
        except (ImportError, OSError) as exc:
            self.log(f"gateway: not watching {self.path} ({exc}); requests still check it")

    def start(self) -> GenerationWatcher:
        self._thread = threading.Thread(target=self._run, name="gateway-generation", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            self._release()  # the thread closes what it selects on: close() may have timed out

    def _watch(self) -> None:
        watched = [self._stop_r] + ([self._inotify.fileno()] if self._inotify is not None else [])
        timeout = self.idle_interval if self.on_idle is not None else None
        if self.initial:
            self._call(self.on_change)
        while True:
            ready, _, _ = select.select(watched, [], [], timeout)
            if self._stop_r in ready:
                return
            if not ready:
                self._call(self.on_idle)
                continue
            if self._changed():
                self._call(self.on_change)

    def _changed(self) -> bool:
        assert self._inotify is not None
        name = self.path.name
        changed = False
        for event in self._inotify.read(timeout=0):
            changed = changed or event.name == name
        return changed

    def _call(self, callback: Callable[[], None] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad refresh
            self.log(f"gateway: refresh after a generation change failed: {exc!r}")

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the pipe and the inotify descriptor. Waits up to
        ``timeout`` seconds for a refresh in progress (one waiting on the emulator); a thread
        still busy after that releases them itself when the refresh returns, so a descriptor
        is never closed under the thread that selects on it."""
        if self._released:
            return  # its descriptor numbers may belong to other files by now
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        thread = self._thread
        if thread is None:
            self._release()
        elif thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def _release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._inotify is not None:
            self._inotify.close()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), so a
    reused pid is not taken for the process that left a mark; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def warm_folder(generation_file: Path) -> Path:
    return Path(generation_file).parent / "gateway-warm"


class WarmMarks:
    """This process's mark in ``<sandbox>/gateway-warm/<pid>``: the last generation it
    finished warming (every deployed stage read, a worker started for each function
    version), written atomically."""

    def __init__(self, generation_file: Path) -> None:
        self.folder = warm_folder(generation_file)
        self.pid = os.getpid()

    def mark(self, token: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".{self.pid}.tmp"
        staging.write_text(f"{token or '-'} {_start_time(self.pid)}\n")
        os.replace(staging, self.folder / str(self.pid))

    def clear(self) -> None:
        (self.folder / str(self.pid)).unlink(missing_ok=True)


def wait_until_warm(generation_file: Path, token: str, timeout: float = 5.0) -> bool:
    """Wait until every live gateway process has a mark for ``token`` (call it after
    ``orch.sandbox.mark_changed`` returned ``token``, so the first request after an apply
    finds warm workers). True when they all have, or no gateway process left a mark;
    False after ``timeout`` seconds. Marks of processes that are gone are ignored."""
    folder = warm_folder(generation_file)
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        pending = False
        try:
            names = [name for name in os.listdir(folder) if name.isdigit()]
        except FileNotFoundError:
            return True
        for name in names:
            try:
                mark_token, started = (folder / name).read_text().split()
            except (OSError, ValueError):
                continue
            if _start_time(int(name)) != started:
                continue  # that process is gone
            if mark_token != (token or "-"):
                pending = True
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        pause.wait(0.02)


__all__ = ["Generation", "GenerationWatcher", "WarmMarks", "wait_until_warm", "warm_folder"]
