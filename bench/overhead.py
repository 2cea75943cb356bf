#!/usr/bin/env python3
"""What orch costs on top of Terraform: a first deploy and a no-change apply, against bare
`terraform init` + `terraform apply -auto-approve` in the same rendered folder.

One throwaway copy of this project, one sandbox for the whole run, runs interleaved
(orch, terraform, orch, terraform, ...) so machine load hits both sides alike.

Like for like:
  first deploy   orch: `orch apply dev --sandbox --yes` in a project whose working folder was
                 removed: Python start-up, config, handler check, package, render, provider
                 config, `terraform init`, one `terraform apply -auto-approve -json`, outputs.
                 bare: the folder orch rendered, with .terraform/, the lock file and the
                 state removed: `terraform init -input=false` then
                 `terraform apply -auto-approve -input=false`, with the same provider mirror.
                 Each run starts from no resources: the stage is destroyed between runs
                 (not timed).
  no change      orch: `orch apply dev --sandbox --yes` with nothing to change;
                 bare: `terraform apply -auto-approve -input=false` in orch's working folder.
The sandbox is running before the first timed run on both sides (its start is not timed).

Usage: python bench/overhead.py [--runs N]   (prints medians, ratios; the last line is JSON)
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
TARGET = 1.10


def run(cmd: list[str], cwd: Path, env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != expect:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}, expected {expect}:\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved pairs per comparison (default 3)")
    args = parser.parse_args()
    terraform = shutil.which("terraform")
    if terraform is None:
        sys.exit("terraform is not on PATH")

    orch = [sys.executable, "-m", "orch.cli"]
    tmp, project = throwaway_project()
    env = {**os.environ, "NO_COLOR": "1"}
    workdir = project / ".orch" / "work" / "sandbox" / "dev"
    apply = [*orch, "apply", "dev", "--sandbox", "--yes"]
    destroy = [*orch, "destroy", "dev", "--sandbox", "--yes"]
    first_orch: list[float] = []
    first_bare: list[float] = []
    noop_orch: list[float] = []
    noop_bare: list[float] = []
    try:
        print("starting the sandbox and deploying dev once (warm-up, not timed) ...", flush=True)
        run([*orch, "sandbox", "start"], project, env)
        run(apply, project, env)
        tf_env = {**env, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                  "TF_CLI_CONFIG_FILE": str(project / ".orch" / "terraformrc")}
        if not Path(tf_env["TF_CLI_CONFIG_FILE"]).is_file():
            tf_env.pop("TF_CLI_CONFIG_FILE")  # orch used the user's own CLI config: so does bare
        bare_init = [terraform, "init", "-input=false", "-no-color"]
        bare_apply = [terraform, "apply", "-auto-approve", "-input=false", "-no-color"]

        for i in range(args.runs):
            run(destroy, project, env)
            shutil.rmtree(workdir)
            first_orch.append(run(apply, project, env))
            run(destroy, project, env)
            for name in (".terraform", ".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup"):
                path = workdir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            started = time.perf_counter()
            run(bare_init, workdir, tf_env)
            run(bare_apply, workdir, tf_env)
            first_bare.append(time.perf_counter() - started)
            print(f"first deploy {i + 1}/{args.runs}: orch {first_orch[-1]:.2f} s, "
                  f"terraform init+apply {first_bare[-1]:.2f} s", flush=True)

        run(apply, project, env)  # orch's stamps and epoch back in place after the bare runs
        for i in range(args.runs):
            noop_orch.append(run(apply, project, env))
            noop_bare.append(run(bare_apply, workdir, tf_env))
            print(f"no-change apply {i + 1}/{args.runs}: orch {noop_orch[-1]:.2f} s, "
                  f"terraform apply {noop_bare[-1]:.2f} s", flush=True)
    finally:
        subprocess.run([*orch, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    result = {"runs": args.runs, "load_average": os.getloadavg()[0]}
    for label, ours, bare in (("first_deploy", first_orch, first_bare), ("no_change_apply", noop_orch, noop_bare)):
        m_ours, m_bare = statistics.median(ours), statistics.median(bare)
        ratio = m_ours / m_bare
        result[f"{label}_orch_median_s"] = round(m_ours, 3)
        result[f"{label}_terraform_median_s"] = round(m_bare, 3)
        result[f"{label}_ratio"] = round(ratio, 3)
        verdict = "ok" if ratio <= TARGET else "OVER TARGET"
        print(f"{label.replace('_', ' ')}, median of {args.runs}: orch {m_ours:.2f} s, terraform {m_bare:.2f} s, "
              f"ratio {ratio:.3f} (target <= {TARGET}: {verdict})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
