"""`stages/ci.yaml`: which stages `orch ci` plans on pull requests and which pushes and tags
apply which stage. Configuration, not code.

This module owns that file's shape, its defaults (pull requests plan every stage, a push to
`main` applies `dev`, a tag like `v1.2.3` applies `prod`) and its error messages (file and
field named). It reads the file and never writes it; it decides nothing (orch.ci.decide).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orch.config import CI_POLICY_FILE, STAGE_NAME_RE, RegexText
from orch.errors import ConfigError
from orch.stage_yaml import read_mapping

DEFAULT_TAG_PATTERN = r"v[0-9]+\.[0-9]+\.[0-9]+"
StageName = Annotated[str, Field(pattern=STAGE_NAME_RE.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PullRequests(_Strict):
    """What a pull request runs: a plan of these stages (None: every stage)."""

    plan: list[StageName] | None = None


class TagRule(_Strict):
    """A pushed tag matching `pattern` (a Python regular expression over the whole tag)
    applies `stage`."""

    pattern: RegexText = DEFAULT_TAG_PATTERN
    stage: StageName = "prod"

    def matches(self, tag: str) -> bool:
        return re.fullmatch(self.pattern, tag) is not None


class CiPolicy(_Strict):
    """The whole file. `branches`: branch -> the stage a push to it applies. `remote`: the git
    remote whose branch heads and tags an apply is checked against."""

    pull_requests: PullRequests = Field(default_factory=PullRequests)
    branches: dict[str, StageName] = Field(default_factory=lambda: {"main": "dev"})
    tags: list[TagRule] = Field(default_factory=lambda: [TagRule()])
    remote: Annotated[str, Field(pattern=r"^[A-Za-z0-9._/-]+$")] = "origin"

    def tag_rule(self, tag: str) -> TagRule | None:
        """The first rule whose pattern matches `tag`, or None."""
        return next((rule for rule in self.tags if rule.matches(tag)), None)


@dataclass(frozen=True)
class LoadedPolicy:
    """The policy and where it came from (None: orch's defaults, no file)."""

    policy: CiPolicy
    path: Path | None

    def where(self, field: str) -> str:
        if self.path is None:
            return f"orch's default CI policy ({field}; write stages/{CI_POLICY_FILE} to change it)"
        return f"{self.path}: {field}"

    def check_stages(self, known: list[str]) -> None:
        """Every stage the policy names exists: ConfigError naming the file and field."""
        named: list[tuple[str, str]] = [(f"branches.{b}", s) for b, s in self.policy.branches.items()]
        named += [(f"tags[{i}].stage", rule.stage) for i, rule in enumerate(self.policy.tags)]
        named += [(f"pull_requests.plan[{i}]", s) for i, s in enumerate(self.policy.pull_requests.plan or [])]
        for field, stage in named:
            if stage not in known:
                raise ConfigError(
                    f"{self.where(field)}: stage {stage!r} does not exist (stages: {', '.join(known) or 'none'}).",
                    hint="Name a stage that has a stages/<stage>.yaml file.",
                )


def load_policy(project_dir: Path) -> LoadedPolicy:
    """`stages/ci.yaml` of the project, validated, or the defaults when there is none.

    Raises ConfigError naming the file (and `file:line` for YAML errors, the field for
    validation errors).
    """
    path = project_dir / "stages" / CI_POLICY_FILE
    if not path.exists():
        return LoadedPolicy(CiPolicy(), None)
    data: dict[str, Any] = read_mapping(path)
    try:
        return LoadedPolicy(CiPolicy.model_validate(data), path)
    except ValidationError as exc:
        lines = [f"{path} is not a valid CI policy:"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"  {loc}: {'unknown key' if err['type'] == 'extra_forbidden' else message}")
        raise ConfigError("\n".join(lines)) from None
