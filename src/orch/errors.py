"""Every error orch reports on purpose, and the exit code each one maps to.

This is the only module that knows exit codes. Code raises an ``OrchError`` subclass with a
message that says where, what went wrong and what to do next; the CLI boundary prints it
(no traceback) and exits with ``exit_code``.
"""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    """Process exit codes that scripts can rely on (documented in the README)."""

    OK = 0
    INTERNAL = 1  # a bug in orch: please report it
    CHANGES_PRESENT = 2  # `orch plan --detailed-exitcode`: the plan has changes
    CONFIG = 3  # stage files, templates, arguments, packaging input
    TERRAFORM = 4  # terraform missing, init/plan/apply failed, stale plan file
    AWS = 5  # credentials, AWS API errors, S3 uploads
    SMOKE = 6  # post-deploy smoke checks failed
    SANDBOX = 7  # the embedded emulator or the local gateway could not start/serve
    NOT_DEPLOYED = 8  # the stage is not deployed where the command looks (never applied, destroyed, sandbox gone)
    USAGE = 64  # bad command line (unknown option, missing argument)
    ABORTED = 130  # the user declined a confirmation or pressed Ctrl-C (SIGINT: 128 + 2)
    TERMINATED = 143  # SIGTERM (128 + 15), as a shell reports a process it ended (CI cancelling a job)


class OrchError(Exception):
    """Base class: a failure orch expected and can explain."""

    exit_code: ExitCode = ExitCode.INTERNAL
    title: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ConfigError(OrchError):
    """A stage file, template, function source or argument is wrong."""

    exit_code = ExitCode.CONFIG
    title = "configuration error"


class PackageError(ConfigError):
    """The function package cannot be built or is over a Lambda size limit."""

    title = "packaging error"


class TerraformError(OrchError):
    """Terraform is missing, or one of its commands failed."""

    exit_code = ExitCode.TERRAFORM
    title = "terraform error"


class AwsError(OrchError):
    """No credentials, or an AWS API call failed."""

    exit_code = ExitCode.AWS
    title = "AWS error"


class AwsNotFound(AwsError):
    """An AWS API call named something that does not exist (a ...NotFound error)."""


class SmokeError(OrchError):
    """The deployed stage did not pass its smoke checks."""

    exit_code = ExitCode.SMOKE
    title = "smoke check failed"


class SandboxError(OrchError):
    """The embedded AWS emulator or the local gateway could not be started or reached."""

    exit_code = ExitCode.SANDBOX
    title = "sandbox error"


NEVER_APPLIED = "it was never applied there"
SANDBOX_RESTARTED = "the sandbox was restarted since it was applied, and lost its resources"
SANDBOX_NOT_RUNNING = "the sandbox is not running (a stopped sandbox loses its resources)"
DESTROYED = "it was destroyed"


class NotDeployedError(OrchError):
    """The stage is not deployed where the command looks: never applied there, destroyed, or
    its sandbox was restarted or stopped (exit 8). Commands that read or change a deployed
    stage (output, smoke, logs, invoke, sync, rollback, serve) raise it instead of a
    Terraform, AWS or sandbox error, so scripts can tell "apply it first" from a failure.

    One wording for all of them: ``stage 'dev' is not deployed <where>: <why>.`` with the hint
    ``Apply it first: `orch apply dev [--sandbox]`.`` ``where`` is "in the sandbox", or on AWS
    the account and region as far as they are known; ``why`` is one of NEVER_APPLIED,
    SANDBOX_RESTARTED, SANDBOX_NOT_RUNNING, DESTROYED, or what AWS said was missing (None:
    not known). ``then`` adds what the command does once the stage is deployed.
    """

    exit_code = ExitCode.NOT_DEPLOYED
    title = "not deployed"

    def __init__(self, stage: str, *, sandbox: bool, why: str | None = None, region: str | None = None,
                 account: str | None = None, then: str | None = None) -> None:
        self.stage = stage
        self.sandbox = sandbox
        self.why = why
        self.where = deployed_where(sandbox=sandbox, region=region, account=account)
        self.command = f"orch apply {stage}{' --sandbox' if sandbox else ''}"
        message = f"stage {stage!r} is not deployed {self.where}" + (f": {why}" if why else "") + "."
        hint = f"Apply it first: `{self.command}`" + (f"; {then}" if then else "") + "."
        super().__init__(message, hint=hint)


def deployed_where(*, sandbox: bool, region: str | None = None, account: str | None = None) -> str:
    """Where a stage is looked for, in words: "in the sandbox", "in AWS account 123456789012,
    region eu-west-1", "in AWS (region eu-west-1)" or "in AWS"."""
    if sandbox:
        return "in the sandbox"
    if account and region:
        return f"in AWS account {account}, region {region}"
    if account:
        return f"in AWS account {account}"
    return f"in AWS (region {region})" if region else "in AWS"


class Aborted(OrchError):
    """The user said no to a confirmation."""

    exit_code = ExitCode.ABORTED
    title = "aborted"


class Interrupted(OrchError):
    """SIGINT (Ctrl-C) or SIGTERM ended the command while orch could still say what happened:
    exit 130 for SIGINT, 143 for SIGTERM."""

    title = "interrupted"

    def __init__(self, message: str, *, signum: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.signum = signum
        self.exit_code = exit_code_for_signal(signum)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so the same
    clean-up runs; the CLI turns it into exit 143."""


def exit_code_for_signal(signum: int) -> ExitCode:
    """130 for SIGINT, 143 for SIGTERM (what orch exits with when a signal ends it)."""
    return ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.ABORTED


class Refused(Aborted):
    """orch would not change a stage because it could be unsafe (a plan that destroys the
    stage's API or function, a build of a commit that is no longer the branch's head); a
    flag named in the message overrides it."""

    title = "refused"


def worst(codes: list[int]) -> int:
    """The exit code of several runs (`--all`, `orch ci`): success only when every run
    succeeded; `CHANGES_PRESENT` over success; any failure over both; among failures the
    highest code (so ABORTED over TERRAFORM over CONFIG)."""
    failures = [code for code in codes if code not in (ExitCode.OK, ExitCode.CHANGES_PRESENT)]
    if failures:
        return max(failures)
    return ExitCode.CHANGES_PRESENT if ExitCode.CHANGES_PRESENT in codes else ExitCode.OK
