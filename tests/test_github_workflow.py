"""The GitHub Actions files (orch's own workflow and composite action, and the workflow
`orch init` writes) checked with check-jsonschema's vendored GitHub schemas (offline), plus
the policy a schema cannot check: plans only on pull requests with permission to comment,
deploys only on main and release tags, one apply per stage at a time, secrets only from
`secrets`, Terraform pinned with its checksum."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO
from test_travis import SHA256, load

WORKFLOWS = {"repository": REPO / ".github" / "workflows" / "orch.yml",
             "orch init": REPO / "src" / "orch" / "skeleton" / "github" / "workflows" / "orch.yml"}
ACTION = REPO / ".github" / "actions" / "setup-orch" / "action.yml"
DEPLOYS = {"deploy-dev": "github.event_name == 'push' && github.ref == 'refs/heads/main'",
           "deploy-prod": "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"}


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_the_workflows_and_the_action_pass_githubs_schemas() -> None:
    done = check_jsonschema("vendor.github-workflows", *WORKFLOWS.values())
    assert done.returncode == 0, done.stdout + done.stderr
    done = check_jsonschema("vendor.github-actions", ACTION)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOWS["repository"].read_text().replace("cancel-in-progress: false", "cancel-in-progress: no "
                                                                  "thanks", 1))
    done = check_jsonschema("vendor.github-workflows", broken)
    assert done.returncode == 1 and "cancel-in-progress" in done.stdout


@pytest.fixture(params=list(WORKFLOWS), ids=list(WORKFLOWS))
def workflow(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(WORKFLOWS[request.param].read_text())


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_triggers_and_default_permissions(workflow: dict[str, Any]) -> None:
    assert set(workflow["on"]) == {"push", "pull_request"}  # `on`, not True: read as YAML 1.2
    assert workflow["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert workflow["permissions"] == {"contents": "read"}


def test_plans_only_on_pull_requests_with_permission_to_comment(workflow: dict[str, Any]) -> None:
    plan = workflow["jobs"]["plan"]
    assert plan["if"] == "github.event_name == 'pull_request'"
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert plan["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert runs(plan)[-1] == "orch ci"


def test_deploys_only_on_main_and_tags_one_apply_per_stage_at_a_time(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    for name, condition in DEPLOYS.items():
        job = jobs[name]
        assert job["if"] == condition and runs(job)[-1] == "orch ci"
        stage = name.removeprefix("deploy-")
        assert job["concurrency"] == {"group": f"orch-apply-{stage}", "cancel-in-progress": False}
        assert job["environment"] == stage and "permissions" not in job  # read-only, as the workflow says
        assert job["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    others = [name for name in jobs if name not in DEPLOYS and name != "plan"]
    for name in others:  # the checks never plan or apply
        assert all("orch ci" not in line or "--dry-run" in line for line in runs(jobs[name])), name


def test_secrets_come_only_from_secrets(workflow: dict[str, Any]) -> None:
    for job in workflow["jobs"].values():
        for key, value in (job.get("env") or {}).items():
            if any(word in key for word in ("KEY", "TOKEN", "SECRET", "WEBHOOK")):
                assert value == f"${{{{ secrets.{key} }}}}", key


def test_terraform_is_pinned_with_its_checksum(workflow: dict[str, Any]) -> None:
    env = workflow["env"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", env["TF_VERSION"]) and SHA256.match(env["TF_SHA256"])
    text = "\n".join(line for job in workflow["jobs"].values() for line in runs(job))
    action = load(ACTION.read_text())
    text += "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    assert 'bash scripts/install-terraform.sh "$TF_VERSION" "$TF_SHA256"' in text


def test_the_same_pins_in_travis_and_github() -> None:
    travis = dict(item.split("=", 1) for item in load((REPO / ".travis.yml").read_text())["env"]["global"])
    for path in WORKFLOWS.values():
        env = load(path.read_text())["env"]
        assert (env["TF_VERSION"], env["TF_SHA256"]) == (travis["TF_VERSION"], travis["TF_SHA256"])
