"""Runs one command through orch.terraform.run_process, as orch does, and reports like the
CLI: `OUT `/`ERR ` before each line Terraform wrote, exit 130/143 on a forwarded signal.

Usage: python run_driver.py WORKDIR ARGV...
"""

import os
import sys
from pathlib import Path

from orch.errors import Interrupted
from orch.terraform import run_process


def main() -> int:
    workdir, argv = Path(sys.argv[1]), sys.argv[2:]
    try:
        return run_process(argv, cwd=workdir, env=os.environ,
                           on_stdout=lambda line: print("OUT " + line, end="", flush=True),
                           on_stderr=lambda line: print("ERR " + line, end="", flush=True))
    except Interrupted as exc:
        print(f"INTERRUPTED {exc.message}", flush=True)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
