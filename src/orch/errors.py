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
