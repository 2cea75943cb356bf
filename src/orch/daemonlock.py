"""One sandbox daemon per project: a lock file the daemon holds for its whole life.

The daemon takes a POSIX write lock (``fcntl`` F_SETLK) on ``.orch/sandbox/daemon.lock``
and writes its state (pid, endpoints) into that file; the kernel drops the lock when the
daemon dies, however it dies. Anyone can ask the kernel who holds the lock (F_GETLK)
without taking it, so looking never disturbs a daemon that is starting. This module only
takes, queries and reads the lock; starting and stopping daemons belongs to orch.sandbox.

POSIX record locks, not ``flock``: they are not inherited by the gateway's child processes
(so the lock dies with the daemon itself), and F_GETLK names the holder's pid. Their one
trap: a process loses its lock when it closes *any* descriptor of the file, so the daemon
must never open the lock file a second time.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

# `struct flock` differs between kernels (man 2 fcntl); Linux first, the BSDs and macOS after.
_FLOCK_LAYOUT = "@hhqqixxxx" if sys.platform.startswith("linux") else "@qqihh"
_MAX_STATE_BYTES = 64 * 1024


def _pack(kind: int) -> bytes:
    if _FLOCK_LAYOUT.startswith("@hh"):
        return struct.pack(_FLOCK_LAYOUT, kind, os.SEEK_SET, 0, 0, 0)
    return struct.pack(_FLOCK_LAYOUT, 0, 0, 0, kind, os.SEEK_SET)


def _unpack(raw: bytes) -> tuple[int, int]:
    """(l_type, l_pid) of a `struct flock`."""
    fields = struct.unpack(_FLOCK_LAYOUT, raw[: struct.calcsize(_FLOCK_LAYOUT)])
    if _FLOCK_LAYOUT.startswith("@hh"):
        return fields[0], fields[4]
    return fields[3], fields[2]


def hold(path: Path) -> int | None:
    """Take the lock for this process's life: return the open descriptor (keep it open, never
    open `path` again), or None when another live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def publish(fd: int, state: dict[str, Any]) -> None:
    """Replace the lock file's content with `state` (JSON), through the holding descriptor."""
    data = json.dumps(state).encode()
    if len(data) > _MAX_STATE_BYTES:
        raise ValueError(f"daemon state is {len(data)} bytes, over {_MAX_STATE_BYTES}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def holder(path: Path) -> int | None:
    """The pid of the live process holding the lock on `path`, or None (no file, no holder).

    Takes no lock itself, so it never stands in a starting daemon's way.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        kind, pid = _unpack(fcntl.fcntl(fd, fcntl.F_GETLK, _pack(fcntl.F_WRLCK)))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def read(path: Path) -> dict[str, Any] | None:
    """The state the holder published, or None when there is none (yet) or it is unreadable."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_STATE_BYTES + 1)
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
