"""What `orch ci` decides, as a pure function of the CI environment and stages/ci.yaml:
Travis CI and GitHub Actions, each build kind (pull request, fork pull request, push to main,
release tag, anything else), the policy file and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.ci.decide import decide
from orch.ci.events import read_event
from orch.ci.policy import load_policy
from orch.config import stage_names
from orch.errors import ConfigError

SHA = "0123456789abcdef0123456789abcdef01234567"
STAGES = ["dev", "prod"]


# ---------------------------------------------------------------------------- simulated builds


def travis(kind: str, **extra: str) -> dict[str, str]:
    """A Travis build's variables as Travis sets them (docs: default environment variables)."""
    env = {"TRAVIS": "true", "CI": "true", "TRAVIS_REPO_SLUG": "team/api", "TRAVIS_COMMIT": SHA,
           "TRAVIS_SECURE_ENV_VARS": "true", "TRAVIS_PULL_REQUEST": "false", "TRAVIS_TAG": ""}
    if kind == "pr":
        env |= {"TRAVIS_EVENT_TYPE": "pull_request", "TRAVIS_PULL_REQUEST": "12", "TRAVIS_BRANCH": "main",
                "TRAVIS_PULL_REQUEST_SLUG": "team/api", "TRAVIS_PULL_REQUEST_BRANCH": "feature"}
    elif kind == "fork-pr":
        env |= {"TRAVIS_EVENT_TYPE": "pull_request", "TRAVIS_PULL_REQUEST": "13", "TRAVIS_BRANCH": "main",
                "TRAVIS_PULL_REQUEST_SLUG": "someone/api", "TRAVIS_SECURE_ENV_VARS": "false"}
    elif kind == "main":
        env |= {"TRAVIS_EVENT_TYPE": "push", "TRAVIS_BRANCH": "main"}
    elif kind == "tag":
        env |= {"TRAVIS_EVENT_TYPE": "push", "TRAVIS_BRANCH": "v1.2.3", "TRAVIS_TAG": "v1.2.3"}
    elif kind == "other":
        env |= {"TRAVIS_EVENT_TYPE": "push", "TRAVIS_BRANCH": "feature"}
    return env | extra


def github(kind: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A GitHub Actions run's variables and event payload file."""
    env = {"GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REPOSITORY": "team/api", "GITHUB_SHA": SHA}
    payload: dict = {"repository": {"full_name": "team/api"}}
    if kind in ("pr", "fork-pr"):
        head = "team/api" if kind == "pr" else "someone/api"
        payload["pull_request"] = {"number": 12, "base": {"ref": "main"},
                                   "head": {"ref": "feature", "repo": {"full_name": head, "fork": kind != "pr"}}}
        env |= {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/12/merge",
                "GITHUB_BASE_REF": "main", "GITHUB_HEAD_REF": "feature"}
    elif kind == "main":
        env |= {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main"}
    elif kind == "tag":
        env |= {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3"}
    elif kind == "other":
        env |= {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/feature"}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    return env | {"GITHUB_EVENT_PATH": str(path)} | extra


def simulated(provider: str, kind: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return travis(kind, **extra) if provider == "travis" else github(kind, tmp_path, **extra)


def actions(env: dict[str, str], project: Path, **kw) -> list[tuple[str, str, str]]:
    decision = decide(read_event(env), load_policy(project), stage_names(project), **kw)
    return [(a.command, a.stage, a.target) for a in decision.actions]


PROVIDERS = ["travis", "github"]


# ---------------------------------------------------------------------------- the five builds, both CIs


@pytest.mark.parametrize("provider", PROVIDERS)
def test_pull_request_plans_every_stage_in_aws_and_applies_nothing(provider: str, project: Path,
                                                                    tmp_path: Path) -> None:
    env = simulated(provider, "pr", tmp_path)
    event = read_event(env)
    assert (event.kind, event.pull_request, event.branch, event.fork, event.secrets) == (
        "pull_request", 12, "main", False, True)
    assert actions(env, project) == [("plan", "dev", "aws"), ("plan", "prod", "aws")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fork_pull_request_plans_in_the_sandbox_and_says_why(provider: str, project: Path, tmp_path: Path) -> None:
    env = simulated(provider, "fork-pr", tmp_path)
    decision = decide(read_event(env), load_policy(project), STAGES)
    assert decision.event.fork and not decision.event.secrets
    assert [(a.command, a.stage, a.target) for a in decision.actions] == [
        ("plan", "dev", "sandbox"), ("plan", "prod", "sandbox")]
    assert "skipping the AWS plan of dev, prod" in decision.notes[0]
    assert "fork" in decision.notes[0] and "sandbox" in decision.notes[0]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_push_to_main_applies_dev_and_smoke_checks_it(provider: str, project: Path, tmp_path: Path) -> None:
    env = simulated(provider, "main", tmp_path)
    decision = decide(read_event(env), load_policy(project), STAGES)
    assert [(a.command, a.stage) for a in decision.actions] == [("apply", "dev"), ("smoke", "dev")]
    assert (decision.ref, decision.ref_kind, decision.event.commit) == ("main", "branch", SHA)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_release_tag_applies_prod(provider: str, project: Path, tmp_path: Path) -> None:
    env = simulated(provider, "tag", tmp_path)
    decision = decide(read_event(env), load_policy(project), STAGES)
    assert [(a.command, a.stage) for a in decision.actions] == [("apply", "prod"), ("smoke", "prod")]
    assert (decision.ref, decision.ref_kind) == ("v1.2.3", "tag")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_other_branch_does_nothing_and_says_so(provider: str, project: Path, tmp_path: Path) -> None:
    decision = decide(read_event(simulated(provider, "other", tmp_path)), load_policy(project), STAGES)
    assert decision.actions == ()
    assert "branch 'feature' deploys no stage (branches that do: main)" in decision.reason


# ---------------------------------------------------------------------------- the facts that trip people


def test_travis_pr_into_main_is_not_a_push_to_main(project: Path) -> None:
    """On a pull-request build TRAVIS_BRANCH is the target branch: `main` there must not deploy."""
    env = travis("pr")
    assert env["TRAVIS_BRANCH"] == "main"
    assert [a[0] for a in actions(env, project)] == ["plan", "plan"]


def test_travis_pr_without_secure_variables_plans_in_the_sandbox(project: Path) -> None:
    env = travis("pr", TRAVIS_SECURE_ENV_VARS="false")  # same repository, but no secrets given
    decision = decide(read_event(env), load_policy(project), STAGES)
    assert {a.target for a in decision.actions} == {"sandbox"}
    assert "without the repository's secrets" in decision.notes[0]


def test_github_fork_whose_repository_was_deleted_is_a_fork(project: Path, tmp_path: Path) -> None:
    env = github("pr", tmp_path)
    payload = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text())
    payload["pull_request"]["head"]["repo"] = None
    Path(env["GITHUB_EVENT_PATH"]).write_text(json.dumps(payload))
    assert read_event(env).fork


def test_tags_that_are_not_releases_and_other_events_do_nothing(project: Path, tmp_path: Path) -> None:
    assert actions(travis("tag", TRAVIS_TAG="v1.2", TRAVIS_BRANCH="v1.2"), project) == []
    assert actions(github("tag", tmp_path, GITHUB_REF="refs/tags/nightly-1"), project) == []
    cron = decide(read_event(travis("main", TRAVIS_EVENT_TYPE="cron")), load_policy(project), STAGES)
    assert cron.actions == () and "not on 'cron'" in cron.reason
    manual = decide(read_event(github("main", tmp_path, GITHUB_EVENT_NAME="workflow_dispatch")),
                    load_policy(project), STAGES)
    assert manual.actions == () and "workflow_dispatch" in manual.reason
    local = decide(read_event({"PATH": "/bin"}), load_policy(project), STAGES)
    assert local.actions == () and "not a CI build" in local.reason


def test_sandbox_option_runs_everything_in_the_sandbox(project: Path, tmp_path: Path) -> None:
    assert actions(travis("main"), project, sandbox=True) == [("apply", "dev", "sandbox"), ("smoke", "dev", "sandbox")]
    decision = decide(read_event(travis("pr")), load_policy(project), STAGES, sandbox=True)
    assert {a.target for a in decision.actions} == {"sandbox"} and decision.notes == ()


def test_broken_ci_variables_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRAVIS_PULL_REQUEST='false'"):
        read_event(travis("pr", TRAVIS_PULL_REQUEST="false"))
    env = github("pr", tmp_path)
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="GITHUB_EVENT_PATH=.*missing.json"):
        read_event(env)


def test_json_shape(project: Path) -> None:
    decision = decide(read_event(travis("main")), load_policy(project), STAGES)
    data = json.loads(json.dumps(decision.as_json()))
    assert data["actions"] == [{"command": "apply", "stage": "dev", "target": "aws"},
                               {"command": "smoke", "stage": "dev", "target": "aws"}]
    assert data["event"]["provider"] == "travis" and data["event"]["commit"] == SHA


# ---------------------------------------------------------------------------- stages/ci.yaml


def test_the_policy_file_maps_branches_tags_and_pr_stages(project: Path, tmp_path: Path) -> None:
    (project / "stages" / "staging.yaml").write_text("stage: {variables: {env: staging}}\n")
    (project / "stages" / "ci.yaml").write_text(
        "pull_requests: {plan: [dev]}\n"
        "branches: {develop: dev, release: staging}\n"
        "tags:\n  - {pattern: 'release-[0-9]+', stage: prod}\n"
    )
    assert stage_names(project) == ["dev", "prod", "staging"]  # ci.yaml is not a stage
    assert actions(travis("pr"), project) == [("plan", "dev", "aws")]
    assert actions(travis("main", TRAVIS_BRANCH="release"), project)[0] == ("apply", "staging", "aws")
    assert actions(travis("main"), project) == []  # main is not listed any more
    assert actions(github("tag", tmp_path, GITHUB_REF="refs/tags/release-7"), project)[0] == ("apply", "prod", "aws")
    assert actions(github("tag", tmp_path), project) == []  # v1.2.3 is not a release here


def test_a_stage_named_ci_cannot_be_loaded_and_says_why(project: Path) -> None:
    from orch.config import load_stage

    (project / "stages" / "ci.yaml").write_text("branches: {main: dev}\n")
    with pytest.raises(ConfigError) as caught:
        load_stage(project, "ci")
    assert "unknown stage 'ci'" in caught.value.message and "ci.yaml" in (caught.value.hint or "")


@pytest.mark.parametrize(("text", "needles"), [
    ("branches: {main: nope}\n", ["ci.yaml: branches.main", "stage 'nope' does not exist"]),
    ("tags: [{pattern: 'v[', stage: prod}]\n", ["tags.0.pattern", "not a valid regular expression"]),
    ("pull_request: {plan: [dev]}\n", ["pull_request", "unknown key"]),
    ("branches: [main]\n", ["branches", "dictionary"]),
    ("branches: {main: dev\n", ["ci.yaml:", "malformed YAML"]),
])
def test_a_bad_policy_names_the_file_and_field(project: Path, text: str, needles: list[str]) -> None:
    (project / "stages" / "ci.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        decide(read_event(travis("main")), load_policy(project), stage_names(project))
    for needle in needles:
        assert needle in caught.value.message


def test_the_defaults_name_missing_stages_clearly(project: Path) -> None:
    (project / "stages" / "ci.yaml").unlink()  # orch's defaults, then
    (project / "stages" / "prod.yaml").unlink()
    with pytest.raises(ConfigError, match="orch's default CI policy .tags\\[0\\].stage; write stages/ci.yaml"):
        decide(read_event(travis("main")), load_policy(project), stage_names(project))


def test_an_empty_pr_stage_list_plans_nothing(project: Path) -> None:
    (project / "stages" / "ci.yaml").write_text("pull_requests: {plan: []}\n")
    decision = decide(read_event(travis("fork-pr")), load_policy(project), stage_names(project))
    assert decision.actions == () and decision.notes == () and "plan nothing" in decision.reason


def test_dependabots_pull_requests_have_no_secrets_so_plan_in_the_sandbox(project: Path, tmp_path: Path) -> None:
    env = github("pr", tmp_path, GITHUB_ACTOR="dependabot[bot]")
    decision = decide(read_event(env), load_policy(project), STAGES)
    assert not decision.event.fork and {a.target for a in decision.actions} == {"sandbox"}
    assert "without the repository's secrets" in decision.notes[0]
