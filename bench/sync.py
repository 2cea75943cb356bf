#!/usr/bin/env python3
"""A code change released two ways, same run: `orch sync dev --sandbox` (no Terraform) and
`orch apply dev --sandbox` (Terraform), with the ratio (issue 11, acceptance 4).

One throwaway copy of this project, one sandbox for the whole run, started with
`--no-reload` so its gateway serves what was released, not the source folder: after every
timed command the invoke URL must answer with the new code, which proves the release took
effect. Each round edits the handler's answer, then:

  sync   `orch sync dev --sandbox`: package, update the function's code, publish a version,
         move the alias, tell the gateway, run the smoke checks (Terraform's state is left
         behind);
  apply  `orch apply dev --sandbox`: Terraform releases the same code change (its state still
         has the previous code, so it updates the function and moves the alias), converging,
         then the same smoke checks and a release record.

Before the rounds, `orch sync prod --sandbox` must be refused (exit 3: prod is protected).

Wall-clock time of the whole command, Python start-up included, on both sides.

Usage: python bench/sync.py [--runs N]   (prints medians and the ratio; the last line is JSON)
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
import urllib.request
from pathlib import Path

from benchproject import throwaway_project

SYNC_TARGET_S = 10.0
EDIT = ('answer: dict[str, Any] = {"stage": stage,', 'answer: dict[str, Any] = {{"bench": {n}, "stage": stage,')


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def answer(url: str) -> dict:
    request = urllib.request.Request(url, data=b'{"a": 1}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (each: one sync, one apply; default 3)")
    args = parser.parse_args()
    if shutil.which("terraform") is None:
        sys.exit("terraform is not on PATH")

    orch = [sys.executable, "-m", "orch.cli"]
    tmp, project = throwaway_project()
    handler = project / "functions" / "loopback" / "handler.py"
    original = handler.read_text()
    if EDIT[0] not in original:
        sys.exit(f"{handler} changed: update EDIT in {__file__}")
    env = {**os.environ, "NO_COLOR": "1"}
    sync_s: list[float] = []
    apply_s: list[float] = []
    try:
        print("starting the sandbox (no hot reload) and deploying dev once (warm-up, not timed) ...", flush=True)
        run([*orch, "sandbox", "start", "--no-reload"], project, env)
        _, out = run([*orch, "apply", "dev", "--sandbox"], project, env)
        url = out.strip().splitlines()[-1]
        # a protected stage is refused before any work (exit 3), not timed
        refused = subprocess.run([*orch, "sync", "prod", "--sandbox"], cwd=project, env=env, capture_output=True,
                                 text=True)
        if refused.returncode != 3 or "stage 'prod' is protected" not in refused.stderr:
            sys.exit(f"orch sync prod was not refused (exit {refused.returncode}):\n{refused.stderr[-2000:]}")
        print("orch sync prod --sandbox: refused (exit 3, stage 'prod' is protected)", flush=True)
        for i in range(args.runs):
            n = i + 1
            handler.write_text(original.replace(EDIT[0], EDIT[1].format(n=n)))
            seconds, _ = run([*orch, "sync", "dev", "--sandbox"], project, env)
            sync_s.append(seconds)
            if answer(url).get("bench") != n:
                sys.exit(f"round {n}: after orch sync the invoke URL does not answer with the new code")
            # the same change through Terraform: its state still has the code before the sync
            seconds, _ = run([*orch, "apply", "dev", "--sandbox"], project, env)
            apply_s.append(seconds)
            if answer(url).get("bench") != n:
                sys.exit(f"round {n}: after orch apply the invoke URL does not answer with the code")
            print(f"round {n}/{args.runs}: orch sync {sync_s[-1]:.2f} s, orch apply {apply_s[-1]:.2f} s", flush=True)
    finally:
        subprocess.run([*orch, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    m_sync, m_apply = statistics.median(sync_s), statistics.median(apply_s)
    ratio = m_apply / m_sync
    verdict = "ok" if m_sync < SYNC_TARGET_S else "OVER TARGET"
    print(f"median of {args.runs}: orch sync {m_sync:.2f} s (target < {SYNC_TARGET_S:.0f} s: {verdict}), "
          f"orch apply {m_apply:.2f} s; apply takes {ratio:.1f}x as long as sync")
    print(json.dumps({
        "runs": args.runs,
        "sync_prod_refused": True,
        "load_average": round(os.getloadavg()[0], 2),
        "sync_median_s": round(m_sync, 3),
        "apply_median_s": round(m_apply, 3),
        "apply_over_sync": round(ratio, 2),
        "sync_s": [round(s, 3) for s in sync_s],
        "apply_s": [round(s, 3) for s in apply_s],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
