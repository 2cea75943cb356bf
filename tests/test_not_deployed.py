"""Every command that reads or changes a deployed stage says the same thing, with exit 8, when
the stage is not deployed where it looks: the stage, where, why, and the `orch apply` to run.

Three places a never-applied stage is looked for: real AWS without credentials (orch can tell
from the missing local state), an AWS API that has no such function (an in-process moto server
behind AWS_ENDPOINT_URL, with dummy credentials), and the sandbox, not running or running.
Only the last starts a sandbox daemon (one for the module, marked `daemon`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import cli, make_project, orch

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
DUMMY_CREDENTIALS = {**NO_CREDENTIALS, "AWS_ACCESS_KEY_ID": "AKIAORCHTESTEXAMPLE1",
                     "AWS_SECRET_ACCESS_KEY": "orch/test/secret/key/that/is/not/real0000"}


@pytest.fixture(scope="module")
def running_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose sandbox runs and holds no stage (started once for the module)."""
    project = make_project(tmp_path_factory.mktemp("running") / "proj")
    started = orch("sandbox", "start", cwd=project)
    assert started.code == 0, started.output
    try:
        yield project
    finally:
        orch("sandbox", "stop", cwd=project)


COMMANDS = {
    "output": ["output", "dev"],
    "smoke": ["smoke", "dev"],
    "logs": ["logs", "dev"],
    "invoke": ["invoke", "dev", "--data", "{}"],
    "sync": ["sync", "dev", "--no-smoke"],
    "rollback": ["rollback", "dev", "--yes"],
    "serve": ["serve", "dev"],
}
CASES = [
    # (where, command, the reason the message gives)
    *[("aws, no credentials", name, "never applied") for name in ("output", "smoke", "rollback")],
    *[("aws api", name, "has no alias 'dev'") for name in ("invoke", "sync")],
    ("aws api", "logs", "log group /aws/lambda/orch-loopback-dev does not exist"),
    *[("sandbox stopped", name, reason) for name, reason in (
        ("output", "never applied"), ("smoke", "never applied"), ("serve", "never applied"),
        ("logs", "sandbox is not running"), ("invoke", "sandbox is not running"),
        ("sync", "sandbox is not running"), ("rollback", "sandbox is not running"))],
    *[pytest.param("sandbox running", name, "never applied", marks=pytest.mark.daemon)
      for name in ("output", "smoke", "logs", "invoke", "sync", "rollback", "serve")],
]


@pytest.mark.parametrize(("where", "command", "reason"), CASES)
def test_a_stage_that_was_never_applied_is_not_deployed_exit_8(
    where: str, command: str, reason: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    args = list(COMMANDS[command])
    env: dict[str, str | None] = dict(NO_CREDENTIALS)
    if where == "aws api":
        env = {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": request.getfixturevalue("moto_endpoint")}
    if where.startswith("sandbox"):
        args.append("--sandbox")
    project = request.getfixturevalue("running_sandbox") if where == "sandbox running" else make_project(
        tmp_path / "proj")

    result = cli(*args, cwd=project, env=env)

    assert result.code == 8, result.output
    # one paragraph at the end (sync prints its steps before it), whatever the command
    assert "\norch: not deployed: stage 'dev' is not deployed " in "\n" + result.stderr, result.stderr
    assert ("in the sandbox" if where.startswith("sandbox") else "in AWS") in result.stderr
    assert reason in result.stderr
    assert f"Apply it first: `orch apply dev{' --sandbox' if where.startswith('sandbox') else ''}`" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    if where == "aws api":
        assert "account 123456789012, region ap-northeast-2" in result.stderr  # moto's STS names the account
    if where == "sandbox stopped":
        assert not (project / ".orch" / "sandbox").exists()  # nothing started
