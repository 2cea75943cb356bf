"""Is the build's commit still what it deploys? An apply from CI refuses to deploy a commit
that is no longer the head of its branch (a restarted old build), or a release tag that was
moved or is no longer the newest release, unless --allow-stale-commit.

This module owns that check, asked of the git remote itself (`git ls-remote`, which needs
no fetch and works on shallow clones), so a test can point the remote at a local bare
repository. It runs git and reads its output; it changes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from orch.errors import Refused

GIT_TIMEOUT_SECONDS = 60
OVERRIDE = "--allow-stale-commit"

Git = Callable[[Sequence[str]], str]
"""Runs `git ARGS...` in the project and returns its stdout (raises Refused on failure)."""


def git_in(folder: Path) -> Git:
    """A Git runner for `folder` (no prompts for credentials: CI has no one to answer)."""

    def run(args: Sequence[str]) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        try:
            done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _cannot(f"`git {' '.join(args)}` did not run: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise _cannot(f"`git {' '.join(args)}` failed (exit {done.returncode}): {' '.join(tail)}")
        return done.stdout

    return run


def _cannot(why: str) -> Refused:
    return Refused(f"orch cannot check that this build's commit is still the one to deploy: {why}.",
                   hint=f"Run it where the git remote is reachable, or deploy without the check with {OVERRIDE}.")


def _refs(output: str) -> dict[str, str]:
    """`git ls-remote` lines (sha, tab, ref) as ref -> sha."""
    refs = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if sha and ref:
            refs[ref.strip()] = sha.strip()
    return refs


def check_branch_head(git: Git, remote: str, branch: str, commit: str) -> None:
    """Refused unless `commit` is the head of `branch` on `remote` now."""
    refs = _refs(git(["ls-remote", remote, f"refs/heads/{branch}"]))
    head = refs.get(f"refs/heads/{branch}")
    if head is None:
        raise _cannot(f"the remote {remote!r} has no branch {branch!r}")
    if head != commit:
        raise Refused(
            f"this build is of commit {commit[:12]}, but {branch} on {remote} is at {head[:12]} now: "
            "deploying it would replace newer code with older (a restarted old build?). Nothing was applied.",
            hint=f"The build of {head[:12]} deploys it. To deploy this older commit on purpose, run "
            f"`orch ci {OVERRIDE}`.",
        )


def check_release_tag(git: Git, remote: str, tag: str, commit: str, pattern: str) -> None:
    """Refused unless `tag` on `remote` still points at `commit` and no newer tag matching
    `pattern` exists there (newer: by the tag's numbers, v1.10.0 after v1.9.3)."""
    refs = _refs(git(["ls-remote", "--tags", remote]))
    target = refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")  # ^{}: an annotated tag's commit
    if target is None:
        raise _cannot(f"the remote {remote!r} has no tag {tag!r}")
    if target != commit:
        raise Refused(f"tag {tag} on {remote} points at {target[:12]} now, not at this build's commit {commit[:12]}. "
                      "Nothing was applied.", hint=f"The build of the moved tag deploys it; {OVERRIDE} overrides.")
    releases = {ref.removeprefix("refs/tags/").removesuffix("^{}") for ref in refs if ref.startswith("refs/tags/")}
    newer = sorted((t for t in releases if re.fullmatch(pattern, t) and version_key(t) > version_key(tag)),
                   key=version_key)
    if newer:
        raise Refused(
            f"tag {tag} is not the newest release on {remote} ({newer[-1]} is): deploying it would replace a "
            "newer release with an older one (a restarted old build?). Nothing was applied.",
            hint=f"To roll back to {tag} on purpose, run `orch ci {OVERRIDE}` (or `orch rollback`).",
        )


def version_key(tag: str) -> tuple[int, ...]:
    """The numbers in a tag, in order: v1.10.0 -> (1, 10, 0)."""
    return tuple(int(n) for n in re.findall(r"\d+", tag))
