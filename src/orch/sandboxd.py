"""The sandbox daemon: moto's server and the local gateway, started and stopped together.

Started by orch.sandbox (never by users directly). It first takes the project's daemon
lock (orch.daemonlock; without it, it exits: one daemon per project), starts the emulator
process, binds the gateway, publishes its state in the lock file and in
`.orch/sandbox/state.json`, tells its parent it is ready through a pipe, and runs until
SIGTERM, until its project folder is gone (a watchdog) or until the emulator process dies.
It owns no deployment logic.

The emulator (moto with `orch.sandbox_ext`) runs in a child process of its own,
`python -m orch.sandboxd --emulator` (`EmulatorProcess`), not in the process that serves
invoke URLs: moto's work (every handler's CloudWatch Logs, Terraform's calls) and its
collector pauses would otherwise hold the GIL that the gateway's request threads need.
`bench/gateway.py` measured the gateway process that shared a GIL with moto answering four
times as many requests over 15 ms as the gateway processes that did not.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orch import daemonlock
from orch.errors import SandboxError

WATCH_INTERVAL = 2.0  # seconds between checks that the project folder still exists


def watch_project(
    project_dir: Path,
    stop: threading.Event,
    interval: float = WATCH_INTERVAL,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Wait until `stop` is set, the project folder is gone or ``alive()`` (the emulator
    process) turns false; True when the folder or the emulator went.

    A sandbox whose project was deleted (a test's temp folder, a removed checkout) has
    nothing left to serve and no `orch sandbox stop` can reach it, so it ends itself. The
    folder is recognised by its identity (device and inode), so one re-created at the same
    path (by a late write into `.orch/`) still counts as gone. A sandbox whose emulator died
    has lost every resource; it ends too, and the next orch command starts a fresh one (and
    notices the restart). Waits on the event with a bounded timeout between checks; no
    fixed sleep.
    """
    identity = _identity(project_dir)
    while not stop.wait(interval):
        if identity is None or _identity(project_dir) != identity:
            print(f"project folder {project_dir} is gone: stopping the sandbox", flush=True)
            return True
        if alive is not None and not alive():
            print("the AWS emulator process exited: stopping the sandbox", flush=True)
            return True
    return False


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


EMULATOR_START_TIMEOUT = 60.0  # seconds for moto to import and listen on a loaded machine
EMULATOR_STOP_TIMEOUT = 5.0


class EmulatorProcess:
    """The AWS emulator in a child process: ``python -m orch.sandboxd --emulator``.

    ``start(port)`` (0: a free one) starts it; ``wait_ready()`` returns its endpoint
    (``http://127.0.0.1:<port>``) once it listens, or raises ``SandboxError`` when it exits
    or is silent for ``EMULATOR_START_TIMEOUT`` seconds. The child ignores SIGINT and SIGTERM (a signal
    to the daemon's process group must not take the emulator away while the gateway still
    ships its last logs) and ends when its stdin does: ``stop()`` closes it (and kills the
    child after ``EMULATOR_STOP_TIMEOUT`` seconds), and so does the daemon's death.
    Its output goes where the caller's goes. ``alive()`` tells whether it still runs.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self._ready: Any = None

    def start(self, port: int = 0) -> EmulatorProcess:
        """Start the child (it imports moto meanwhile: call ``wait_ready()`` next)."""
        ready_r, ready_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orch.sandboxd", "--emulator", "--port", str(port), "--ready-fd", str(ready_w)],
                stdin=subprocess.PIPE,
                pass_fds=(ready_w,),
                close_fds=True,
            )
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        self._ready = os.fdopen(ready_r, "rb")
        return self

    def wait_ready(self) -> str:
        """The endpoint once the child listens; ``SandboxError`` (the child stopped) when
        it exits or stays silent for ``EMULATOR_START_TIMEOUT`` seconds."""
        with self._ready as ready:
            readable, _, _ = select.select([ready], [], [], EMULATOR_START_TIMEOUT)
            line = ready.readline() if readable else b""
        try:
            self.endpoint = json.loads(line)["endpoint"]
        except (ValueError, KeyError, TypeError):
            code = self.proc.poll() if self.proc is not None else None
            self.stop()
            why = (
                f"exited with code {code}"
                if code is not None
                else f"was not ready within {EMULATOR_START_TIMEOUT:.0f} s"
            )
            raise SandboxError(f"the AWS emulator (moto) {why}.") from None
        return self.endpoint

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Close the child's stdin and wait for it; idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(EMULATOR_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_emulator(port: int, ready_fd: int) -> int:
    """The emulator process's main: moto's server with orch's extensions on 127.0.0.1:``port``,
    one JSON line (``{"endpoint": ...}``) on ``ready_fd`` once it listens, then serve until
    stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    # ACM issues a DNS-validated certificate once its records exist; moto marks it ISSUED
    # after this many seconds (default 60), so a custom domain's first apply does not wait.
    os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
    import logging

    from moto.server import ThreadedMotoServer

    from orch import sandbox_ext

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    sandbox_ext.install()  # API Gateway updates Terraform needs and moto lacks
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    host, bound = moto.get_host_and_port()
    with os.fdopen(ready_fd, "w") as ready:
        ready.write(json.dumps({"endpoint": f"http://{host}:{bound}", "pid": os.getpid()}) + "\n")
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        moto.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if "--emulator" in argv:
        emulator = argparse.ArgumentParser(prog="python -m orch.sandboxd --emulator")
        emulator.add_argument("--emulator", action="store_true")
        emulator.add_argument("--port", type=int, default=0)
        emulator.add_argument("--ready-fd", type=int, required=True)
        options = emulator.parse_args(argv)
        return run_emulator(options.port, options.ready_fd)
    parser = argparse.ArgumentParser(prog="python -m orch.sandboxd")
    parser.add_argument("--project-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gateway-port", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--region", default="ap-northeast-2",
                        help="region whose APIs the local gateway serves")
    parser.add_argument("--no-reload", action="store_true",
                        help="serve deployed packages only (no hot reload of stages' source folders)")
    args = parser.parse_args(argv)

    folder = args.project_dir / ".orch" / "sandbox"
    lock_fd = daemonlock.hold(folder / "daemon.lock")  # kept open (and locked) until exit
    if lock_fd is None:
        holder = daemonlock.holder(folder / "daemon.lock")
        print(f"another sandbox daemon (pid {holder}) already serves {args.project_dir}; exiting", flush=True)
        return 3
    daemonlock.publish(lock_fd, {"pid": os.getpid()})

    emulator = EmulatorProcess().start(args.port)  # moto imports in the child meanwhile
    try:
        return _serve(args, lock_fd, emulator)
    except SandboxError as exc:
        print(f"sandbox: {exc.message}", flush=True)
        return 7
    finally:
        emulator.stop()


def _serve(args: argparse.Namespace, lock_fd: int, emulator: EmulatorProcess) -> int:
    from orch.gateway.app import RotatingLog, build_server
    from orch.gateway.gcpause import bound_collection_pauses
    from orch.gateway.multi import default_processes

    endpoint = emulator.wait_ready()
    folder = args.project_dir / ".orch" / "sandbox"
    gateway_log = RotatingLog(folder / "sandbox.log", capture_stdio=True)
    gateway = build_server(
        "127.0.0.1", args.gateway_port, aws_endpoint=endpoint,
        region=args.region,
        project_dir=args.project_dir,
        processes=default_processes(),
        log=gateway_log,
        reload=not args.no_reload,
    )
    bound_collection_pauses()  # boto3's models and what start-up built: never walked again
    threading.Thread(target=gateway.serve_forever, name="gateway", daemon=True).start()
    ghost, gport = gateway.server_address[:2]
    gateway_endpoint = f"http://{ghost}:{gport}"

    state = {
        "pid": os.getpid(),
        "endpoint": endpoint,
        "gateway_endpoint": gateway_endpoint,
        "epoch": uuid.uuid4().hex,
        "started_at": time.time(),
        "project_dir": str(args.project_dir),
        "reload": not args.no_reload,
    }
    daemonlock.publish(lock_fd, state)
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, folder / "state.json")
    print(f"sandbox ready: emulator {endpoint}, gateway {gateway_endpoint}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.ready_fd is not None:
        with os.fdopen(args.ready_fd, "w") as ready:
            ready.write(json.dumps(state) + "\n")
    watch_project(args.project_dir, stop, alive=emulator.alive)
    gateway.shutdown()
    gateway.server_close()
    gateway_log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
