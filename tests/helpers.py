"""Test helpers: throwaway orch projects, a way to run the real `orch` command, polling."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        pause.wait(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_project(dest: Path) -> Path:
    """A copy of this repo's stages/ and functions/, using the repo's modules/ (symlink)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "stages", dest / "stages")
    shutil.copytree(
        REPO / "functions", dest / "functions", ignore=shutil.ignore_patterns("node_modules", "__pycache__")
    )
    (dest / "modules").symlink_to(REPO / "modules")
    return dest


def orch(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
         stdin: str | None = None) -> Result:
    """Run the real `orch` entry point in a subprocess (exit codes and stderr as users see them)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    for key in [k for k, v in full_env.items() if v is None]:
        full_env.pop(key)
    proc = subprocess.run(
        [sys.executable, "-m", "orch.cli", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
        input=stdin if stdin is not None else "",
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def cli(*args: str, cwd: Path, env: dict[str, str | None] | None = None, stdin: str = "") -> Result:
    """Run orch's entry point (`orch.cli.main`, what the `orch` command calls) in this process.

    The working folder, environment (a None value removes a variable) and the standard
    streams are swapped for the call and restored after it, so the exit code, stdout and
    stderr are what `orch` would give, without a Python start-up per call (about a second
    here). A traceback would escape `main` as an exception and fail the test. Commands that
    must run as their own process (a sandbox daemon, signals, a terminal) use `orch()`.
    """
    import contextlib
    import io

    from orch.cli import main

    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ["NO_COLOR"] = "1"
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
            try:
                code = main(list(args))
            except SystemExit as exc:  # click's --help/--version paths
                code = exc.code if isinstance(exc.code, int) else 0
            finally:
                sys.stdin = saved_stdin
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(int(code or 0), out.getvalue(), err.getvalue())


TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_text(raw: str) -> str:
    """What a terminal shows of a pseudo-terminal transcript, line by line: escape sequences
    (colours, a live display's cursor moves) removed and, of a line rewritten in place with
    `\r` (a live status line redrawn, then replaced by the line printed above it), only its
    last version."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in TERMINAL_CODES.sub("", raw).split("\n"))


def assert_clean_failure(result: Result, code: int, *needles: str) -> None:
    """A failure users can act on: the expected exit code, the message, no traceback."""
    assert result.code == code, f"exit {result.code}, expected {code}\n{result.output}"
    assert "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in:\n{result.output}"


def sandbox_daemons() -> dict[int, Path]:
    """Running sandbox daemons on this machine: pid -> their --project-dir (Linux /proc)."""
    found: dict[int, Path] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if "orch.sandboxd" in args and "--project-dir" in args:
            index = args.index("--project-dir") + 1
            if index < len(args):
                found[int(entry.name)] = Path(args[index])
    return found


def stop_sandboxes_under(root: Path, timeout: float = 10.0) -> list[int]:
    """Stop every sandbox daemon whose project folder is under `root`; return their pids.

    Uses `orch.sandbox.stop` where a state file exists, then SIGTERM to any daemon left
    (a daemon whose state file is gone), waiting for each with a bounded timeout.
    """
    import signal

    from orch import sandbox as sandbox_mod

    root = root.resolve()
    stopped = []
    for pid, project in sandbox_daemons().items():
        try:
            inside = project.resolve().is_relative_to(root)
        except OSError:
            inside = str(project).startswith(str(root))
        if not inside:
            continue
        if project.is_dir():
            sandbox_mod.stop(project)
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        sandbox_mod._wait_exit(pid, timeout)
        stopped.append(pid)
    return stopped


STS_IDENTITY = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
                b"<Arn>arn:aws:iam::123456789012:user/orch-test</Arn><UserId>AIDAORCHTEST</UserId>"
                b"<Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1"
                b"</RequestId></ResponseMetadata></GetCallerIdentityResponse>")
STS_REFUSED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
               b"<Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid."
               b"</Message></Error><RequestId>1</RequestId></ErrorResponse>")


@contextlib.contextmanager
def fake_sts(accept: bool = True) -> Iterator[str]:
    """A local stand-in for STS on 127.0.0.1 (its URL): GetCallerIdentity answers as AWS does
    to known (`accept`) or unknown credentials. Point AWS_ENDPOINT_URL_STS at it so orch's
    credentials check passes or fails without leaving the machine."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Sts(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = STS_IDENTITY if accept else STS_REFUSED
            self.send_response(200 if accept else 403)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Sts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
