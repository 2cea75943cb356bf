"""Ending a handler worker together with every process its handler started.

A handler may start processes that leave the worker's process group (``setsid``) or even
its tree (a double fork reparents the grandchild to init), and they must not outlive the
worker (cgroups are not available here). This module owns finding them, through /proc
via psutil: the worker's descendants, plus any process of this user whose environment
carries the worker's marker (its unique ``AWS_LAMBDA_LOG_STREAM_NAME``, which children
inherit), and killing them all. It must not start processes or know about the pool.
"""

from __future__ import annotations

import os
import signal

import psutil

_ROUNDS = 20  # stop/scan rounds; each round freezes everything found so far


def _marked(name: str, value: str, skip: set[int]) -> list[psutil.Process]:
    found = []
    uid = os.getuid()
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        try:
            if proc.uids().real != uid:
                continue
            if proc.environ().get(name) == value:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def kill_tree(root: int, marker: tuple[str, str] | None = None) -> list[int]:
    """SIGKILL process ``root``, its descendants and the processes whose environment has
    ``marker`` (name, value); returns the pids signalled besides ``root``.

    Everything found is first stopped (SIGSTOP, so nothing forks away while we look), the
    search repeats until it finds nothing new, then all get SIGKILL. ``root`` is not
    reaped: its parent does that.
    """
    stopped: dict[int, psutil.Process] = {}
    try:
        top = psutil.Process(root)
        top.send_signal(signal.SIGSTOP)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        top = None
    me = os.getpid()
    for _ in range(_ROUNDS):
        found = _descendants(top) if top is not None else []
        if marker is not None:
            found += _marked(marker[0], marker[1], {me, root, *stopped})
        fresh = [p for p in found if p.pid not in stopped and p.pid not in (me, root)]
        if not fresh:
            break
        for proc in fresh:
            try:
                proc.send_signal(signal.SIGSTOP)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
            stopped[proc.pid] = proc
    for proc in stopped.values():
        try:
            proc.send_signal(signal.SIGKILL)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    try:
        os.killpg(root, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(root, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return sorted(stopped)


__all__ = ["kill_tree"]
