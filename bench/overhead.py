#!/usr/bin/env python3
"""What orch adds to Terraform: a no-op `orch plan dev --sandbox` against a bare `terraform plan`.

Deploys the dev stage of a throwaway copy of this project into the sandbox, then runs both
commands interleaved (orch, terraform, orch, terraform, ...) in the same rendered working
folder, with the same provider installation, and prints both medians and their ratio. Also
times `orch --help` against a bare Typer app. The last line is JSON with a `ratio` key.

Usage: python bench/overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE_TYPER = (
    "import typer\n"
    "app = typer.Typer()\n"
    "@app.command()\n"
    "def plan(stage: str, sandbox: bool = False):\n"
    "    'Plan a stage.'\n"
    "@app.command()\n"
    "def apply(stage: str):\n"
    "    'Apply a stage.'\n"
    "app()\n"
)


def timed(cmd: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != expect:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved pairs to time (default 5)")
    args = parser.parse_args()
    if shutil.which("terraform") is None:
        sys.exit("terraform is not on PATH")

    orch = [sys.executable, "-m", "orch.cli"]
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    project = tmp / "proj"
    project.mkdir()
    shutil.copytree(REPO / "stages", project / "stages")
    shutil.copytree(REPO / "functions", project / "functions")
    (project / "modules").symlink_to(REPO / "modules")
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        print("deploying dev into the sandbox ...", flush=True)
        timed([*orch, "apply", "dev", "--sandbox"], project, env)
        timed([*orch, "plan", "dev", "--sandbox", "--detailed-exitcode"], project, env)  # warm caches

        from orch.terraform import build_args, cli_config, find_binary

        workdir = project / ".orch" / "work" / "sandbox" / "dev"
        tf_env = {**env, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", **cli_config(project / ".orch")}
        # Exactly the flags orch passes to terraform plan.
        bare = build_args(find_binary(), "plan", input=False, detailed_exitcode=True, lock_timeout="60s",
                          no_color=True)
        timed(bare, workdir, tf_env)

        orch_times, tf_times = [], []
        for i in range(args.runs):
            orch_times.append(timed([*orch, "plan", "dev", "--sandbox", "--detailed-exitcode"], project, env))
            tf_times.append(timed(bare, workdir, tf_env))
            print(f"run {i + 1}/{args.runs}: orch plan {orch_times[-1]:.2f} s, "
                  f"terraform plan {tf_times[-1]:.2f} s", flush=True)

        help_times, typer_times = [], []
        for _ in range(7):
            help_times.append(timed([*orch, "--help"], project, env))
            typer_times.append(timed([sys.executable, "-c", BARE_TYPER, "--help"], project, env))
    finally:
        subprocess.run([*orch, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    orch_median, tf_median = statistics.median(orch_times), statistics.median(tf_times)
    help_median, typer_median = statistics.median(help_times), statistics.median(typer_times)
    print(f"no-op plan, median of {args.runs}: orch {orch_median:.2f} s, terraform {tf_median:.2f} s, "
          f"ratio {orch_median / tf_median:.3f} (target <= 1.10)")
    print(f"--help, median of 7: orch {help_median:.3f} s, bare Typer app {typer_median:.3f} s (target < 0.4 s)")
    print(json.dumps({
        "orch_plan_median_s": round(orch_median, 3),
        "terraform_plan_median_s": round(tf_median, 3),
        "orch_help_median_s": round(help_median, 3),
        "bare_typer_help_median_s": round(typer_median, 3),
        "runs": args.runs,
        "ratio": round(orch_median / tf_median, 3),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
