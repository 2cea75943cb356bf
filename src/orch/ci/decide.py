"""Decide what `orch ci` runs: a pure function of the build (orch.ci.events), the policy
(stages/ci.yaml) and the project's stages.

Pull request: plan every policy stage, never apply; a fork's (or any build without the
repository's secrets) plans against the sandbox, saying so. Push to a policy branch: apply
its stage, then smoke-check it. A tag matching a policy pattern: the same for its stage
(the stage's own promotion guard applies). Anything else: nothing, with the reason. No I/O
here: the tests cover every branch of it with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orch.ci.events import PULL_REQUEST, PUSH, TAG, CiEvent
from orch.ci.policy import LoadedPolicy

PLAN, APPLY, SMOKE = "plan", "apply", "smoke"
AWS, SANDBOX = "aws", "sandbox"


@dataclass(frozen=True)
class Action:
    """One thing `orch ci` runs: `command` (plan, apply, smoke) on `stage` in `target`."""

    command: str
    stage: str
    target: str

    def as_dict(self) -> dict[str, str]:
        return {"command": self.command, "stage": self.stage, "target": self.target}

    def text(self) -> str:
        return f"orch {self.command} {self.stage}" + (" --sandbox" if self.target == SANDBOX else "")


@dataclass(frozen=True)
class Decision:
    """What to run and why. `reason`: one line a person reads first; `notes`: what was left
    out and why (the fork skip line). `ref`: the branch or tag an apply deploys (for the
    commit check)."""

    event: CiEvent
    actions: tuple[Action, ...]
    reason: str
    notes: tuple[str, ...] = ()
    ref: str | None = None
    ref_kind: str | None = None  # "branch" or "tag"
    tag_pattern: str | None = None

    @property
    def applies(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.command == APPLY)

    @property
    def plans(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.command == PLAN)

    def as_json(self) -> dict[str, Any]:
        """`{"actions": [{"command", "stage", "target"}, ...], "reason", "notes", "event"}`."""
        return {
            "actions": [a.as_dict() for a in self.actions],
            "reason": self.reason,
            "notes": list(self.notes),
            "event": self.event.as_dict(),
        }


def decide(event: CiEvent, loaded: LoadedPolicy, stages: list[str], *, sandbox: bool = False) -> Decision:
    """The actions for `event` under the policy. `stages`: the project's stages (orch.config.
    stage_names). `sandbox`: run everything in the sandbox (`orch ci --sandbox`, for trying it
    out and for tests). Raises ConfigError when the policy names a stage that does not exist.
    """
    loaded.check_stages(stages)
    policy = loaded.policy
    target = SANDBOX if sandbox else AWS
    if event.kind == PULL_REQUEST:
        planned = list(stages if policy.pull_requests.plan is None else policy.pull_requests.plan)
        notes: tuple[str, ...] = ()
        if not sandbox and (event.fork or not event.secrets):
            why = "from a fork" if event.fork else "without the repository's secrets"
            notes = (
                f"skipping the AWS plan of {', '.join(planned)}: this pull request runs {why}, so it has no AWS "
                "credentials; planning against the sandbox instead",
            )
            target = SANDBOX
        actions = tuple(Action(PLAN, stage, target) for stage in planned)
        what = f"plan {', '.join(planned)}" if planned else "plan nothing (pull_requests.plan is empty)"
        return Decision(event, actions, f"{event.describe()}: {what}, apply nothing", notes if planned else ())
    if event.kind == PUSH and event.branch in policy.branches:
        stage = policy.branches[event.branch]
        return Decision(event, (Action(APPLY, stage, target), Action(SMOKE, stage, target)),
                        f"{event.describe()}: apply {stage} and smoke-check it", ref=event.branch, ref_kind="branch")
    if event.kind == TAG and event.tag is not None:
        rule = policy.tag_rule(event.tag)
        if rule is not None:
            return Decision(event, (Action(APPLY, rule.stage, target), Action(SMOKE, rule.stage, target)),
                            f"{event.describe()}: release; apply {rule.stage} and smoke-check it",
                            ref=event.tag, ref_kind="tag", tag_pattern=rule.pattern)
    return Decision(event, (), f"{event.describe()}: {_nothing_because(event, loaded)}; nothing to do")


def _nothing_because(event: CiEvent, loaded: LoadedPolicy) -> str:
    policy = loaded.policy
    if event.provider == "none":
        return "not a CI build (neither TRAVIS=true nor GITHUB_ACTIONS=true)"
    if event.kind == PUSH:
        listed = ", ".join(policy.branches) or "none"
        return f"branch {event.branch!r} deploys no stage (branches that do: {listed})"
    if event.kind == TAG:
        patterns = ", ".join(rule.pattern for rule in policy.tags) or "none"
        return f"tag {event.tag!r} matches no release pattern ({patterns})"
    return f"orch ci acts on pull requests, pushes and tags, not on {event.trigger or 'this event'!r}"
