#!/usr/bin/env python3
"""`orch plan --all --sandbox` (dev and prod concurrently) against the same two plans one
after the other (`orch plan dev --sandbox`, then `orch plan prod --sandbox`), in one run.

One throwaway copy of this project and one sandbox for the whole run. Warm-up (not timed):
the sandbox starts, dev and prod are applied (so each plan refreshes deployed resources, as a
pull request's plan does) and planned once (providers installed, working folders ready).
Then rounds alternate which side goes first, so machine load hits both alike. Terraform's
AWS provider is CPU-bound while it plans, so the gain is bounded by the free cores: on a
machine shared with other work, expect less than the cores allow.

Usage: python bench/plan_all.py [--runs N]   (prints medians and the ratio; the last line is JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchproject import throwaway_project

REPO = Path(__file__).resolve().parents[1]
STAGES = ("dev", "prod")


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of each side (default 3)")
    args = parser.parse_args()
    if shutil.which("terraform") is None:
        sys.exit("terraform is not on PATH")
    orch = [sys.executable, "-m", "orch.cli"]
    tmp, project = throwaway_project()
    env = {**os.environ, "NO_COLOR": "1"}
    together = [*orch, "plan", "--stages", ",".join(STAGES), "--sandbox"]
    alone = [[*orch, "plan", stage, "--sandbox"] for stage in STAGES]
    concurrent: list[float] = []
    sequential: list[float] = []
    try:
        print("warm-up (not timed): sandbox, apply and plan dev and prod once ...", flush=True)
        run([*orch, "sandbox", "start"], project, env)
        for stage in STAGES:
            run([*orch, "apply", stage, "--sandbox", "--yes"], project, env)
        run(together, project, env)
        for i in range(args.runs):
            sides = ["concurrent", "sequential"] if i % 2 == 0 else ["sequential", "concurrent"]
            for side in sides:
                if side == "concurrent":
                    concurrent.append(run(together, project, env))
                else:
                    sequential.append(sum(run(cmd, project, env) for cmd in alone))
            print(f"round {i + 1}/{args.runs}: plan --all {concurrent[-1]:.2f} s, "
                  f"dev then prod {sequential[-1]:.2f} s", flush=True)
    finally:
        subprocess.run([*orch, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    m_all, m_seq = statistics.median(concurrent), statistics.median(sequential)
    ratio = m_all / m_seq
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"median of {args.runs}: orch plan --all {m_all:.2f} s, the two plans in sequence {m_seq:.2f} s, "
          f"ratio {ratio:.3f} ({'faster' if ratio < 1 else 'NOT faster'}; {cores} cores, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(json.dumps({"runs": args.runs, "plan_all_median_s": round(m_all, 3), "sequence_median_s": round(m_seq, 3),
                      "ratio": round(ratio, 3), "cores": cores, "load_average": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
