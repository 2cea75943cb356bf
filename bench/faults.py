#!/usr/bin/env python3
"""Fault injection for issue 12: every scenario of the issue, tried against orch, a table,
and `tried N, held N` as the last line.

Two kinds of scenario:
  live   kills and signals during real applies in the sandbox (real terraform, real provider,
         a real moto server): one throwaway copy of this project, one sandbox, one stage per
         scenario. Each scenario starts `orch apply STAGE --sandbox --yes`, waits until the
         named resource exists in the emulator (the kill point), interrupts orch, then checks
         what the issue asks: a SIGTERM ends orch with its message and exit 143 in bounded
         time; Terraform is never killed by orch's death; no Terraform or provider process of
         the project is left once the stage converged; the next `orch apply --yes` exits 0
         (after `orch unlock` when a killed run left an S3 lock, which orch must name) and
         `orch plan --detailed-exitcode` exits 0.
  tests  the fast cases, which are tests already (reused, not duplicated): one pytest run,
         each scenario held when every test it names ran and passed.

The machine is shared: the live scenarios take one to three minutes each.

Usage: python bench/faults.py [--only SUBSTRING] [--no-live] [--no-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import psutil

REPO = Path(__file__).resolve().parents[1]
KILL_POINT_TIMEOUT = 300.0
"""Seconds a live scenario waits for its kill point before it counts as not held."""
SIGNAL_GRACE = 120.0
"""Seconds orch may take to end after SIGTERM (it waits for Terraform's graceful stop)."""


@dataclass
class Outcome:
    kind: str
    name: str
    how: str
    held: bool
    seconds: float
    note: str = ""


# ---------------------------------------------------------------------------- fast scenarios (tests)

TEST_SCENARIOS: list[tuple[str, str, list[str]]] = [
    ("1 interrupted apply", "kill -9 of orch: Terraform finishes, the next run knows",
     ["tests/test_terraform_process.py::test_kill_9_of_orch_lets_terraform_finish_and_the_next_run_knows"]),
    ("1 interrupted apply", "SIGINT/SIGTERM passed on as SIGINT, exit 130/143 with a message",
     ["tests/test_terraform_process.py::test_a_signal_to_orch_is_passed_on_as_sigint_and_orch_says_so"]),
    ("1 interrupted apply", "SIGINT/SIGTERM as Terraform starts, before orch recorded it: passed on too",
     ["tests/test_terraform_process.py::test_a_signal_as_terraform_starts_is_passed_on_too"]),
    ("1 interrupted apply", "a killed Terraform's provider processes are found and ended",
     ["tests/test_terraform_process.py::test_what_a_killed_terraform_leaves_running_is_found_and_ended"]),
    ("1 interrupted apply", "adoption: only tagged resources, sub-resources, newest API copy",
     ["tests/test_adopt.py"]),
    ("1 interrupted apply", "plan says what it adopts; steps after an interrupted run",
     ["tests/test_planner_recovery.py"]),
    ("2 stale lock", "holder, time and operation named; orch unlock refusals",
     ["tests/test_statelock.py"]),
    ("3 secrets", "never echoed, never rendered, masked in every spelling, TF_LOG warned",
     ["tests/test_secrets.py"]),
    ("4 stage files", "hostile YAML, invalid UTF-8, merge keys, values AWS refuses",
     ["tests/test_hostile_input.py::test_hostile_yaml_is_a_clear_configuration_error",
      "tests/test_hostile_input.py::test_invalid_utf8_in_defaults_fails_orch_stages_clearly",
      "tests/test_hostile_input.py::test_merge_keys_are_supported_and_own_keys_win",
      "tests/test_hostile_input.py::test_values_aws_would_refuse_are_caught_at_config_time"]),
    ("4 stage files", "generated stage files: exit 0 or 3, never a traceback (hypothesis)",
     ["tests/test_stage_fuzz.py"]),
    ("5 packaging", "a source outside the project, a symlink out, an undecodable name",
     ["tests/test_hostile_input.py::test_a_function_source_outside_the_project_is_refused",
      "tests/test_hostile_input.py::test_a_symlink_to_etc_passwd_in_the_function_folder_is_refused",
      "tests/test_hostile_input.py::test_an_undecodable_file_name_is_refused_by_name",
      "tests/test_package.py::test_a_symlink_out_of_the_folder_is_refused_and_nothing_is_read"]),
    ("6 unreachable AWS", "refused, silent endpoint, refused credentials: exit 5 in seconds",
     ["tests/test_unreachable.py"]),
    ("7 sandbox", "a corrupt state.json neither hides nor doubles the daemon",
     ["tests/test_sandbox_lock.py::test_a_damaged_state_json_neither_hides_nor_doubles_the_daemon",
      "tests/test_sandbox_lock.py::test_stop_never_signals_the_pid_a_stale_state_json_names",
      "tests/test_sandbox_lock.py::test_concurrent_starts_share_one_daemon"]),
    ("8 gateway", "partial bodies time out with 400, malformed framing, deep JSON",
     ["tests/gateway/test_http.py"]),
    ("8 handler", "50 MB of output, setsid children, log rotation",
     ["tests/gateway/test_runaway.py"]),
]


def run_tests(scenarios: list[tuple[str, str, list[str]]]) -> list[Outcome]:
    """One pytest run over every test the scenarios name; a scenario holds when each of its
    tests ran and passed (a skipped or missing test does not hold)."""
    nodes = sorted({node for _, _, ids in scenarios for node in ids})
    with tempfile.TemporaryDirectory(prefix="orch-faults-") as tmp:
        report = Path(tmp) / "junit.xml"
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *nodes], cwd=REPO, capture_output=True, text=True)
        seconds = time.monotonic() - started
        cases = []  # (file path, test name, passed)
        if report.is_file():
            for case in ET.parse(report).iter("testcase"):
                path = case.get("classname", "").replace(".", "/")
                passed = not any(child.tag in ("failure", "error", "skipped") for child in case)
                cases.append((path, case.get("name", ""), passed))
    outcomes = []
    for kind, name, ids in scenarios:
        held, missing = True, []
        for node in ids:
            file, _, test = node.partition("::")
            stem = file.removesuffix(".py")
            mine = [c for c in cases if c[0].endswith(stem) and (not test or c[1].split("[")[0] == test)]
            if not mine or not all(passed for _, _, passed in mine):
                held = False
                missing.append(node.rsplit("/", 1)[-1])
        outcomes.append(Outcome(kind, name, "tests", held, seconds / len(scenarios),
                                "" if held else "failed or missing: " + ", ".join(missing)))
    return outcomes


# ---------------------------------------------------------------------------- live scenarios (sandbox)

@dataclass
class Live:
    kind: str
    name: str
    stage: str
    point: str  # role | function | api: the resource whose existence is the kill point
    how: str  # kill9 (orch alone) | kill9-tree (orch, Terraform, provider) | sigterm
    s3: bool = False
    notes: list[str] = field(default_factory=list)


LIVE = [
    Live("1 interrupted apply", "kill -9 of orch alone once the function exists (local state)", "ka", "function",
         "kill9"),
    Live("1 interrupted apply", "kill -9 of orch, Terraform and provider once the role exists (local state)", "kb",
         "role", "kill9-tree"),
    Live("1 interrupted apply", "kill -9 of orch, Terraform and provider once the API exists (local state)", "kc",
         "api", "kill9-tree"),
    Live("1 interrupted apply", "SIGTERM of orch once the function exists (local state)", "kd", "function",
         "sigterm"),
    Live("1 interrupted apply", "SIGTERM of orch once the API exists (S3 state)", "ke", "api", "sigterm", s3=True),
    Live("2 stale lock", "kill -9 of everything once the function exists (S3 state): lock named, orch unlock",
         "kf", "function", "kill9-tree", s3=True),
]


class Project:
    """A throwaway copy of this project with one running sandbox."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "proj"
        self.dir.mkdir(parents=True)
        shutil.copytree(REPO / "stages", self.dir / "stages")
        shutil.copytree(REPO / "functions", self.dir / "functions",
                        ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        (self.dir / "modules").symlink_to(REPO / "modules")
        self.env = {**os.environ, "NO_COLOR": "1"}

    def orch(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orch.cli", *args], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "orch.cli", *args], cwd=self.dir, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)

    def client(self, service: str):
        state = json.loads((self.dir / ".orch" / "sandbox" / "state.json").read_text())
        return boto3.client(service, endpoint_url=state["endpoint"], region_name="ap-northeast-2",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def exists(self, point: str, stage: str) -> bool:
        if point == "function":
            names = [f["FunctionName"] for f in self.client("lambda").list_functions()["Functions"]]
        elif point == "role":
            names = [r["RoleName"] for r in self.client("iam").list_roles()["Roles"]]
        else:
            names = [a["name"] for a in self.client("apigateway").get_rest_apis()["items"]]
        return any(name.endswith(f"-{stage}") or f"-{stage}-" in name for name in names)

    def terraform_processes(self) -> list[psutil.Process]:
        """Terraform and provider processes working in this project's folders."""
        found = []
        for proc in psutil.process_iter(["name", "cwd", "cmdline"]):
            try:
                cwd, cmd = proc.info["cwd"] or "", " ".join(proc.info["cmdline"] or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if "terraform" in cmd and cwd.startswith(str(self.dir)):
                found.append(proc)
        return found


def wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if condition():
                return True
        except Exception:  # noqa: BLE001 - the emulator may not answer yet
            pass
        time.sleep(0.2)  # polling the emulator for the kill point, bounded by the deadline
    return False


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL orch and what it started (Terraform, its provider), not the sandbox daemon."""
    tree = [psutil.Process(proc.pid), *(p for p in psutil.Process(proc.pid).children(recursive=True)
                                         if "orch.sandboxd" not in " ".join(p.cmdline()))]
    for p in tree:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(tree, timeout=30)


def run_live(project: Project, case: Live) -> Outcome:
    started = time.monotonic()
    notes: list[str] = []
    if case.s3:
        (project.dir / "stages" / f"{case.stage}.yaml").write_text(
            f"backend: {{type: s3, bucket: orch-faults-{case.stage}}}\n")
    else:
        (project.dir / "stages" / f"{case.stage}.yaml").write_text("tags:\n  purpose: faults\n")
    proc = project.start("apply", case.stage, "--sandbox", "--yes")
    try:
        if not wait_for(lambda: project.exists(case.point, case.stage), KILL_POINT_TIMEOUT, proc):
            out = proc.stdout.read() if proc.poll() is not None else ""
            return Outcome(case.kind, case.name, "live", False, time.monotonic() - started,
                           f"the kill point never came (apply exit {proc.poll()}): {out[-200:]!r}")
        if case.how == "sigterm":
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=SIGNAL_GRACE)
            except subprocess.TimeoutExpired:
                notes.append(f"orch still ran {SIGNAL_GRACE:.0f} s after SIGTERM")
                kill_tree(proc)
                code = None
            output = proc.stdout.read()
            if code is not None and code != 143:
                notes.append(f"SIGTERM: exit {code}, not 143")
            if code == 143 and "SIGTERM" not in output:
                notes.append("SIGTERM: orch did not say what stopped it")
        elif case.how == "kill9":
            tree = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            proc.wait()
            if not any(p.is_running() for p in tree):
                notes.append("Terraform died with orch")
        else:
            kill_tree(proc)
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    apply = project.orch("apply", case.stage, "--sandbox", "--yes")
    if case.s3 and case.how == "kill9-tree":
        match = re.search(r"orch unlock \S+ (\S+)", apply.stdout + apply.stderr)
        if apply.returncode == 0:
            notes.append("a kill -9 of Terraform left no lock to name (it held)")
        elif match is None:
            notes.append(f"apply after the kill: exit {apply.returncode} without naming `orch unlock`")
        else:
            unlock = project.orch("unlock", case.stage, match.group(1), "--sandbox", "--yes")
            if unlock.returncode != 0:
                notes.append(f"orch unlock: exit {unlock.returncode}: {unlock.stderr[-200:]!r}")
            apply = project.orch("apply", case.stage, "--sandbox", "--yes")
    if apply.returncode != 0:
        notes.append(f"next apply: exit {apply.returncode}: {(apply.stderr or apply.stdout)[-300:]!r}")
    plan = project.orch("plan", case.stage, "--sandbox", "--detailed-exitcode")
    if plan.returncode != 0:
        notes.append(f"plan --detailed-exitcode: exit {plan.returncode}")
    left = project.terraform_processes()
    if left:
        notes.append(f"{len(left)} Terraform/provider processes left: {[p.pid for p in left]}")
    return Outcome(case.kind, case.name, "live", not notes, time.monotonic() - started, "; ".join(notes))


def live_outcomes(cases: list[Live]) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="orch-faults-") as tmp:
        project = Project(Path(tmp))
        try:
            started = project.orch("sandbox", "start")
            if started.returncode != 0:
                return [Outcome(c.kind, c.name, "live", False, 0.0, "the sandbox did not start") for c in cases]
            for case in cases:
                outcome = run_live(project, case)
                print(f"  {'held' if outcome.held else 'FAILED'}: {case.name} ({outcome.seconds:.0f} s)",
                      file=sys.stderr, flush=True)
                outcomes.append(outcome)
        finally:
            project.orch("sandbox", "stop")
            for proc in project.terraform_processes():
                proc.kill()
    return outcomes


# ---------------------------------------------------------------------------- the table

def table(outcomes: list[Outcome]) -> list[str]:
    rows = [("kind", "scenario", "how", "result", "s", "note")]
    rows += [(o.kind, o.name, o.how, "held" if o.held else "FAILED", f"{o.seconds:.0f}", o.note[:160])
             for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + ("  " + r[5] if r[5] else "")
            for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Only scenarios whose name contains this text.")
    parser.add_argument("--no-live", action="store_true", help="Skip the live (sandbox) scenarios.")
    parser.add_argument("--no-tests", action="store_true", help="Skip the scenarios that are tests.")
    args = parser.parse_args(argv)
    outcomes: list[Outcome] = []
    if not args.no_tests:
        chosen = [s for s in TEST_SCENARIOS if args.only in s[1]]
        if chosen:
            outcomes += run_tests(chosen)
    if not args.no_live:
        chosen_live = [c for c in LIVE if args.only in c.name]
        if chosen_live:
            outcomes += live_outcomes(chosen_live)
    for line in table(outcomes):
        print(line)
    held = sum(o.held for o in outcomes)
    print(f"tried {len(outcomes)}, held {held}")
    return 0 if held == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
