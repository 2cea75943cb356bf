"""Lifecycle of the sandbox: an AWS emulator (moto) and the local gateway on this machine.

The sandbox runs as one background daemon (`python -m orch.sandboxd`) that survives the
command that started it. One per project: the daemon holds `.orch/sandbox/daemon.lock`
for its life and publishes its pid, ports and a per-start `epoch` there (orch.daemonlock);
`state.json` is a copy for people and scripts, repaired from the lock whenever it is
missing or wrong. This module starts, finds, checks and stops the daemon. It does not
deploy anything and does not import moto (the daemon does).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from orch import daemonlock
from orch.aws import SANDBOX_CREDENTIALS_ENV
from orch.errors import ConfigError, SandboxError

START_TIMEOUT = 30.0
DEFAULT_REGION = "ap-northeast-2"
EXTRA_MODULES = ("moto", "flask", "flask_cors")
"""What the daemon imports from the `sandbox` extra (moto's server mode runs on Flask)."""
INSTALL_EXTRA = "pip install 'orch[sandbox]'"
RELOAD_VARIABLE = "ORCH_RELOAD"
"""`ORCH_RELOAD=0`: a sandbox started by this command serves deployed packages, no hot reload."""


def reload_from_environment(environ: dict[str, str] | None = None) -> bool:
    """Hot reload is on unless ``ORCH_RELOAD`` is ``0``, ``false``, ``no`` or ``off``."""
    value = (os.environ if environ is None else environ).get(RELOAD_VARIABLE, "1")
    return value.strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    endpoint: str
    gateway_endpoint: str | None
    epoch: str
    started_at: float
    project_dir: str
    reload: bool = True  # the gateway runs stages' source folders (hot reload)

    def status(self, running: bool) -> dict[str, object]:
        return {"running": running, **asdict(self)}


def state_dir(project_dir: Path) -> Path:
    return project_dir / ".orch" / "sandbox"


def _state_file(project_dir: Path) -> Path:
    return state_dir(project_dir) / "state.json"


def lock_file(project_dir: Path) -> Path:
    """The file the project's daemon holds locked for its life (orch.daemonlock)."""
    return state_dir(project_dir) / "daemon.lock"


def _info_from(data: dict[str, object] | None) -> SandboxInfo | None:
    if not data:
        return None
    values = {f.name: data[f.name] for f in fields(SandboxInfo) if f.name in data}
    if any(f.name not in values and f.default is MISSING for f in fields(SandboxInfo)):
        return None  # a daemon still starting (it publishes its pid first)
    try:
        return SandboxInfo(**values)  # type: ignore[arg-type]
    except TypeError:
        return None


def daemon_pid(project_dir: Path) -> int | None:
    """The pid of the project's running daemon (the lock's holder), or None."""
    return daemonlock.holder(lock_file(project_dir))


def read_state(project_dir: Path) -> SandboxInfo | None:
    """The running daemon's pid and endpoints, or None when no daemon runs (or it is still
    starting). Found through the lock, whatever state.json says; state.json is rewritten
    when it differs and removed when no daemon runs."""
    pid = daemon_pid(project_dir)
    info = _info_from(daemonlock.read(lock_file(project_dir))) if pid is not None else None
    if info is not None and info.pid != pid:
        info = None  # a starting daemon has not published yet
    path = _state_file(project_dir)
    if info is None:
        if pid is None:
            path.unlink(missing_ok=True)
        return None
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if current != asdict(info):
        _write_json(path, asdict(info))
    return info


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


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
    """(running, info): running means the daemon holds the lock and its emulator answers."""
    info = read_state(project_dir)
    if info is None:
        return False, None
    return _responds(info.endpoint), info


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


def require_installed() -> None:
    """Raise SandboxError naming the install command when the `sandbox` extra is missing.

    Cheap (finds modules without importing them), so commands call it before they start
    anything. Exit code 7: the stage files are fine; this machine cannot run the sandbox.
    """
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SandboxError(
            f"--sandbox needs orch's sandbox extra, which is not installed here (missing: {', '.join(missing)}).",
            hint=f"Install it with `{INSTALL_EXTRA}` (in a clone of orch: `pip install -e '.[sandbox]'`), "
            "or drop --sandbox to deploy to AWS.",
        )


_STARTED_HERE: set[Path] = set()
"""Projects whose daemon this process started (see stop_started_here)."""


@contextlib.contextmanager
def _starting(project_dir: Path) -> Iterator[None]:
    """Serialise orch processes that look for a daemon and start one (flock, released on exit)."""
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another starter holds it at most START_TIMEOUT
        yield


def ensure_running(project_dir: Path, *, port: int | None = None, gateway_port: int | None = None,
                   region: str = DEFAULT_REGION, log: Callable[[str], None] | None = None,
                   reload: bool | None = None) -> SandboxInfo:
    """Return the project's running sandbox, starting one in the background if none runs.

    ``reload``: whether a daemon started now runs hot reload (None: ``ORCH_RELOAD``, on by
    default); a running daemon keeps its setting (its info says which). Never starts a
    second daemon for a project: looking and starting happen under a start lock, and a
    daemon refuses to run without the project's daemon lock. Raises SandboxError when the
    extra is missing, a fixed port is taken or start-up fails.
    """
    require_installed()
    with _starting(project_dir):
        running, info = status(project_dir)
        if running and info is not None:
            return info
        if daemon_pid(project_dir) is not None:
            # Holds the lock but its emulator does not answer: a wedged daemon. Replace it.
            stop(project_dir)
        if reload is None:
            reload = reload_from_environment()
        info = _start(project_dir, port=port, gateway_port=gateway_port, region=region, log=log, reload=reload)
        _STARTED_HERE.add(project_dir)
        return info


def stop_started_here() -> None:
    """Stop the daemons this process started: a command that fails on its configuration
    must not leave one running."""
    while _STARTED_HERE:
        stop(_STARTED_HERE.pop())


def _start(project_dir: Path, *, port: int | None, gateway_port: int | None, region: str,
           log: Callable[[str], None] | None, reload: bool = True) -> SandboxInfo:
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
    if not reload:
        cmd.append("--no-reload")
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
        try:
            info = _info_from(json.loads(line))
        except ValueError:
            info = None
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
    """Stop the project's daemon (found through its lock, whatever state.json says) and its
    process group; True if one was running."""
    pid = daemon_pid(project_dir)
    _state_file(project_dir).unlink(missing_ok=True)
    if pid is None:
        return False
    if not _signal(pid, signal.SIGTERM):
        return False
    if not _wait_exit(pid, 10):
        _signal(pid, signal.SIGKILL)
        _wait_exit(pid, 5)
    return True


def _signal(pid: int, signum: int) -> bool:
    """Signal the daemon's process group (it leads one: its gateway workers go too), or the
    daemon alone when it does not lead a group; False when it is gone."""
    try:
        os.killpg(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def generation_path(project_dir: Path) -> Path:
    """``.orch/sandbox/generation``: a token that changes whenever deployed state does."""
    return state_dir(project_dir) / "generation"


def mark_changed(project_dir: Path) -> str:
    """Tell every local gateway process that deployed state changed: rewrite the
    generation file atomically with a new token (returned). Gateways re-read the deployed
    APIs before answering their next request and warm workers for new versions."""
    folder = state_dir(project_dir)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    staging = folder / f".generation.{token}.tmp"
    staging.write_text(token + "\n")
    os.replace(staging, generation_path(project_dir))
    return token


def invoke_url(gateway_endpoint: str, rest_api_id: str, stage_name: str) -> str:
    """The local gateway's URL for a deployed stage (AWS's own execute-api host is unreachable)."""
    return f"{gateway_endpoint}/restapis/{rest_api_id}/{stage_name}/_user_request_"


def custom_domain_request(gateway_endpoint: str, custom_url: str) -> tuple[str, str]:
    """How to reach a custom domain URL (`https://api.example.com/v1`, or the sandbox form
    `http://api.example.com:<port>/v1`) on the local gateway: (the gateway's address under
    the base path, the Host header naming the domain). The gateway picks the stage by Host
    and base path mapping, as API Gateway does."""
    from urllib.parse import urlsplit, urlunsplit

    gateway, custom = urlsplit(gateway_endpoint), urlsplit(custom_url)
    return (urlunsplit((gateway.scheme, gateway.netloc, custom.path, "", "")),
            f"{custom.hostname}:{gateway.port}")
