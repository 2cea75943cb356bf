"""Acceptance 5 of issue 8: a secret never appears in what `orch ci` prints, writes to the
summary, comments on the pull request or posts to Slack. Fake stages (no Terraform) whose
Terraform lines and errors quote the secrets, local GitHub and Slack receivers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import receivers
from orch import redact as redact_mod
from orch.ci.run import CiOptions, CiRun
from orch.ci.secrets import ci_secrets
from orch.deploy import PlanOutcome
from orch.errors import ConfigError, ExitCode, TerraformError
from orch.redact import MASK
from orch.releases import Verdict
from orch.reporter import Console
from orch.tfplan import PlanView
from test_ci_decide import travis
from test_ci_run import DATA, deployed_outcome, no_ambient_ci, report  # noqa: F401 - the fixture is autouse there too

TOKEN = "ghp_FAKEtoken0123456789abcdef"
HOOK_PATH = "/services/T0FAKE/B0FAKE/fakeWebhookSecret42"


class LeakyWork:
    """Stages whose Terraform output and errors quote every secret in `leak` (as a real
    provider error can quote a URL, or a shell line an environment variable)."""

    def __init__(self, leak: list[str], fail: str) -> None:
        self.leak = leak
        self.fail = fail

    def _say(self, reporter: Any) -> None:
        for value in self.leak:
            reporter.terraform(f"Error: request to {value} failed", True)
            reporter.note(f"json says {json.dumps({'v': value})}")

    def planner(self, **kw: Any):
        plan = PlanView.from_show_json(json.loads((DATA / "plan-first-deploy.json").read_text()))

        def run(stage: str, reporter: Any):
            self._say(reporter)
            if stage == self.fail:
                raise TerraformError("terraform plan failed: " + " and ".join(self.leak))
            return 0, "plan: " + " ".join(self.leak), PlanOutcome(plan, None, None)
        return run

    def applier(self, **kw: Any):
        def run(stage: str, reporter: Any):
            self._say(reporter)
            if stage == self.fail:  # the smoke check's answer quotes them (a body echoing a header)
                reason = "1 of 1 checks failed: root: answered 502: " + " and ".join(self.leak)
                verdict = Verdict("failed", stage, "aws", smoke=report(0, 1), reason=reason)
                return ExitCode.SMOKE, "failed", deployed_outcome(verdict=verdict)
            raise TerraformError("terraform apply failed: " + " and ".join(self.leak))
        return run


def secrets_in(text: str, *values: str) -> list[str]:
    return [v for v in values if v in text]


def ci(project: Path, env: dict[str, str], work: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = CiRun(project, env, Console(out, err), CiOptions(allow_stale_commit=True),
                 stage_work=lambda **kw: work).run()
    return code, out.getvalue(), err.getvalue()


def test_ci_secrets_names_the_webhook_its_path_and_the_tokens() -> None:
    env = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com" + HOOK_PATH, "GITHUB_TOKEN": TOKEN, "GH_TOKEN": "abc",
           "HOME": "/root"}
    assert ci_secrets(env) == {"https://hooks.slack.com" + HOOK_PATH: "Slack webhook URL",
                               HOOK_PATH: "Slack webhook URL", TOKEN: "GitHub token"}  # "abc": too short
    CiRun(Path("."), env, Console(io.StringIO(), io.StringIO(), str.upper), CiOptions(), stage_work=lambda **kw: None)
    assert redact_mod.redact(f"a {TOKEN} b") == f"a {MASK} b"  # in the one registry from now on
    assert redact_mod.redact("x%2Fservices%2FT0FAKE%2FB0FAKE%2FfakeWebhookSecret42") == f"x{MASK}"  # URL-encoded too


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Any:
    yield
    redact_mod.REGISTRY.clear()


def test_a_pull_request_build_masks_the_token_and_webhook_everywhere(project: Path) -> None:
    with receivers.github() as gh:
        hook_url = gh.url + HOOK_PATH  # any URL: it is a secret because it is SLACK_WEBHOOK_URL
        env = travis("pr") | {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url, "SLACK_WEBHOOK_URL": hook_url}
        code, out, err = ci(project, env, LeakyWork([TOKEN, hook_url, HOOK_PATH], fail="prod"))
        comments = gh.server.RequestHandlerClass.comments
    summary = (project / ".orch" / "ci" / "plan-summary.md").read_text()
    assert code != 0 and len(comments) == 1
    body = comments[0]["body"]
    assert "#### prod: plan failed" in summary and body == summary
    assert f"plan: {MASK} {MASK} {MASK}" in out  # the table's line for dev
    for where, text in {"stdout": out, "stderr": err, "summary": summary, "comment": body}.items():
        assert not secrets_in(text, TOKEN, HOOK_PATH, "fakeWebhookSecret42"), where
    assert f"Error: request to {MASK} failed" in err
    assert gh.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"  # used, only where it belongs


def test_a_push_build_masks_them_in_the_slack_payload_and_its_own_error(project: Path) -> None:
    with receivers.slack(200) as hook:
        hook_url = hook.url + HOOK_PATH
        env = travis("main") | {"SLACK_WEBHOOK_URL": hook_url, "GITHUB_TOKEN": TOKEN}
        code, out, err = ci(project, env, LeakyWork([TOKEN, hook_url, HOOK_PATH], fail="dev"))
    (_, path, _, payload), = hook.requests
    assert path == HOOK_PATH and code != 0
    posted = json.dumps(payload)
    assert f"answered 502: {MASK} and {MASK} and {MASK}" in posted  # the verdict's reason, masked
    for where, text in {"stdout": out, "stderr": err, "payload": posted}.items():
        assert not secrets_in(text, TOKEN, HOOK_PATH, "fakeWebhookSecret42"), where


def test_an_error_that_stops_the_run_leaves_masked(project: Path) -> None:
    def stage_work(**kw: Any) -> Any:
        raise ConfigError(f"cannot use {TOKEN}", hint=f"check {TOKEN}")

    env = travis("pr") | {"GITHUB_TOKEN": TOKEN}
    with pytest.raises(ConfigError) as caught:
        CiRun(project, env, Console(io.StringIO(), io.StringIO()), CiOptions(), stage_work=stage_work).run()
    assert TOKEN not in str(caught.value) and caught.value.message == f"cannot use {MASK}"


def test_with_the_engine_registry_aws_credentials_and_stage_secrets_are_masked_too(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs once orch.redact (issue 12) is on the branch: values the engine registers (AWS
    credentials from the environment, a stage's secret values) go through the same filter."""
    redact = pytest.importorskip("orch.redact")
    aws_secret, stage_secret = "wJalrFAKEsecretAccessKey0123", "stage-secret-value-FAKE-99"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    redact.register_aws_credentials()
    redact.register(stage_secret, "secret DB_PASSWORD of stage dev")
    try:
        with receivers.github() as gh, receivers.slack(200) as hook:
            env = travis("pr") | {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": gh.url,
                                  "SLACK_WEBHOOK_URL": hook.url + HOOK_PATH}
            code, out, err = ci(project, env, LeakyWork([aws_secret, stage_secret], fail="prod"))
            body = gh.server.RequestHandlerClass.comments[0]["body"]
            push = travis("main") | {"SLACK_WEBHOOK_URL": hook.url + HOOK_PATH}
            _, out2, err2 = ci(project, push, LeakyWork([aws_secret, stage_secret], fail="dev"))
            posted = json.dumps(hook.requests[0][3])
        for text in (out, err, body, out2, err2, posted):
            assert not secrets_in(text, aws_secret, stage_secret)
        assert code != 0
    finally:
        redact.REGISTRY.clear()
