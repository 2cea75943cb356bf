"""Plan summaries a reviewer reads: per stage, the resources a plan adds, changes, replaces
and destroys (by address, from Terraform's JSON plan), and which files of the function
package change between the deployed code and this one (names, sizes, a line count of the
diff for text files), as Markdown.

This module owns the summary's content and shape, including the hidden marker that lets
orch find its own pull-request comment again. It reads zips and plan data; it never runs
Terraform, never calls AWS itself (the deployed zip comes from a `fetch` it is given) and
never prints. The text it returns goes through the redaction of whoever prints or posts it.
"""

from __future__ import annotations

import base64
import difflib
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orch.tfplan import PlanView

MARKER = "<!-- orch:plan-summary -->"
"""Hidden first line of orch's pull-request comment: how orch finds it to update it."""
GROUPS = (("add", ("create",)), ("change", ("update",)), ("replace", ("replace", "replace-forget")),
          ("destroy", ("delete",)))
SYMBOLS = {"add": "+", "change": "~", "replace": "-/+", "destroy": "-"}
TEXT_DIFF_LIMIT = 512 * 1024  # bytes: larger files get sizes only (difflib is quadratic at worst)
MAX_ADDRESSES = 40  # per group and stage
MAX_FILES = 60  # per stage
MAX_CHARS = 60_000  # GitHub refuses comment bodies over 65,536 characters


# ---------------------------------------------------------------------------- package files


@dataclass(frozen=True)
class FileChange:
    """One file of the function package that differs: `change` is added, removed or changed;
    sizes in bytes (uncompressed); `lines_added`/`lines_removed` for text files (None: binary,
    or larger than TEXT_DIFF_LIMIT)."""

    name: str
    change: str
    size_before: int | None
    size_after: int | None
    lines_added: int | None = None
    lines_removed: int | None = None


def package_diff(before: Path | bytes, after: Path | bytes) -> list[FileChange]:
    """The files that differ between two zips (by name; content compared by size and CRC-32,
    then read), sorted by name."""
    with _open(before) as old, _open(after) as new:
        old_files = {i.filename: i for i in old.infolist() if not i.is_dir()}
        new_files = {i.filename: i for i in new.infolist() if not i.is_dir()}
        changes = []
        for name in sorted(old_files.keys() | new_files.keys()):
            a, b = old_files.get(name), new_files.get(name)
            if a is not None and b is not None and (a.CRC, a.file_size) == (b.CRC, b.file_size):
                continue
            kind = "added" if a is None else "removed" if b is None else "changed"
            old_text = _text(old, a) if a is not None else ""
            new_text = _text(new, b) if b is not None else ""
            added = removed = None
            if old_text is not None and new_text is not None:
                added, removed = _line_counts(old_text, new_text)
            changes.append(FileChange(name, kind, a.file_size if a else None, b.file_size if b else None,
                                      added, removed))
    return changes


def _open(source: Path | bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)


def _text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    if info.file_size > TEXT_DIFF_LIMIT:
        return None
    data = archive.read(info)
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _line_counts(old: str, new: str) -> tuple[int, int]:
    added = removed = 0
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
        if line.startswith(("+++", "---")):
            continue
        if line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    return added, removed


@dataclass(frozen=True)
class PackageChange:
    """The package's change for one stage: SHA-256s (hex) before and after, the files that
    differ, and a note when they could not be compared (first deploy, code not found)."""

    before: str | None
    after: str | None
    files: tuple[FileChange, ...] = ()
    note: str = ""


Fetch = Callable[[str, str], "Path | bytes | None"]
"""(function name, base64 CodeSha256) -> the deployed zip (a path or its bytes), or None."""


def package_change(plan: PlanView, new_package: Path | None, new_sha256_hex: str | None, fetch: Fetch) -> PackageChange:
    """Compare the deployed function code (from the plan's prior state, fetched with `fetch`)
    with the package this plan deploys."""
    if not plan.deployed_code:
        return PackageChange(None, new_sha256_hex, (), "not deployed yet: every file is new")
    code = plan.deployed_code[0]
    before = base64.b64decode(code.code_sha256).hex()
    if new_sha256_hex == before:
        return PackageChange(before, new_sha256_hex, (), "unchanged")
    if new_package is None:
        return PackageChange(before, new_sha256_hex, (), "no new package to compare (a saved plan)")
    deployed = fetch(code.function_name, code.code_sha256)
    if deployed is None:
        return PackageChange(before, new_sha256_hex, (),
                             f"the deployed code ({before[:12]}) is neither in the package store nor downloadable")
    return PackageChange(before, new_sha256_hex, tuple(package_diff(deployed, new_package)))


# ---------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class StageSummary:
    """One stage's plan in a reviewer's terms. `changes`: group (add, change, replace,
    destroy) -> addresses; `failed`: why the plan failed (then nothing else is known)."""

    stage: str
    target: str
    text: str  # Terraform's own counts, e.g. "1 to add, 2 to change, 0 to destroy"
    changes: dict[str, tuple[str, ...]]
    package: PackageChange | None = None
    failed: str | None = None

    @classmethod
    def of(cls, stage: str, target: str, plan: PlanView, package: PackageChange | None) -> StageSummary:
        groups = {name: tuple(plan.addresses(*actions)) for name, actions in GROUPS}
        return cls(stage, target, plan.text(), groups, package)

    @classmethod
    def failure(cls, stage: str, target: str, why: str) -> StageSummary:
        return cls(stage, target, "plan failed", {name: () for name, _ in GROUPS}, None, why)


def markdown(summaries: Sequence[StageSummary], *, title: str, notes: Sequence[str] = ()) -> str:
    """The summary as GitHub-flavoured Markdown, starting with MARKER, at most MAX_CHARS long."""
    lines = [MARKER, f"### {title}", ""]
    for note in notes:
        lines += [f"> {note}", ""]
    lines += ["| stage | target | add | change | replace | destroy | Terraform |",
              "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for s in summaries:
        counts = " | ".join(str(len(s.changes[name])) if not s.failed else "-" for name, _ in GROUPS)
        lines.append(f"| {s.stage} | {s.target} | {counts} | {s.text} |")
    for s in summaries:
        lines += ["", f"#### {s.stage}: {s.text}", ""]
        if s.failed:
            lines += [f"The plan failed: {s.failed}"]
            continue
        for name, _ in GROUPS:
            addresses = s.changes[name]
            if not addresses:
                continue
            lines.append(f"**{name}** ({len(addresses)})")
            lines += [f"- `{SYMBOLS[name]} {address}`" for address in addresses[:MAX_ADDRESSES]]
            if len(addresses) > MAX_ADDRESSES:
                lines.append(f"- ... and {len(addresses) - MAX_ADDRESSES} more")
            lines.append("")
        if not any(s.changes.values()):
            lines += ["No resource changes.", ""]
        if s.package is not None:
            lines += _package_lines(s.package)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > MAX_CHARS:
        cut = text[:MAX_CHARS].rsplit("\n", 1)[0]
        text = cut + f"\n\n_(summary cut at {MAX_CHARS:,} characters; the job log has all of it)_\n"
    return text


def _package_lines(change: PackageChange) -> list[str]:
    before = f"`{change.before[:12]}`" if change.before else "nothing"
    after = f"`{change.after[:12]}`" if change.after else "?"
    head = f"**function package** {before} → {after}"
    if change.note:
        return [f"{head}: {change.note}", ""]
    lines = [head, "", "| file | change | size | diff |", "| --- | --- | --- | --- |"]
    for f in change.files[:MAX_FILES]:
        lines.append(f"| `{f.name}` | {f.change} | {_sizes(f)} | {_lines(f)} |")
    if len(change.files) > MAX_FILES:
        lines.append(f"| ... | {len(change.files) - MAX_FILES} more files | | |")
    return lines + [""]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1048576:.1f} MB"


def _sizes(f: FileChange) -> str:
    if f.change == "changed":
        return f"{_size(f.size_before)} → {_size(f.size_after)}"
    return _size(f.size_after if f.change == "added" else f.size_before)


def _lines(f: FileChange) -> str:
    if f.lines_added is None or f.lines_removed is None:
        return "binary" if (f.size_before or 0) <= TEXT_DIFF_LIMIT and (f.size_after or 0) <= TEXT_DIFF_LIMIT \
            else "too large to diff"
    return f"+{f.lines_added} −{f.lines_removed} lines"
