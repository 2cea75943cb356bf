"""The lock on a stage's Terraform state: who holds it, since when, for which operation.

Read from what Terraform writes as JSON, never from its messages: for an S3 backend the
`<key>.tflock` object beside the state (S3 native locking, Terraform 1.10+), for local state
`.terraform.tfstate.lock.info` plus the kernel's record lock on `terraform.tfstate` (which
names the holding process and vanishes with it). It also finds the processes of this project
that may hold a lock (orch's run records, terraform processes working in the stage's folder).
It never takes, changes or removes a lock: forcing one open is `terraform force-unlock`,
run by orch.terraform.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from orch import daemonlock, tfruns
from orch.errors import TerraformError

LOCAL_STATE = "terraform.tfstate"
LOCAL_INFO = ".terraform.tfstate.lock.info"
S3_SUFFIX = ".tflock"  # internal/backend/remote-state/s3: lockFilePath = statePath + ".tflock"


class ObjectReader(Protocol):
    def read_object(self, bucket: str, key: str) -> bytes | None: ...


@dataclass(frozen=True)
class LockInfo:
    """A held state lock, as Terraform's LockInfo JSON says (ID, Operation, Who, Version,
    Created, Path), with where orch read it and, for local state, the holding process."""

    id: str
    operation: str
    who: str
    version: str
    created: str
    path: str
    where: str
    holder_pid: int | None = None

    @classmethod
    def from_json(cls, data: Any, where: str, holder_pid: int | None = None) -> LockInfo:
        data = data if isinstance(data, dict) else {}
        return cls(str(data.get("ID", "")), str(data.get("Operation", "")), str(data.get("Who", "")),
                   str(data.get("Version", "")), str(data.get("Created", "")), str(data.get("Path", "")),
                   where, holder_pid)

    @property
    def verb(self) -> str:
        """`apply` from Terraform's `OperationTypeApply` ('' when unknown)."""
        return self.operation.removeprefix("OperationType").lower()

    @property
    def since(self) -> str:
        """When it was taken, in UTC to the second (Terraform writes RFC 3339 with nanoseconds)."""
        text = self.created
        try:
            stamp = datetime.datetime.fromisoformat(text[:26].rstrip("Z") if "." in text else text.rstrip("Z"))
        except ValueError:
            return text or "an unknown time"
        return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")

    def text(self) -> str:
        """`lock ID, taken by WHO for `terraform VERB` at TIME (Terraform VERSION)`."""
        by = f" by {self.who}" if self.who else ""
        what = f" for `terraform {self.verb}`" if self.verb else ""
        pid = f" (pid {self.holder_pid})" if self.holder_pid else ""
        version = f" (Terraform {self.version})" if self.version else ""
        return f"lock {self.id or '(no id)'}, taken{by}{pid}{what} at {self.since}{version}"


def read_local(workdir: Path) -> LockInfo | None:
    """The lock on a local state, or None when no live process holds it (the lock info file a
    killed Terraform leaves is harmless then: the kernel dropped its lock)."""
    pid = daemonlock.holder(workdir / LOCAL_STATE)
    if pid is None:
        return None
    return LockInfo.from_json(daemonlock.read(workdir / LOCAL_INFO), str(workdir / LOCAL_INFO), pid)


def read_s3(aws: ObjectReader, bucket: str, state_key: str) -> LockInfo | None:
    """The lock object of an S3 backend's state, or None when there is none. AwsError when S3
    cannot be asked."""
    key = state_key + S3_SUFFIX
    raw = aws.read_object(bucket, key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    return LockInfo.from_json(data, f"s3://{bucket}/{key}")


def local_holders(workdir: Path) -> list[str]:
    """Processes of this project that may hold the stage's lock: Terraform runs orch started
    that still run, and any terraform process working in the stage's folder."""
    found = [record.describe() for record in tfruns.records(workdir) if record.alive]
    known = {record.pid for record in tfruns.records(workdir) if record.alive}
    target = str(workdir.resolve())
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.info["pid"] in known or not str(proc.info["name"] or "").startswith("terraform"):
                continue
            if proc.cwd() == target and proc.name() == "terraform":
                found.append(f"terraform (pid {proc.pid}) working in {target}")
        except (psutil.Error, OSError):
            continue
    return found


class StateLocked(TerraformError):
    """The stage's state is locked by someone else (exit 4)."""


class NotLocked(TerraformError):
    """`orch unlock` found no lock to open."""


def locked_error(stage: str, lock: LockInfo, holders: list[str], unlock_command: str, waited: str) -> StateLocked:
    """The error for a Terraform run that could not take the lock within -lock-timeout:
    who holds it, since when, for what, and the way out."""
    message = f"the state of stage {stage!r} is locked: {lock.text()}; Terraform waited {waited} for it ({lock.where})."
    if holders:
        hint = "It is held by " + "; ".join(holders) + ", still running on this machine: wait for it to end."
    else:
        hint = (f"If no one is running Terraform on this stage (a killed run left the lock), open it with "
                f"`{unlock_command}`; the next apply then adopts whatever that run left in AWS.")
    return StateLocked(message, hint=hint)
