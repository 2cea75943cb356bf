"""`orch ci` end to end with fake stages (no Terraform): what it prints for each build, the
pull-request summary and its one comment on a local GitHub receiver, the Slack message on a
local webhook (200 and 500), and the commit check against a real local bare repository."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import receivers
from orch.ci.run import CiOptions, CiRun
from orch.ci.summary import MARKER
from orch.deploy import ApplyOutcome, PlanOutcome
from orch.errors import ExitCode, Refused, TerraformError
from orch.package import build_package
from orch.releases import Release, Verdict, failure_reason
from orch.reporter import Console
from orch.smoke import CheckResult, SmokeReport
from orch.tfplan import PlanView
from test_ci_decide import SHA, github, travis

DATA = Path(__file__).resolve().parent / "data"
FUNCTION = "module.stack.module.lambda.aws_lambda_function.this"
STAGE_RESOURCE = "module.stack.module.stage.aws_api_gateway_stage.this"


@pytest.fixture(autouse=True)
def no_ambient_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own CI variables must not leak into a simulated build."""
    import os

    for key in list(os.environ):
        if key.startswith(("TRAVIS", "GITHUB_", "SLACK_")):
            monkeypatch.delenv(key)


# ---------------------------------------------------------------------------- `orch ci --dry-run --json`


@pytest.mark.parametrize("provider", ["travis", "github"])
@pytest.mark.parametrize(("kind", "expected"), [
    ("pr", [("plan", "dev", "aws"), ("plan", "prod", "aws")]),
    ("fork-pr", [("plan", "dev", "sandbox"), ("plan", "prod", "sandbox")]),
    ("main", [("apply", "dev", "aws"), ("smoke", "dev", "aws")]),
    ("tag", [("apply", "prod", "aws"), ("smoke", "prod", "aws")]),
    ("other", []),
])
def test_dry_run_json_prints_the_actions(provider: str, kind: str, expected: list, project: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from orch.cli import main

    env = travis(kind) if provider == "travis" else github(kind, tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = main(["ci", "--dry-run", "--json", "--project", str(project)])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert [(a["command"], a["stage"], a["target"]) for a in data["actions"]] == expected
    assert not (project / ".orch").exists()  # nothing was run, built or started
    if kind == "fork-pr":
        assert "skipping the AWS plan of dev, prod" in err
    if kind == "other":
        assert "nothing to do" in err


def test_a_project_from_orch_init_has_ci_that_orch_ci_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    from helpers import REPO
    from orch.cli import main
    from orch.init import init_project

    written = {p.relative_to(tmp_path / "demo").as_posix() for p in init_project(tmp_path / "demo")}
    assert {".travis.yml", ".github/workflows/orch.yml", "stages/ci.yaml", "scripts/install-terraform.sh"} <= written
    assert (tmp_path / "demo" / "stages" / "ci.yaml").read_text() == (REPO / "stages" / "ci.yaml").read_text()
    for key, value in travis("tag").items():
        monkeypatch.setenv(key, value)
    assert main(["ci", "--dry-run", "--json", "--project", str(tmp_path / "demo")]) == 0
    assert json.loads(capsys.readouterr().out)["actions"][0] == {"command": "apply", "stage": "prod",
                                                                  "target": "aws"}


# ---------------------------------------------------------------------------- fakes for the stages


@dataclass
class Package:
    path: Path
    sha256_hex: str


def zip_of(folder: Path, store: Path) -> Package:
    built = build_package(folder, "python3.12", store, name="fn")
    return Package(built.path, built.sha256_hex)


class FakeWork:
    """StageWork's shape: planner()/applier() answering with prepared outcomes."""

    def __init__(self, plans: dict[str, Any] | None = None, applies: dict[str, Any] | None = None) -> None:
        self.plans = plans or {}
        self.applies = applies or {}
        self.calls: list[tuple[str, str]] = []

    def planner(self, **kw: Any):
        def plan(stage, reporter):
            self.calls.append(("plan", stage))
            value = self.plans[stage]
            if isinstance(value, Exception):
                raise value
            return 0, f"plan: {value.plan.text()}", value
        return plan

    def applier(self):
        def apply(stage, reporter):
            self.calls.append(("apply", stage))
            value = self.applies[stage]
            if isinstance(value, Exception):
                raise value
            code = ExitCode.SMOKE if getattr(value, "verdict", None) and not value.verdict.ok else ExitCode.OK
            return code, "deployed", value
        return apply


def plan_changing_the_function(deployed: Package) -> PlanView:
    """A real saved plan (tests/data), its function and API stage updated, deployed from `deployed`."""
    import base64

    data = json.loads((DATA / "plan-remove-route.json").read_text())
    for item in data["resource_changes"]:
        if item["address"] in (FUNCTION, STAGE_RESOURCE):
            item["change"]["actions"] = ["update"]
        if item["address"] == FUNCTION:
            item["change"]["before"]["code_sha256"] = base64.b64encode(bytes.fromhex(deployed.sha256_hex)).decode()
    return PlanView.from_show_json(data)


def run(project: Path, env: dict[str, str], work: FakeWork, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    ci = CiRun(project, env, Console(out, err), CiOptions(**options), stage_work=lambda **kw: work)
    return ci.run(), out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- pull requests


def test_pr_summary_lists_changed_resources_and_package_files_and_one_comment_is_updated(
        project: Path, tmp_path: Path) -> None:
    """Acceptance 2, without Terraform: a changed handler and stage variable."""
    source = tmp_path / "fn"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (source / "data.bin").write_bytes(b"\0\1\2")
    store = project / ".orch" / "packages"
    deployed = zip_of(source, store)
    (source / "handler.py").write_text("def handler(event, context):\n    # greet\n    return {'e': event}\n")
    (source / "notes.txt").write_text("new file\n")
    new = zip_of(source, store)
    plan = plan_changing_the_function(deployed)
    work = FakeWork(plans={"dev": PlanOutcome(plan, None, new), "prod": PlanOutcome(plan, None, new)})
    with receivers.github() as gh:
        env = travis("pr") | {"GITHUB_TOKEN": "ghp_testtoken", "GITHUB_API_URL": gh.url}
        code, out, err = run(project, env, work)
        assert code == 0, err
        summary = (project / ".orch" / "ci" / "plan-summary.md").read_text()
        assert summary.startswith(MARKER) and summary in out
        assert f"`~ {FUNCTION}`" in summary and f"`~ {STAGE_RESOURCE}`" in summary
        assert "| `handler.py` | changed |" in summary and "+2 −1 lines" in summary
        assert "| `notes.txt` | added |" in summary and "| `data.bin`" not in summary  # unchanged files left out
        assert f"`{deployed.sha256_hex[:12]}` → `{new.sha256_hex[:12]}`" in summary
        assert "pull-request comment created" in err
        comments = gh.server.RequestHandlerClass.comments
        assert len(comments) == 1 and comments[0]["issue"] == 12 and comments[0]["body"] == summary
        sent = [r for r in gh.requests if r[0] == "POST"]
        assert sent[0][1] == "/repos/team/api/issues/12/comments"
        assert sent[0][2]["Authorization"] == "Bearer ghp_testtoken"

        # another push to the pull request: the same comment is updated, not a second one
        plan_b = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
        work.plans = {"dev": PlanOutcome(plan_b, None, new), "prod": PlanOutcome(plan_b, None, new)}
        code, out, err = run(project, env, work)
        assert code == 0 and "pull-request comment updated" in err
        assert len(comments) == 1 and "not deployed yet: every file is new" in comments[0]["body"]
        assert [r[0] for r in gh.requests] == ["GET", "POST", "GET", "PATCH"]


def test_the_comment_is_found_on_a_later_page(project: Path, tmp_path: Path) -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
    work = FakeWork(plans={"dev": PlanOutcome(plan, None, None), "prod": PlanOutcome(plan, None, None)})
    with receivers.github() as gh:
        comments = gh.server.RequestHandlerClass.comments
        for i in range(3):
            comments.append({"id": i, "issue": 12, "body": f"a person's comment {i}", "html_url": ""})
        comments.append({"id": 99, "issue": 12, "body": MARKER + "\nold summary", "html_url": ""})
        env = github("pr", tmp_path) | {"GITHUB_TOKEN": "t", "GITHUB_API_URL": gh.url}
        code, _, err = run(project, env, work)
    assert code == 0 and "pull-request comment updated" in err
    assert comments[-1]["id"] == 99 and "old summary" not in comments[-1]["body"] and len(comments) == 4


def test_a_failed_plan_is_in_the_summary_and_the_exit_code_a_failed_comment_is_not(project: Path) -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
    work = FakeWork(plans={"dev": PlanOutcome(plan, None, None),
                           "prod": TerraformError("terraform plan failed (exit 1) in prod.")})
    env = travis("pr") | {"GITHUB_TOKEN": "t", "GITHUB_API_URL": "http://127.0.0.1:9"}  # nothing listens there
    code, out, err = run(project, env, work)
    assert code == ExitCode.TERRAFORM
    assert "The plan failed: terraform error" in out and "| prod | aws | - | - | - | - | plan failed |" in out
    assert "the pull-request comment failed" in err


def test_fork_pr_plans_in_the_sandbox_with_the_skip_line_and_no_token_no_comment(project: Path, tmp_path: Path) -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
    seen: dict[str, Any] = {}
    work = FakeWork(plans={"dev": PlanOutcome(plan, None, None), "prod": PlanOutcome(plan, None, None)})

    def factory(**kw: Any) -> FakeWork:
        seen.update(kw)
        return work

    out, err = io.StringIO(), io.StringIO()
    code = CiRun(project, travis("fork-pr"), Console(out, err), CiOptions(), stage_work=factory).run()
    assert code == 0 and seen == {"sandbox": True, "yes": False}
    assert "skipping the AWS plan of dev, prod" in err.getvalue() and "> skipping the AWS plan" in out.getvalue()
    assert "no GITHUB_TOKEN" in err.getvalue()
    assert sorted(work.calls) == [("plan", "dev"), ("plan", "prod")]


# ---------------------------------------------------------------------------- applies and Slack


def deployed_outcome(changed: bool = True, verdict: Verdict | None = None) -> ApplyOutcome:
    plan = PlanView.from_show_json(json.loads((DATA / ("plan-first-deploy.json" if changed else
                                                        "plan-remove-route.json")).read_text()))
    return ApplyOutcome(plan, changed, {"invoke_url": "http://127.0.0.1:1/restapis/abc/dev/_user_request_"},
                        verdict=verdict)


def report(passed: int, total: int = 3, purpose: str = "release") -> SmokeReport:
    """A real orch.smoke.SmokeReport: the first `passed` of `total` checks passed."""
    checks = tuple(CheckResult(f"check {i}", "http", i < passed, "ok" if i < passed else "answered 502", 2, 0.1)
                   for i in range(total))
    return SmokeReport("dev", "aws", "http://127.0.0.1:1/", checks, 0.4, 60, "2026-12-01T00:00:00Z", purpose)


def release(version: str, passed: bool) -> Release:
    return Release(f"r{version}", "dev", "aws", "apply", "2026-12-01T00:00:00Z", "ab" * 32, version, "d1",
                   passed=passed)


def verdict(status: str) -> Verdict:
    """A real orch.releases.Verdict as Deployer.apply returns it for each way a release ends."""
    failing = report(1)
    reason = failure_reason(failing)
    if status == "passed":
        return Verdict("passed", "dev", "aws", release("5", True), report(3))
    if status == "unchecked":
        return Verdict("unchecked", "dev", "aws", release("5", True))
    if status == "failed":
        return Verdict("failed", "dev", "aws", release("5", False), failing, reason=reason)
    recheck = report(3 if status == "rolled_back" else 0, purpose="rollback")
    return Verdict(status, "dev", "aws", release("5", False), failing, rolled_back_to=release("4", True),
                   recheck=recheck, reason=reason)


def fields(payload: dict) -> dict[str, str]:
    found = {}
    for block in payload["blocks"]:
        for item in block.get("fields", []):
            name, _, value = item["text"].partition("\n")
            found[name.strip("*")] = value
    return found


def test_push_to_main_applies_dev_and_slack_gets_every_field(project: Path) -> None:
    work = FakeWork(applies={"dev": deployed_outcome(verdict=verdict("passed"))})
    with receivers.slack(200) as hook:
        env = travis("main") | {"SLACK_WEBHOOK_URL": hook.url + "/services/T000/B000/XXXX"}
        code, out, err = run(project, env, work, allow_stale_commit=True)
    assert code == 0, err
    assert work.calls == [("apply", "dev")]
    (method, path, _, payload), = hook.requests
    assert (method, path) == ("POST", "/services/T000/B000/XXXX")
    got = fields(payload)
    assert got["Stage"] == "dev (aws)" and got["Outcome"] == "deployed" and got["Commit"] == SHA[:12]
    assert got["Trigger"].startswith("push to main") and got["Invoke URL"].endswith("/restapis/abc/dev/_user_request_")
    assert got["Duration"].endswith(" s")
    assert got["Smoke"] == "passed" and "smoke checks passed: 3/3" in json.dumps(payload)
    assert "orch: stage dev: deployed: smoke checks passed: 3/3" in out
    assert "Slack notified" in err


@pytest.mark.parametrize(("status", "outcome", "smoke"), [
    ("rolled_back", "rolled back", "rolled back to version 4 (package abababababab…); after it smoke checks "
     "passed: 3/3"),
    ("rollback_failed", "rollback failed", "after it smoke checks FAILED: 0/3"),
    ("failed", "smoke checks failed", "nothing earlier passed its checks, so the release stays"),
])
def test_a_smoke_failure_is_posted_printed_and_keeps_its_exit_code(status: str, outcome: str, smoke: str,
                                                                   project: Path, tmp_path: Path) -> None:
    """Acceptance 4 (smoke failure): the verdict of the apply is in the printed apply report,
    the Slack payload (outcome, smoke result, the rollback) and the exit code (6)."""
    work = FakeWork(applies={"dev": deployed_outcome(verdict=verdict(status))})
    with receivers.slack(200) as hook:
        env = github("main", tmp_path) | {"SLACK_WEBHOOK_URL": hook.url + "/hook"}
        code, out, err = run(project, env, work, allow_stale_commit=True)
    assert code == ExitCode.SMOKE
    payload = hook.requests[0][3]
    got = fields(payload)
    assert got["Outcome"] == outcome and got["Smoke"] == status.replace("_", " ")
    assert "smoke checks FAILED: 1/3" in json.dumps(payload) and smoke in json.dumps(payload, ensure_ascii=False)
    assert "check 1: answered 502" in json.dumps(payload)  # why: the first failing check
    assert f"orch: stage dev: {outcome}: smoke checks FAILED: 1/3" in out and smoke in out


def test_an_apply_without_smoke_checks_says_so(project: Path) -> None:
    work = FakeWork(applies={"dev": deployed_outcome(verdict=verdict("unchecked"))})
    with receivers.slack(200) as hook:
        code, out, _ = run(project, travis("main") | {"SLACK_WEBHOOK_URL": hook.url + "/h"}, work,
                           allow_stale_commit=True)
    assert code == 0 and "not run (--no-smoke)" in out
    assert fields(hook.requests[0][3])["Smoke"] == "unchecked"


@pytest.mark.parametrize("result", ["ok", "smoke", "error"])
def test_a_webhook_answering_500_leaves_the_exit_code_alone(project: Path, result: str) -> None:
    outcome: Any = {"ok": deployed_outcome(verdict=verdict("passed")),
                    "smoke": deployed_outcome(verdict=verdict("failed")),
                    "error": TerraformError("terraform apply failed (exit 1) in dev.")}[result]
    expected = {"ok": 0, "smoke": ExitCode.SMOKE, "error": ExitCode.TERRAFORM}[result]
    with receivers.slack(500) as hook:
        url = hook.url + "/services/T1/B1/secretpart"
        code, out, err = run(project, travis("main") | {"SLACK_WEBHOOK_URL": url}, FakeWork(applies={"dev": outcome}),
                             allow_stale_commit=True)
    assert code == expected
    assert len(hook.requests) == 1 and "Slack notification failed" in err and "HTTP 500" in err
    assert "secretpart" not in out + err
    if result == "error":
        assert fields(hook.requests[0][3])["Outcome"] == "apply failed"


def test_an_unreachable_webhook_is_reported_too(project: Path) -> None:
    work = FakeWork(applies={"dev": deployed_outcome()})
    env = travis("main") | {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/T/B/hidden"}
    code, out, err = run(project, env, work, allow_stale_commit=True)
    assert code == 0 and "Slack notification failed" in err and "hidden" not in out + err


# ---------------------------------------------------------------------------- the commit check, real git


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def repo(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The project as a clone whose `origin` is a local bare repository, one commit pushed."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "stages")
    git(project, "commit", "-q", "-m", "first")
    git(project, "remote", "add", "origin", str(bare))
    git(project, "push", "-q", "origin", "main")
    return project, bare


def advance(project: Path, message: str) -> str:
    (project / "stages" / "note.txt").write_text(message)
    git(project, "add", "stages")
    git(project, "commit", "-q", "-m", message)
    git(project, "push", "-q", "origin", "main")
    return git(project, "rev-parse", "HEAD")


def test_apply_of_the_branch_head_goes_ahead(repo: tuple[Path, Path]) -> None:
    project, _ = repo
    head = git(project, "rev-parse", "HEAD")
    work = FakeWork(applies={"dev": deployed_outcome()})
    code, _, err = run(project, travis("main", TRAVIS_COMMIT=head), work)
    assert code == 0 and work.calls == [("apply", "dev")] and f"{head[:12]} is still main on origin" in err


def test_apply_from_a_build_whose_commit_is_not_the_head_is_refused(repo: tuple[Path, Path]) -> None:
    """Acceptance 6: a restarted old build. --allow-stale-commit overrides."""
    project, _ = repo
    old = git(project, "rev-parse", "HEAD")
    new = advance(project, "second")
    work = FakeWork(applies={"dev": deployed_outcome()})
    with pytest.raises(Refused, match=f"this build is of commit {old[:12]}, but main on origin is at {new[:12]}"):
        run(project, travis("main", TRAVIS_COMMIT=old), work)
    assert work.calls == []  # nothing applied
    code, _, err = run(project, travis("main", TRAVIS_COMMIT=old), work, allow_stale_commit=True)
    assert code == 0 and work.calls == [("apply", "dev")] and "--allow-stale-commit" in err


def test_the_cli_refusal_is_a_clean_exit_130(repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    from orch.cli import main

    project, _ = repo
    old = git(project, "rev-parse", "HEAD")
    advance(project, "second")
    for key, value in travis("main", TRAVIS_COMMIT=old).items():
        monkeypatch.setenv(key, value)
    code = main(["ci", "--project", str(project)])
    err = capsys.readouterr().err
    assert code == ExitCode.ABORTED and "orch: refused: this build is of commit" in err and "Traceback" not in err
    assert not (project / ".orch").exists()


def test_release_tags_must_still_point_at_the_build_and_be_the_newest(repo: tuple[Path, Path], tmp_path: Path) -> None:
    project, _ = repo
    first = git(project, "rev-parse", "HEAD")
    git(project, "tag", "-a", "v1.9.0", "-m", "release")  # annotated: ls-remote shows its commit as ^{}
    git(project, "push", "-q", "origin", "v1.9.0")
    work = FakeWork(applies={"prod": deployed_outcome()})
    env = github("tag", tmp_path, GITHUB_REF="refs/tags/v1.9.0", GITHUB_SHA=first)
    assert run(project, env, work)[0] == 0
    second = advance(project, "second")
    git(project, "tag", "v1.10.0")
    git(project, "push", "-q", "origin", "v1.10.0")
    with pytest.raises(Refused, match="tag v1.9.0 is not the newest release on origin .v1.10.0 is."):
        run(project, env, work)
    env = github("tag", tmp_path, GITHUB_REF="refs/tags/v1.10.0", GITHUB_SHA=first)
    with pytest.raises(Refused, match=f"tag v1.10.0 on origin points at {second[:12]}"):
        run(project, env, work)


def test_no_remote_means_no_apply_unless_allowed(project: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    work = FakeWork(applies={"dev": deployed_outcome()})
    with pytest.raises(Refused, match="cannot check that this build's commit"):
        run(project, travis("main"), work)
    assert work.calls == []


def test_json_keeps_stdout_for_the_decision_alone(project: Path) -> None:
    plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))
    work = FakeWork(plans={"dev": PlanOutcome(plan, None, None), "prod": PlanOutcome(plan, None, None)})
    code, out, err = run(project, travis("pr"), work, as_json=True)
    assert code == 0 and [a["command"] for a in json.loads(out)["actions"]] == ["plan", "plan"]
    assert MARKER in err and "STAGE  RESULT" in err
