"""Lifecycle of the sandbox: an AWS emulator (moto) and the local gateway on this machine.

The sandbox runs as one background daemon (`python -m orch.sandboxd`) that survives the
command that started it; its pid, ports and a per-start `epoch` live in
`<project>/.orch/sandbox/state.json`. This module starts, finds, checks and stops it, and
rewrites `.orch/sandbox/generation` when deployed state changed (`mark_changed`, the signal
the local gateway watches). It does not deploy anything and does not import moto (the
daemon does).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from orch.aws import SANDBOX_CREDENTIALS_ENV
from orch.errors import ConfigError, SandboxError

START_TIMEOUT = 30.0
DEFAULT_REGION = "ap-northeast-2"


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    endpoint: str
    gateway_endpoint: str | None
    epoch: str
    started_at: float
    project_dir: str

    def status(self, running: bool) -> dict[str, object]:
        return {"running": running, **asdict(self)}


def state_dir(project_dir: Path) -> Path:
    return project_dir / ".orch" / "sandbox"


def _state_file(project_dir: Path) -> Path:
    return state_dir(project_dir) / "state.json"


def read_state(project_dir: Path) -> SandboxInfo | None:
    path = _state_file(project_dir)
    try:
        data = json.loads(path.read_text())
        return SandboxInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _responds(endpoint: str, timeout: float = 2.0) -> bool:
    """True when something accepts connections at the emulator's address (cheap: no request)."""
    parsed = urllib.parse.urlsplit(endpoint)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def status(project_dir: Path) -> tuple[bool, SandboxInfo | None]:
    info = read_state(project_dir)
    if info is None:
        return False, None
    return (_pid_alive(info.pid) and _responds(info.endpoint)), info


def _port_from_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r} is not a TCP port number (1-65535).")
    return int(raw)


def _check_port_free(port: int, what: str, variable: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SandboxError(
                f"cannot start the sandbox: {what} port {port} on 127.0.0.1 is already in use.",
                hint=f"Stop whatever listens there, or choose another port with {variable}=N "
                "(or leave it unset for a free port).",
            ) from None


def ensure_running(project_dir: Path, *, port: int | None = None, gateway_port: int | None = None,
                   region: str = DEFAULT_REGION, log: Callable[[str], None] | None = None) -> SandboxInfo:
    """Return the running sandbox, starting one in the background if needed."""
    running, info = status(project_dir)
    if running and info is not None:
        return info
    if info is not None and _pid_alive(info.pid):
        # Alive but not answering: a wedged daemon. Replace it.
        stop(project_dir)
    port = port if port is not None else _port_from_env("ORCH_SANDBOX_PORT")
    gateway_port = gateway_port if gateway_port is not None else _port_from_env("ORCH_GATEWAY_PORT")
    if port:
        _check_port_free(port, "emulator", "ORCH_SANDBOX_PORT")
    if gateway_port:
        _check_port_free(gateway_port, "local gateway", "ORCH_GATEWAY_PORT")
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _state_file(project_dir).unlink(missing_ok=True)
    log_path = folder / "sandbox.log"
    if log:
        log("starting the sandbox (AWS emulator + local gateway) in the background")
    cmd = [
        sys.executable, "-m", "orch.sandboxd",
        "--project-dir", str(project_dir),
        "--port", str(port or 0),
        "--gateway-port", str(gateway_port or 0),
        "--region", region,
    ]
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", **SANDBOX_CREDENTIALS_ENV}
    ready_r, ready_w = os.pipe()
    cmd += ["--ready-fd", str(ready_w)]
    try:
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=project_dir, env=env, start_new_session=True, pass_fds=(ready_w,),
            )
    finally:
        os.close(ready_w)
    # The daemon writes one line to the pipe once both servers listen (or exits, closing it).
    with os.fdopen(ready_r, "rb") as ready:
        readable, _, _ = select.select([ready], [], [], START_TIMEOUT)
        line = ready.readline() if readable else b""
    if line.strip():
        info = read_state(project_dir)
        if info is not None and info.pid == proc.pid:
            return info
    if proc.poll() is None and not readable:
        proc.terminate()
        raise SandboxError(
            f"the sandbox did not become ready within {START_TIMEOUT:.0f} s.",
            hint=f"See {log_path}:\n{_tail(log_path)}",
        )
    code = proc.wait(timeout=10)
    raise SandboxError(
        f"the sandbox daemon exited during start-up (exit {code}).",
        hint=f"Its log, {log_path}, ends with:\n{_tail(log_path)}",
    )


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait for a (non-child) process to exit without polling; True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return not _pid_alive(pid)
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not _pid_alive(pid)


def stop(project_dir: Path) -> bool:
    """Stop the sandbox daemon; True if one was running."""
    info = read_state(project_dir)
    _state_file(project_dir).unlink(missing_ok=True)
    if info is None or not _pid_alive(info.pid):
        return False
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(info.pid, signal.SIGTERM)
    if not _wait_exit(info.pid, 10):
        os.killpg(info.pid, signal.SIGKILL)
        _wait_exit(info.pid, 5)
    return True


GENERATION_FILE = "generation"


def mark_changed(project_dir: Path) -> str:
    """Tell the local gateway that deployed state changed: rewrite `.orch/sandbox/generation`.

    Called after every orch action that changes what is deployed in the sandbox (apply,
    destroy; later rollback and sync). The file holds a new random token (uuid4 hex),
    written atomically (temp file + rename), so a gateway process that sees a different
    token re-reads the deployed APIs before answering. Returns the token.
    """
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    fd, tmp = tempfile.mkstemp(prefix=".generation.", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.replace(tmp, folder / GENERATION_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return token


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
