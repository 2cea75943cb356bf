"""Runs one command through orch.terraform.run_process, as orch does, and reports like the
CLI: `OUT `/`ERR ` before each line Terraform wrote, exit 130/143 on a forwarded signal.

Usage: python run_driver.py WORKDIR ARGV...

With DRIVER_SIGNAL_AT_START=SIGTERM (or SIGINT) the driver sends itself that signal as soon
as Terraform has started and printed its first line, before run_process has even recorded
the run: a Ctrl-C in the moment Terraform starts.
"""

import os
import signal
import sys
import time
from pathlib import Path

from orch import terraform
from orch.errors import Interrupted
from orch.terraform import run_process


def _signal_at_start(name: str) -> None:
    popen = terraform.subprocess.Popen

    def started_then_signalled(*args, **kwargs):
        proc = popen(*args, **kwargs)
        log = Path(os.readlink(f"/proc/self/fd/{kwargs['stdout']}"))
        deadline = time.monotonic() + 30
        while b"started" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.Signals[name])
        return proc

    terraform.subprocess.Popen = started_then_signalled


def main() -> int:
    workdir, argv = Path(sys.argv[1]), sys.argv[2:]
    if os.environ.get("DRIVER_SIGNAL_AT_START"):
        _signal_at_start(os.environ["DRIVER_SIGNAL_AT_START"])
    try:
        return run_process(argv, cwd=workdir, env=os.environ,
                           on_stdout=lambda line: print("OUT " + line, end="", flush=True),
                           on_stderr=lambda line: print("ERR " + line, end="", flush=True))
    except Interrupted as exc:
        print(f"INTERRUPTED {exc.message}", flush=True)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
