"""What one stage does inside a multi-stage command: a Deployer of its own, built with that
stage's prefixed reporter, planning or applying, and one line for the summary table.

orch.multistage schedules these; `orch plan|apply --all` and `orch ci` use them. Questions
for protected stages are asked one at a time (a lock around the terminal). This module
decides nothing about order or exit codes beyond one stage's own result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import ExitCode
from orch.multistage import Work
from orch.reporter import Reporter


@dataclass
class StageWork:
    """Builds each stage's Deployer (orch.deploy.create_deployer) with the same options."""

    project_dir: Path
    sandbox: bool
    ask: Callable[[str], bool]
    interactive: bool = False
    yes: bool = False
    color: bool = False
    allow_destroy: bool = False
    _ask_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def deployer(self, stage: str, reporter: Reporter, *, sandbox: bool | None = None) -> Any:
        from orch.deploy import create_deployer

        return create_deployer(
            self.project_dir, stage, sandbox=self.sandbox if sandbox is None else sandbox, reporter=reporter,
            ask=self._one_question_at_a_time, interactive=self.interactive, yes=self.yes, color=self.color,
            allow_destroy=self.allow_destroy,
        )

    def _one_question_at_a_time(self, question: str) -> bool:
        with self._ask_lock:
            return self.ask(question)

    def planner(self, *, detailed_exitcode: bool = False, sandbox: bool | None = None) -> Work:
        """Work that plans a stage; its value is the deploy.PlanOutcome."""

        def plan(stage: str, reporter: Reporter) -> tuple[int, str, Any]:
            outcome = self.deployer(stage, reporter, sandbox=sandbox).plan()
            changes = outcome.plan.has_changes
            code = ExitCode.CHANGES_PRESENT if detailed_exitcode and changes else ExitCode.OK
            return code, f"plan: {outcome.plan.text()}", outcome

        return plan

    def applier(self, *, smoke: bool = True, skip_promotion_check: bool = False) -> Work:
        """Work that applies a stage, runs its smoke checks and rolls back when they fail; its
        value is the deploy.ApplyOutcome. A release that failed its checks is exit 6
        (orch.errors.SmokeError's code) with the verdict's words in the table."""

        def apply(stage: str, reporter: Reporter) -> tuple[int, str, Any]:
            outcome = self.deployer(stage, reporter).apply(smoke=smoke, skip_promotion_check=skip_promotion_check)
            url = outcome.outputs.get("invoke_url", "")
            verdict = outcome.verdict
            if verdict is not None and not verdict.ok:
                reporter.note(verdict.message())
                return ExitCode.SMOKE, f"{verdict.status.replace('_', ' ')}: {url}", outcome
            if outcome.plan is not None and not outcome.plan.has_changes:
                return ExitCode.OK, f"up to date: {url}", outcome
            return ExitCode.OK, f"deployed ({outcome.plan.text() if outcome.plan else 'saved plan'}): {url}", outcome

        return apply

    def promotion_order(self, stages: list[str]) -> dict[str, str | None]:
        """stage -> the stage it is promoted from (`promote_from`), for the stages given."""
        from orch.config import load_stage

        order: dict[str, str | None] = {}
        for name in stages:
            config = load_stage(self.project_dir, name).config
            order[name] = getattr(config, "promote_from", None)  # issue 7 adds the key
        return order
