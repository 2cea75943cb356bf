"""`orch ci`: read the build, decide, then run what was decided and report it.

Pull requests: every planned stage concurrently (orch.multistage), a Markdown summary
written to a file, printed, and posted as orch's one pull-request comment when a GitHub
token is there. Pushes and release tags: the commit check (orch.ci.freshness), the apply
(with its smoke checks), and a Slack message when SLACK_WEBHOOK_URL is set. This module
wires those parts; a failed comment or Slack post is reported and never changes the exit
code, which is the worst of the stages' (orch.errors.worst).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch import redact
from orch.ci import freshness
from orch.ci.decide import SANDBOX, Decision, decide
from orch.ci.events import read_event
from orch.ci.policy import LoadedPolicy, load_policy
from orch.ci.secrets import ci_secrets
from orch.ci.slack import ApplyReport, notify
from orch.ci.summary import MARKER, StageSummary, markdown, package_change
from orch.config import load_stage, stage_names
from orch.errors import ExitCode, OrchError, Refused, worst
from orch.multistage import FAILED, StageRun, exit_code, run_stages, table
from orch.reporter import Console

SUMMARY_FILE = Path(".orch") / "ci" / "plan-summary.md"
DOWNLOAD_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class CiOptions:
    """`orch ci`'s flags."""

    dry_run: bool = False
    as_json: bool = False
    sandbox: bool = False
    allow_stale_commit: bool = False
    allow_destroy: bool = False
    summary_path: Path | None = None


class CiRun:
    """One `orch ci`: `env` is the CI's environment (os.environ), `stage_work(sandbox, yes)` an
    orch.stagework.StageWork factory (fakes in tests), `git` the runner the commit check uses."""

    def __init__(self, project_dir: Path, env: Mapping[str, str], console: Console, options: CiOptions, *,
                 stage_work: Callable[..., Any], git: freshness.Git | None = None,
                 clock: Callable[[], float] = time.monotonic, http: Any = None) -> None:
        self.project_dir = project_dir
        self.env = env
        # One filter for everything this run prints, writes, comments or posts: the webhook URL
        # and tokens (orch.ci.secrets) join the registry of stage secrets and AWS credentials.
        for value, label in ci_secrets(env).items():
            redact.register(value, label)
        if console.redact is not redact.redact:  # a Console built with its own hook keeps it, after the registry
            own = console.redact
            console = Console(console.stdout, console.stderr, lambda text: own(redact.redact(text)))
        self.console = console
        self.options = options
        self.stage_work = stage_work
        self.git = git or freshness.git_in(project_dir)
        self.clock = clock
        self.http = http
        # With --json, stdout holds the decision alone: tables, summaries and Terraform's lines go to stderr.
        self.stages_console = Console(console.stderr, console.stderr, console.redact) if options.as_json else console
        self.result = console.err if options.as_json else console.out

    def _say(self, text: str) -> None:
        self.console.err(f"orch ci: {text}")

    def decide(self) -> tuple[Decision, LoadedPolicy]:
        loaded = load_policy(self.project_dir)
        event = read_event(self.env)
        return decide(event, loaded, stage_names(self.project_dir), sandbox=self.options.sandbox), loaded

    def run(self) -> int:
        """Decide and run; the exit code (the worst of the stages'). An OrchError that stops the
        run leaves with its message and hint redacted (the CLI prints it)."""
        try:
            return self._run()
        except OrchError as exc:
            exc.message = self.console.redact(exc.message)
            exc.hint = self.console.redact(exc.hint) if exc.hint else exc.hint
            exc.args = (exc.message,)
            raise

    def _run(self) -> int:
        decision, loaded = self.decide()
        self._say(decision.reason)
        for note in decision.notes:
            self._say(note)
        if self.options.as_json:
            self.console.out(json.dumps(decision.as_json(), indent=2))
        elif self.options.dry_run:
            for action in decision.actions:
                self.console.out(f"would run: {action.text()}")
        if self.options.dry_run:
            self._say("nothing was run (--dry-run)")
            return ExitCode.OK
        codes: list[int] = []
        if decision.plans:
            codes.append(self._plans(decision))
        for action in decision.applies:
            codes.append(self._apply(decision, loaded, action.stage, action.target))
        return worst(codes)

    # ------------------------------------------------------------------ pull requests

    def _plans(self, decision: Decision) -> int:
        target = decision.plans[0].target
        work = self.stage_work(sandbox=target == SANDBOX, yes=False)
        runs = run_stages([a.stage for a in decision.plans], work.planner(), self.stages_console)
        for line in table(runs):
            self.result(line)
        summaries = [self._summary(run, target) for run in runs]
        event = decision.event
        title = (f"orch plan for pull request #{event.pull_request}"
                 + (f" at {event.commit[:12]}" if event.commit else "") + f": {len(runs)} stages")
        text = self.console.redact(markdown(summaries, title=title, notes=decision.notes))
        path = self._write_summary(text)
        self.result(text)
        self._say(f"plan summary written to {path}")
        self._comment(decision, text)
        return exit_code(runs)

    def _summary(self, run: StageRun, target: str) -> StageSummary:
        if run.status == FAILED or run.value is None:
            return StageSummary.failure(run.stage, target, run.detail)
        outcome = run.value
        package = outcome.package
        change = package_change(outcome.plan, package.path if package else None,
                                package.sha256_hex if package else None, self._fetch(run.stage, target))
        return StageSummary.of(run.stage, target, outcome.plan, change)

    def _fetch(self, stage: str, target: str) -> Callable[[str, str], Path | bytes | None]:
        """The deployed zip: orch's package store first (content-addressed), then, on real AWS,
        Lambda's GetFunction download (checked against its CodeSha256)."""

        def fetch(function_name: str, code_sha256: str) -> Path | bytes | None:
            import base64
            import hashlib

            hex_digest = base64.b64decode(code_sha256).hex()
            stored = self.project_dir / ".orch" / "packages" / f"{hex_digest}.zip"
            if stored.is_file():
                return stored
            if target == SANDBOX:
                return None
            try:
                from orch.aws import Aws

                region = load_stage(self.project_dir, stage).config.region
                served, location = Aws.for_aws(region).function_code(function_name)
                data = self._download(location)
            except Exception as exc:  # noqa: BLE001 - a summary without the file list is still a summary
                self._say(f"{stage}: could not download the deployed code of {function_name}: "
                          f"{getattr(exc, 'message', None) or exc}")
                return None
            if base64.b64encode(hashlib.sha256(data).digest()).decode() != served:
                self._say(f"{stage}: the downloaded code of {function_name} does not match its CodeSha256")
                return None
            return data

        return fetch

    def _download(self, url: str) -> bytes:
        import urllib3

        http = self.http or urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=DOWNLOAD_TIMEOUT_SECONDS))
        response = http.request("GET", url, retries=urllib3.Retry(total=2, backoff_factor=0.5))
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        return response.data

    def _write_summary(self, text: str) -> Path:
        path = self.options.summary_path or self.project_dir / SUMMARY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
        return path

    def _comment(self, decision: Decision, text: str) -> None:
        from orch.ci.github import DEFAULT_API_URL, GitHub, GitHubError

        event = decision.event
        token = self.env.get("GITHUB_TOKEN") or ""
        if not token:
            self._say("no GITHUB_TOKEN: the summary is not posted to the pull request")
            return
        if not event.repository or event.pull_request is None:
            self._say("the build names no repository or pull request: the summary is not posted")
            return
        api = self.env.get("GITHUB_API_URL") or DEFAULT_API_URL
        try:
            posted = GitHub(token, api).upsert_comment(event.repository, event.pull_request, text, MARKER)
        except GitHubError as exc:
            self._say(f"the pull-request comment failed ({self.console.redact(str(exc))}); the plan's result stands")
            return
        self._say(f"pull-request comment {posted.action}" + (f": {posted.url}" if posted.url else ""))

    # ------------------------------------------------------------------ pushes and tags

    def _apply(self, decision: Decision, loaded: LoadedPolicy, stage: str, target: str) -> int:
        event = decision.event
        if not self.options.allow_stale_commit:
            self._check_commit(decision, loaded)
        elif decision.ref:
            self._say(f"not checking that {event.commit or 'this commit'} is still the head of {decision.ref} "
                      f"({freshness.OVERRIDE})")
        started = self.clock()
        work = self.stage_work(sandbox=target == SANDBOX, yes=True)
        run = run_stages([stage], work.applier(), self.stages_console)[0]
        for line in table([run]):
            self.result(line)
        report = apply_report(run, target, event.commit, event.describe(), self.clock() - started)
        self.result(f"{report.headline()}: {report.smoke}")
        self._notify(report)
        return run.code

    def _check_commit(self, decision: Decision, loaded: LoadedPolicy) -> None:
        event = decision.event
        if not event.commit:
            raise Refused("the build names no commit (TRAVIS_COMMIT / GITHUB_SHA), so orch cannot check it is "
                          "still the one to deploy. Nothing was applied.",
                          hint=f"Run it in CI, or pass {freshness.OVERRIDE}.")
        remote = loaded.policy.remote
        if decision.ref_kind == "tag" and decision.ref and decision.tag_pattern:
            freshness.check_release_tag(self.git, remote, decision.ref, event.commit, decision.tag_pattern)
        elif decision.ref:
            freshness.check_branch_head(self.git, remote, decision.ref, event.commit)
        self._say(f"{event.commit[:12]} is still {decision.ref} on {remote}")

    def _notify(self, report: ApplyReport) -> None:
        url = self.env.get("SLACK_WEBHOOK_URL") or ""
        if not url:
            self._say("no SLACK_WEBHOOK_URL: no Slack message")
            return
        failure = notify(url, report, self.console.redact)
        if failure:
            self._say(f"Slack notification failed: {failure} (the deploy's result stands)")
        else:
            self._say("Slack notified")


def apply_report(run: StageRun, target: str, commit: str | None, trigger: str, seconds: float) -> ApplyReport:
    """What Slack hears about one stage's apply (orch.multistage.StageRun of StageWork.applier);
    its `smoke` and `outcome` come from the apply's orch.releases.Verdict (passed, unchecked,
    failed, rolled_back, rollback_failed)."""
    outcome = run.value
    verdict = outcome.verdict if outcome is not None else None
    smoke = smoke_summary(verdict)
    url = (outcome.outputs.get("invoke_url") if outcome is not None else None) or None
    if run.status == FAILED and outcome is None:
        return ApplyReport(run.stage, target, "apply failed", commit, trigger, url, smoke, seconds, run.detail,
                           smoke_status="not run")
    if verdict is not None and verdict.status in VERDICT_OUTCOMES:
        return ApplyReport(run.stage, target, VERDICT_OUTCOMES[verdict.status], commit, trigger, url, smoke, seconds,
                           verdict.message(), smoke_status=verdict.status.replace("_", " "))
    applied = outcome.plan is None or outcome.plan.has_changes
    return ApplyReport(run.stage, target, "deployed" if applied else "up to date", commit, trigger, url, smoke,
                       seconds, smoke_status=verdict.status if verdict is not None else "not run")


VERDICT_OUTCOMES = {"failed": "smoke checks failed", "rolled_back": "rolled back", "rollback_failed": "rollback failed"}


def smoke_summary(verdict: Any) -> str:
    """One line on the smoke checks of an apply (an orch.releases.Verdict or None): the
    release's checks, and after a rollback what the stage serves now and its checks again."""
    if verdict is None:
        return "no smoke checks ran"
    if verdict.status == "unchecked":
        return "not run (--no-smoke): the release is recorded as unchecked"
    line = verdict.smoke.summary() if verdict.smoke is not None else f"smoke checks {verdict.status}"
    if verdict.status == "failed":
        return f"{line}; nothing earlier passed its checks, so the release stays ({verdict.reason})"
    if verdict.status in ("rolled_back", "rollback_failed"):
        back = verdict.rolled_back_to.short if verdict.rolled_back_to is not None else "the previous release"
        again = f"; after it {verdict.recheck.summary()}" if verdict.recheck is not None else ""
        return f"{line} ({verdict.reason}); rolled back to {back}{again}"
    return line
