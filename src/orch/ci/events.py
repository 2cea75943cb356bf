"""What the CI service says about the build: read from its environment variables (and, on
GitHub Actions, the event payload file) into one CiEvent.

This module owns the meaning of Travis CI's and GitHub Actions' variables: which build is a
pull request, whether it comes from a fork, whether it has the repository's secrets, which
branch or tag it builds and at which commit. It only reads: no git, no network, no decision
about what to run (orch.ci.decide does that).

Travis: https://docs.travis-ci.com/user/environment-variables/#default-environment-variables
(on a pull-request build TRAVIS_BRANCH is the *target* branch, TRAVIS_COMMIT the merge
commit; TRAVIS_PULL_REQUEST_SLUG is the head repository, TRAVIS_SECURE_ENV_VARS says whether
encrypted variables were given, which fork builds never are).
GitHub Actions: https://docs.github.com/en/actions/reference/variables-reference and
https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request (a pull request
from a fork has `pull_request.head.repo.full_name` other than `repository.full_name`; its
workflow gets no secrets and a read-only GITHUB_TOKEN, as does one opened by Dependabot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orch.errors import ConfigError

PULL_REQUEST, PUSH, TAG, OTHER = "pull_request", "push", "tag", "other"
GITHUB_PR_EVENTS = frozenset({"pull_request", "pull_request_target"})


@dataclass(frozen=True)
class CiEvent:
    """One CI build, in provider-neutral terms.

    `kind`: pull_request, push (to a branch), tag (a pushed tag) or other (cron, api,
    workflow_dispatch, no CI at all). `branch`: the pushed branch, or for a pull request the
    branch it targets. `commit`: the commit the build runs (a PR's merge commit).
    `secrets`: the build was given the repository's secrets. `trigger`: the provider's own
    name of the event (TRAVIS_EVENT_TYPE, GITHUB_EVENT_NAME), for messages.
    """

    provider: str  # travis | github | none
    kind: str
    trigger: str
    commit: str | None = None
    branch: str | None = None
    tag: str | None = None
    pull_request: int | None = None
    repository: str | None = None  # owner/name of the repository the build belongs to
    head_repository: str | None = None  # a pull request's source repository
    fork: bool = False
    secrets: bool = True

    def describe(self) -> str:
        """`pull request #12 into main from a fork`, `push to main`, `tag v1.2.3`, ..."""
        where = {"travis": "Travis CI", "github": "GitHub Actions"}.get(self.provider, "no known CI")
        if self.kind == PULL_REQUEST:
            text = f"pull request #{self.pull_request} into {self.branch}"
            if self.fork:
                text += f" from the fork {self.head_repository or '(deleted)'}"
        elif self.kind == PUSH:
            text = f"push to {self.branch}"
        elif self.kind == TAG:
            text = f"tag {self.tag}"
        else:
            text = f"{self.trigger or 'no build event'}" + (f" on {self.branch}" if self.branch else "")
        commit = f" at {self.commit[:12]}" if self.commit else ""
        return f"{text}{commit} ({where})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_event(env: Mapping[str, str], read_file: Callable[[str], str] | None = None) -> CiEvent:
    """The build described by `env` (os.environ in real life). `read_file` reads GitHub's
    event payload (default: from disk). Travis is recognised by TRAVIS=true, GitHub Actions
    by GITHUB_ACTIONS=true; with neither the event is `other` (not a CI build).

    Raises ConfigError naming the variable when the CI's own variables contradict
    themselves (a pull request without a number, an unreadable payload file).
    """
    if env.get("TRAVIS") == "true":
        return _travis(env)
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env, read_file or (lambda path: Path(path).read_text(encoding="utf-8")))
    return CiEvent("none", OTHER, "", commit=None)


def _travis(env: Mapping[str, str]) -> CiEvent:
    trigger = env.get("TRAVIS_EVENT_TYPE", "")
    commit = env.get("TRAVIS_COMMIT") or None
    branch = env.get("TRAVIS_BRANCH") or None
    repository = env.get("TRAVIS_REPO_SLUG") or None
    secrets = env.get("TRAVIS_SECURE_ENV_VARS") == "true"
    common = {"commit": commit, "repository": repository, "secrets": secrets}
    if trigger == "pull_request":
        number = _number("TRAVIS_PULL_REQUEST", env.get("TRAVIS_PULL_REQUEST", ""))
        head = env.get("TRAVIS_PULL_REQUEST_SLUG") or None
        fork = head != repository
        return CiEvent("travis", PULL_REQUEST, trigger, branch=branch, pull_request=number,
                       head_repository=head, fork=fork, **common)
    tag = env.get("TRAVIS_TAG") or None
    if trigger == "push" and tag:
        return CiEvent("travis", TAG, trigger, tag=tag, **common)
    if trigger == "push":
        return CiEvent("travis", PUSH, trigger, branch=branch, **common)
    return CiEvent("travis", OTHER, trigger, branch=branch, **common)


def _github(env: Mapping[str, str], read_file: Callable[[str], str]) -> CiEvent:
    trigger = env.get("GITHUB_EVENT_NAME", "")
    commit = env.get("GITHUB_SHA") or None
    ref = env.get("GITHUB_REF", "")
    repository = env.get("GITHUB_REPOSITORY") or None
    if trigger in GITHUB_PR_EVENTS:
        payload = _payload(env, read_file)
        pr = payload.get("pull_request") or {}
        number = pr.get("number")
        if not isinstance(number, int):
            raise ConfigError(f"GITHUB_EVENT_PATH={env.get('GITHUB_EVENT_PATH')}: the {trigger} payload has no "
                              "pull_request.number.")
        head_repo = (pr.get("head") or {}).get("repo")  # null when the fork was deleted
        base_name = ((payload.get("repository") or {}).get("full_name")) or repository
        head_name = head_repo.get("full_name") if isinstance(head_repo, dict) else None
        fork = head_name is None or head_name != base_name
        branch = ((pr.get("base") or {}).get("ref")) or env.get("GITHUB_BASE_REF") or None
        # Dependabot's pull requests get no secrets either, from the same repository too:
        # https://docs.github.com/en/code-security/dependabot/troubleshooting-dependabot/troubleshooting-dependabot-on-github-actions
        bot = env.get("GITHUB_ACTOR") == "dependabot[bot]"
        return CiEvent("github", PULL_REQUEST, trigger, commit=commit, branch=branch, pull_request=number,
                       repository=base_name, head_repository=head_name, fork=fork, secrets=not (fork or bot))
    if trigger == "push" and ref.startswith("refs/tags/"):
        return CiEvent("github", TAG, trigger, commit=commit, tag=ref.removeprefix("refs/tags/"),
                       repository=repository)
    if trigger == "push" and ref.startswith("refs/heads/"):
        return CiEvent("github", PUSH, trigger, commit=commit, branch=ref.removeprefix("refs/heads/"),
                       repository=repository)
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return CiEvent("github", OTHER, trigger, commit=commit, branch=branch, repository=repository)


def _payload(env: Mapping[str, str], read_file: Callable[[str], str]) -> dict[str, Any]:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise ConfigError("GITHUB_EVENT_PATH is not set, so orch cannot tell which pull request this is.",
                          hint="GitHub Actions sets it for every workflow run; run `orch ci` inside one.")
    try:
        data = json.loads(read_file(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GITHUB_EVENT_PATH={path}: cannot read the event payload ({exc}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"GITHUB_EVENT_PATH={path}: the event payload is not a JSON object.")
    return data


def _number(name: str, value: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,9}", value):
        raise ConfigError(f"{name}={value!r}: a pull-request build needs the pull request's number there.")
    return int(value)
