"""The sandbox daemon: moto's server and the local gateway in one background process.

Started by orch.sandbox (never by users directly). It first takes the project's daemon
lock (orch.daemonlock; without it, it exits: one daemon per project), binds both servers,
publishes its state in the lock file and in `.orch/sandbox/state.json`, tells its parent
it is ready through a pipe, and runs until SIGTERM, or until its project folder is gone (a
watchdog). It owns no deployment logic.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

from orch import daemonlock

WATCH_INTERVAL = 2.0  # seconds between checks that the project folder still exists


def watch_project(project_dir: Path, stop: threading.Event, interval: float = WATCH_INTERVAL) -> bool:
    """Wait until `stop` is set or the project folder is gone; True when the folder went.

    A sandbox whose project was deleted (a test's temp folder, a removed checkout) has
    nothing left to serve and no `orch sandbox stop` can reach it, so it ends itself. The
    folder is recognised by its identity (device and inode), so one re-created at the same
    path (by a late write into `.orch/`) still counts as gone. Waits on the event with a
    bounded timeout between checks; no fixed sleep.
    """
    identity = _identity(project_dir)
    while not stop.wait(interval):
        if identity is None or _identity(project_dir) != identity:
            print(f"project folder {project_dir} is gone: stopping the sandbox", flush=True)
            return True
    return False


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def main(argv: list[str] | None = None) -> int:
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

    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    # ACM issues a DNS-validated certificate once its records exist; moto marks it ISSUED
    # after this many seconds (default 60), so a custom domain's first apply does not wait.
    os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "0")
    from moto.server import ThreadedMotoServer

    from orch import sandbox_ext

    sandbox_ext.install()  # API Gateway updates Terraform needs and moto lacks

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    from orch.gateway.app import RotatingLog, build_server
    from orch.gateway.multi import default_processes

    gateway_log = RotatingLog(args.project_dir / ".orch" / "sandbox" / "sandbox.log", capture_stdio=True)
    gateway = build_server(
        "127.0.0.1", args.gateway_port, aws_endpoint=endpoint,
        region=args.region,
        project_dir=args.project_dir,
        processes=default_processes(),
        log=gateway_log,
        reload=not args.no_reload,
    )
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
    watch_project(args.project_dir, stop)
    gateway.shutdown()
    gateway.server_close()
    gateway_log.close()
    moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
