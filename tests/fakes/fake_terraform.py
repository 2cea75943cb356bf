#!/usr/bin/env python3
"""A stand-in for the terraform binary in process tests: no AWS, no provider.

It prints `started` (stdout) and `note` (stderr), then waits until a line arrives on the
FIFO named by FAKE_TF_GATE, prints `finished` and writes FAKE_TF_DONE (its exit status).
SIGINT, like Terraform's first interrupt, makes it print `stopping gracefully`, wait for
the gate as well (an operation in flight), and exit 1. With FAKE_TF_CHILD set it first
starts a child that outlives it (a provider a killed Terraform leaves behind).
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

interrupted = []


def on_sigint(signum, frame):
    interrupted.append(signum)
    print("stopping gracefully", flush=True)


signal.signal(signal.SIGINT, on_sigint)
if os.environ.get("FAKE_TF_CHILD"):
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    Path(os.environ["FAKE_TF_CHILD"]).write_text(str(child.pid))
print("started", flush=True)
print("note", file=sys.stderr, flush=True)
with open(os.environ["FAKE_TF_GATE"]) as gate:
    while not gate.readline():  # a writer that opened and closed without a line: keep waiting
        pass
code = 1 if interrupted else 0
try:
    print("finished" if not interrupted else "stopped", flush=True)
    print("partial line without newline", end="", flush=True)
finally:
    Path(os.environ["FAKE_TF_DONE"]).write_text(str(code))
sys.exit(code)
