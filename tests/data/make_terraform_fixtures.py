#!/usr/bin/env python3
"""Regenerate the saved Terraform JSON in tests/data/ with the real terraform and the sandbox.

The unit tests of orch.tfplan and orch.terraform read these files instead of running
Terraform. Run from the repository root: `python tests/data/make_terraform_fixtures.py`
(about two minutes; needs terraform and the provider, starts and stops its own sandbox).

What each file is (all from the repo's dev stage in a throwaway copy of the project):
  plan-first-deploy.json     show -json of the first plan (everything to create)
  plan-first-deploy.txt      the same plan as Terraform printed it (-no-color), for its Plan: line
  apply-first-deploy.jsonl   apply -auto-approve -json of that first deploy
  apply-no-op.jsonl          the same apply again: nothing to do
  plan-remove-route.json     show -json after removing a route (deletes + a replaced deployment)
  plan-remove-route.txt      the same plan as Terraform printed it
  apply-remove-route.jsonl   apply -auto-approve -json removing that route
  apply-stale-plan.jsonl     apply -json of the saved remove-route plan after that apply: stale
  init-no-provider.jsonl     init -json with a provider mirror that lacks hashicorp/aws
show -json files drop `configuration`, `prior_state` and `resource_drift` (large, unread).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent
DROPPED = ("configuration", "prior_state", "resource_drift")


def run(argv: list[str], cwd: Path, env: dict[str, str], ok=(0,)) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def save_show(tf: list[str], plan: Path, workdir: Path, env: dict[str, str], name: str) -> None:
    data = json.loads(run([*tf, "show", "-json", str(plan)], workdir, env))
    for key in DROPPED:
        data.pop(key, None)
    (DATA / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="orch-fixtures-"))
    project = tmp / "proj"
    project.mkdir()
    shutil.copytree(REPO / "stages", project / "stages")
    shutil.copytree(REPO / "functions", project / "functions")
    (project / "modules").symlink_to(REPO / "modules")
    orch = [sys.executable, "-m", "orch.cli"]
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        first = tmp / "first.tfplan"
        run([*orch, "plan", "dev", "--sandbox", "--out", str(first)], project, env)
        workdir = project / ".orch" / "work" / "sandbox" / "dev"
        tf_env = {**env, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                  "TF_CLI_CONFIG_FILE": str(project / ".orch" / "terraformrc")}
        tf = ["terraform"]
        common = ["-input=false", "-no-color", "-lock-timeout=60s"]
        save_show(tf, first, workdir, tf_env, "plan-first-deploy.json")
        (DATA / "plan-first-deploy.txt").write_text(
            run([*tf, "show", "-no-color", str(first)], workdir, tf_env))
        (DATA / "apply-first-deploy.jsonl").write_text(
            run([*tf, "apply", "-auto-approve", "-json", *common], workdir, tf_env))
        (DATA / "apply-no-op.jsonl").write_text(
            run([*tf, "apply", "-auto-approve", "-json", *common], workdir, tf_env))

        tfvars = workdir / "terraform.tfvars.json"
        original = tfvars.read_text()
        values = json.loads(original)
        extra = dict(values["api"]["routes"][0], method="GET", path="/extra")
        values["api"]["routes"].append(extra)
        tfvars.write_text(json.dumps(values))
        run([*tf, "apply", "-auto-approve", "-json", *common], workdir, tf_env)
        tfvars.write_text(original)
        remove = tmp / "remove.tfplan"
        (DATA / "plan-remove-route.txt").write_text(
            run([*tf, "plan", f"-out={remove}", "-detailed-exitcode", *common], workdir, tf_env, ok=(2,)))
        save_show(tf, remove, workdir, tf_env, "plan-remove-route.json")
        (DATA / "apply-remove-route.jsonl").write_text(
            run([*tf, "apply", "-auto-approve", "-json", *common], workdir, tf_env))
        (DATA / "apply-stale-plan.jsonl").write_text(
            run([*tf, "apply", "-json", *common, str(remove)], workdir, tf_env, ok=(1,)))

        empty = tmp / "empty-mirror"
        empty.mkdir()
        rc = tmp / "empty.rc"
        rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{empty}"\n  }}\n}}\n')
        fresh = tmp / "fresh"
        fresh.mkdir()
        shutil.copy(workdir / "backend.tf", fresh / "backend.tf")
        (DATA / "init-no-provider.jsonl").write_text(
            run([*tf, "init", "-json", *common], fresh, {**tf_env, "TF_CLI_CONFIG_FILE": str(rc)}, ok=(1,)))
    finally:
        subprocess.run([*orch, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for path in sorted(DATA.glob("*.json*")) + sorted(DATA.glob("*.txt")):
        print(f"{path.name}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
