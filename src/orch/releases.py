"""Release records: what was released to a stage, whether it passed its smoke checks, and
what a rollback needs; stored next to the stage's state.

A record names the stage, the target, the package's SHA-256, the version the alias serves
and the deployment, the smoke report, the time, and the tfvars Terraform applied (for a
later rollback). `orch apply` and `orch rollback` write one after each Terraform run;
`orch sync` writes one (kind "sync") for each code release it made without Terraform, with
the tfvars and deployment Terraform last applied. Records live in the S3 backend's bucket under the state
key's folder (`.../releases/<id>.json`), or under the stage's working folder for a local
backend (`.orch/work/<target>/<stage>/releases/`): sandbox and AWS never share them. This
module reads and writes records and answers questions about them (the last good release, did
a package pass, is the stage rolled back); it runs no Terraform and no checks.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from orch import __version__
from orch.config import Stage
from orch.errors import AwsNotFound

SCHEMA = 1
FOLDER = "releases"


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Release:
    """One release of a stage (an apply, a rollback, or a sync) and how its smoke checks went.

    `kind`: "apply", "rollback" or "sync" (`orch sync`: new code published as a version and
    the alias moved to it through Lambda's API, no Terraform run). `passed`: True/False after
    the checks, None when they were skipped (`--no-smoke`). `function_version` is the version
    the release put behind the alias, `package_sha256` (hex) that version's package; a sync
    that failed its checks had its alias moved back by orch sync at once (`reverted`), so the
    stage serves the release before it. `tfvars` are the values Terraform applied (for a sync:
    those of Terraform's last run, which the sync did not change; a rollback from or to it
    applies them with the alias pinned, so nothing is published);
    `smoke_settings` the stage's `smoke:` section as it was, so the release can be checked
    again after a later rollback. `rolled_back_from` names the failed release a rollback
    replaced; `promotion` says how the promotion check went ("passed", "skipped", None).
    """

    id: str
    stage: str
    target: str
    kind: str
    time: str
    package_sha256: str
    function_version: str
    deployment_id: str
    published_version: str | None = None
    passed: bool | None = None
    smoke: Mapping[str, Any] | None = None
    tfvars: Mapping[str, Any] = field(default_factory=dict)
    smoke_settings: Mapping[str, Any] = field(default_factory=dict)
    sandbox_epoch: str | None = None
    rolled_back_from: str | None = None
    reason: str = ""
    promotion: str | None = None
    orch_version: str = __version__
    schema: int = SCHEMA

    @property
    def short(self) -> str:
        """`version 4 (package 1a2b3c4d5e6f…)`: how messages name a release (a sync's ends
        `…, by orch sync)`)."""
        how = ", by orch sync" if self.kind == "sync" else ""
        return f"version {self.function_version} (package {self.package_sha256[:12]}…{how})"

    @property
    def reverted(self) -> bool:
        """A sync that failed its checks: orch sync moved the alias back right away, so this
        release never stayed in service (the one before it is what the stage serves)."""
        return self.kind == "sync" and self.passed is False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Release:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def new_id(kind: str, package_sha256: str, now: datetime | None = None) -> str:
    """`20250102T030405.123456Z-apply-1a2b3c4d`: sorts by time; unique."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{kind}-{package_sha256[:8]}-{uuid.uuid4().hex[:6]}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- where they live


@dataclass(frozen=True)
class Location:
    """Where a stage's records live on one target: a local folder, or a bucket and prefix."""

    stage: str
    target: str
    folder: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    region: str | None = None

    def describe(self) -> str:
        return str(self.folder) if self.folder is not None else f"s3://{self.bucket}/{self.prefix}"


def location_of(stage: Stage, target: str) -> Location:
    """Next to the stage's state: `<state key's folder>/releases/` in the S3 backend's bucket,
    else `.orch/work/<target>/<stage>/releases/`. Pure."""
    backend = stage.config.backend
    if backend.type == "s3" and backend.bucket:
        key = backend.key or f"orch/{stage.config.project}/{stage.name}/terraform.tfstate"
        prefix = posixpath.join(posixpath.dirname(key), FOLDER) + "/"
        return Location(stage.name, target, bucket=backend.bucket, prefix=prefix,
                        region=backend.region or stage.config.region)
    folder = stage.project_dir / ".orch" / "work" / target / stage.name / FOLDER
    return Location(stage.name, target, folder=folder)


class Store(Protocol):
    """Named JSON documents: a folder or an S3 prefix."""

    def names(self) -> list[str]: ...
    def read(self, name: str) -> Any: ...
    def write(self, name: str, document: Any) -> None: ...


class FolderStore:
    """Records as files in a folder (written atomically)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.glob("*.json"))

    def read(self, name: str) -> Any:
        return json.loads((self.folder / name).read_text(encoding="utf-8"))

    def write(self, name: str, document: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, sort_keys=True)
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class BucketStore:
    """Records as objects under a prefix of an S3 bucket, through orch.aws."""

    def __init__(self, aws: Any, bucket: str, prefix: str) -> None:
        self.aws, self.bucket, self.prefix = aws, bucket, prefix

    def names(self) -> list[str]:
        try:
            keys = self.aws.list_keys(self.bucket, self.prefix)
        except AwsNotFound:
            return []
        return sorted(k[len(self.prefix):] for k in keys if k.endswith(".json") and "/" not in k[len(self.prefix):])

    def read(self, name: str) -> Any:
        return self.aws.get_json(self.bucket, self.prefix + name)

    def write(self, name: str, document: Any) -> None:
        self.aws.put_json(self.bucket, self.prefix + name, document)


def open_store(location: Location, aws: Callable[[str | None], Any]) -> Store:
    """The store at `location`; `aws(region)` builds the orch.aws.Aws an S3 location needs."""
    if location.folder is not None:
        return FolderStore(location.folder)
    return BucketStore(aws(location.region), str(location.bucket), location.prefix)


# ---------------------------------------------------------------------------- reading and writing


def record_document(release: Release) -> dict[str, Any]:
    """What is stored for `release`: the one place every record passes on its way out (so
    redaction of secret values belongs here: every registered secret is masked)."""
    from orch.redact import redact_data

    return redact_data(release.as_dict())


class Releases:
    """The records of one stage on one target, newest first."""

    def __init__(self, store: Store, location: Location) -> None:
        self.store = store
        self.location = location

    def write(self, release: Release) -> None:
        self.store.write(f"{release.id}.json", record_document(release))

    def __iter__(self) -> Iterator[Release]:
        for name in reversed(self.store.names()):
            yield Release.from_dict(self.store.read(name))

    def latest(self) -> Release | None:
        """The newest record, whatever it says (None: no records)."""
        return next(iter(self), None)

    def current(self) -> Release | None:
        """The release the stage serves by its records: the newest one, passing over syncs
        that failed their checks (orch sync moved the alias back to what the release before
        them served). None: no such record."""
        return next((r for r in self if not r.reverted), None)

    def rollback_candidates(self, *, exclude: str | None = None, epoch: str | None = None) -> Iterator[Release]:
        """Releases that passed their checks (applies, syncs and rollbacks alike), newest first
        (not `exclude`; in the sandbox only those of the sandbox run `epoch`, since a restarted
        sandbox lost every version). A failed sync never qualifies: it did not pass."""
        for release in self:
            if release.id == exclude or release.passed is not True:
                continue
            if epoch is not None and release.sandbox_epoch != epoch:
                continue
            yield release

    def passed_package(self, package_sha256: str) -> Release | None:
        """The newest release of this package that passed its smoke checks (through `orch
        apply`, `orch rollback` or `orch sync`), if any."""
        return next((r for r in self if r.package_sha256 == package_sha256 and r.passed is True), None)


def status_line(stage: str, latest: Release | None, apply_hint: str) -> str | None:
    """What `orch plan`/`orch rollback` say about a stage whose current release (Releases.current)
    is a rollback, one that failed, or a sync (None: nothing to say).

    `apply_hint` is the command that releases the stage files again (`orch apply dev --sandbox`).
    """
    if latest is None:
        return None
    if latest.kind == "sync":
        checked = {True: "passed its smoke checks", False: "failed its smoke checks",
                   None: "was not checked (--no-smoke)"}[latest.passed]
        return (f"stage {stage!r} serves {latest.short}, released at {latest.time} without Terraform; it "
                f"{checked}. Terraform has not applied that code: this plan shows it as pending, and `{apply_hint}` "
                "releases it through Terraform.")
    if latest.kind == "rollback":
        why = f": {latest.reason}" if latest.reason else ""
        return (f"stage {stage!r} is rolled back to {latest.short} since {latest.time}{why}. "
                f"This plan shows what releasing the stage files again changes; `{apply_hint}` "
                "does that and runs the smoke checks again.")
    if latest.passed is False:
        return (f"stage {stage!r}: its last release, {latest.short} at {latest.time}, failed its smoke "
                "checks and there was nothing to roll back to; it still serves.")
    return None


# ---------------------------------------------------------------------------- the outcome


@dataclass(frozen=True)
class Verdict:
    """How a release (or a rollback) ended, typed for the CLI, `orch ci` and chat messages.

    `status`: "passed" (checks passed), "unchecked" (`--no-smoke`), "failed" (checks failed,
    nothing to roll back to: the release stays), "rolled_back" (checks failed, the stage
    serves `rolled_back_to` again and its checks passed), "rollback_failed" (rolled back, but
    the checks failed again). `smoke` is the release's report, `recheck` the one after the
    rollback (orch.smoke.SmokeReport).
    """

    status: str
    stage: str
    target: str
    release: Release | None = None
    smoke: Any = None
    rolled_back_to: Release | None = None
    rollback: Release | None = None
    recheck: Any = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "unchecked")

    def message(self) -> str:
        """One paragraph: what happened, what was rolled back and why."""
        what = self.release.short if self.release is not None else "the release"
        if self.status == "passed":
            return f"stage {self.stage!r}: {what} passed its smoke checks."
        if self.status == "unchecked":
            return f"stage {self.stage!r}: {what} was released without smoke checks (--no-smoke)."
        if self.status == "failed":
            return (f"stage {self.stage!r}: {what} failed its smoke checks ({self.reason}); there is no earlier "
                    "release that passed its checks to roll back to, so it stays in place.")
        target = self.rolled_back_to.short if self.rolled_back_to is not None else "the previous release"
        if self.smoke is None:  # `orch rollback`: no release was checked, a person asked for it
            verdict = ("its checks pass" if self.status == "rolled_back"
                       else "but its checks fail: look at the stage now")
            return f"stage {self.stage!r}: rolled back by hand from {what} to {target}; {verdict}."
        if self.status == "rolled_back":
            return (f"stage {self.stage!r}: {what} failed its smoke checks ({self.reason}); rolled back to {target}, "
                    "whose checks pass again.")
        return (f"stage {self.stage!r}: {what} failed its smoke checks ({self.reason}); rolled back to {target}, "
                "but its checks failed too: look at the stage now.")

    def as_dict(self) -> dict[str, Any]:
        def report(value: Any) -> Any:
            return value.as_dict() if value is not None else None

        def brief(value: Release | None) -> Any:
            if value is None:
                return None
            return {k: getattr(value, k) for k in ("id", "kind", "time", "package_sha256", "function_version",
                                                   "deployment_id", "passed")}

        return {"status": self.status, "stage": self.stage, "target": self.target, "reason": self.reason,
                "message": self.message(), "release": brief(self.release), "smoke": report(self.smoke),
                "rolled_back_to": brief(self.rolled_back_to), "rollback": brief(self.rollback),
                "recheck": report(self.recheck)}


def failure_reason(report: Any) -> str:
    """`N of M checks failed: <first failure>` from an orch.smoke.SmokeReport."""
    failures = report.failures
    first = f"{failures[0].name}: {failures[0].message}" if failures else ""
    if len(first) > 300:
        first = first[:299] + "…"
    return f"{len(failures)} of {len(report.checks)} checks failed, first {first}"
