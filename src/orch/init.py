"""`orch init`: write a new project that `orch apply dev --sandbox` deploys at once.

This module owns the list of files a new project gets (`PROJECT_FILES`, copied from the
skeleton inside the installed package) and writing them without ever overwriting
anything. It does not validate, render or deploy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from orch.errors import ConfigError
from orch.resources import SKELETON_DIR

PROJECT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # the `project` key's rule (orch.config)
FALLBACK_NAME = "app"


@dataclass(frozen=True)
class ProjectFile:
    """One file `orch init` writes: `path` in the new project, from `source` in the skeleton.

    With `named`, the text's `project: orch` keys (and the example names built from them)
    become the new project's name; with `executable`, the file is written with mode 0755
    (a CI entry script, say).
    """

    path: str
    source: str
    named: bool = False
    executable: bool = False


PROJECT_FILES: tuple[ProjectFile, ...] = (
    ProjectFile("stages/defaults.yaml", "stages/defaults.yaml", named=True),
    ProjectFile("stages/dev.yaml", "stages/dev.yaml"),
    ProjectFile("stages/prod.yaml", "stages/prod.yaml"),
    ProjectFile("functions/loopback/handler.py", "functions/loopback/handler.py"),
    ProjectFile("functions/loopback/README.md", "functions/loopback/README.md"),
    ProjectFile(".gitignore", "gitignore"),
    ProjectFile("stages/ci.yaml", "stages/ci.yaml"),
    ProjectFile(".travis.yml", "travis.yml"),
    ProjectFile(".github/workflows/orch.yml", "github/workflows/orch.yml"),
    ProjectFile("scripts/install-terraform.sh", "scripts/install-terraform.sh"),
    ProjectFile("scripts/install-orch.sh", "scripts/install-orch.sh", executable=True),
)
"""Everything a new project gets: stages, the example function, and CI that runs `orch ci`
(Travis CI and GitHub Actions, the policy in stages/ci.yaml, the checksum-verified Terraform
installer they call). To add a file: append a ProjectFile here (its source under
src/orch/skeleton/, dot-files stored without the dot) and a matching pattern to
`[tool.setuptools.package-data]` in pyproject.toml; tests/test_project_files.py checks that
every source exists and ships in the wheel."""


def project_name_for(folder: Path) -> str:
    """A valid `project` value from a folder name: lower case, runs of other characters as
    one `-`, starting with a letter, at most 31 characters ("My API_v2" -> "my-api-v2")."""
    slug = re.sub(r"[^a-z0-9]+", "-", folder.name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:31].rstrip("-")
    return slug or FALLBACK_NAME


def _named(text: str, name: str) -> str:
    text = re.sub(r"(?m)^(\s*project:\s*)orch\b", rf"\g<1>{name}", text)
    return re.sub(r"\borch-loopback-", f"{name}-loopback-", text)


CI_PACKAGE_LINE = re.compile(r'(?m)^(\s*-?\s*ORCH_PACKAGE[=:]\s*)""$')
"""The empty `ORCH_PACKAGE` setting in the skeleton's CI files (Travis `- ORCH_PACKAGE=""`,
GitHub Actions `ORCH_PACKAGE: ""`), which orch init fills when it knows a source CI can reach."""


def ci_package_source(distribution: str = "orch") -> str | None:
    """The pip requirement a CI job can install this very orch from, or None.

    Known only when orch was installed from a version-control URL: pip records it in the
    distribution's `direct_url.json` (PEP 610,
    https://packaging.python.org/en/latest/specifications/direct-url-data-structure/), and the
    answer pins the commit: `orch[sandbox] @ git+https://host/org/orch@<commit_id>`. A local
    folder, an editable install or a package index gives None: public PyPI's `orch` is an
    unrelated project, so orch never guesses a name there.
    """
    try:
        text = metadata.distribution(distribution).read_text("direct_url.json")
        info = json.loads(text) if text else None
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("vcs_info"), dict):
        return None
    url, vcs = str(info.get("url", "")), info["vcs_info"]
    commit = vcs.get("commit_id")
    if not url or not commit or url.startswith("file:"):
        return None
    return f"orch[sandbox] @ {vcs.get('vcs', 'git')}+{url}@{commit}"


def _with_ci_package(text: str, source: str | None) -> str:
    if source is None:
        return text
    return CI_PACKAGE_LINE.sub(lambda m: m.group(1) + json.dumps(source), text)


def init_project(folder: Path, name: str | None = None) -> list[Path]:
    """Write a new project into `folder` (created when missing); return the files written.

    `name` is the `project` key (resource name prefix); default: from the folder's name.
    Raises ConfigError (nothing written) when `name` is not a valid project name, when
    `folder` is a file, or when any file of PROJECT_FILES already exists there. A failure
    while writing removes what this call wrote.
    """
    folder = Path(folder).absolute()
    if name is None:
        name = project_name_for(folder)
    elif not PROJECT_NAME_RE.match(name):
        raise ConfigError(
            f"--name {name!r}: a project name is 1-31 lower-case letters, digits and '-', "
            "starting with a letter (it prefixes every AWS resource name)."
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder.", hint="Choose another folder for the new project.")
    targets = [(folder / item.path, item) for item in PROJECT_FILES]
    existing = [str(path.relative_to(folder)) for path, _ in targets if path.exists() or path.is_symlink()]
    if existing:
        raise ConfigError(
            f"{folder} already has {', '.join(existing)}; orch init never overwrites files.",
            hint="Run it in an empty folder (`orch init NEW_FOLDER`), or move those files away first.",
        )
    package_source = ci_package_source()
    texts: list[tuple[Path, str, bool]] = []
    for path, item in targets:
        source = SKELETON_DIR / item.source
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"orch's project skeleton is incomplete: cannot read {source} ({exc.strerror}).",
                hint="Reinstall orch.",
            ) from None
        text = _with_ci_package(_named(text, name) if item.named else text, package_source)
        texts.append((path, text, item.executable))
    return _write_all(folder, texts)


def _write_all(folder: Path, texts: list[tuple[Path, str, bool]]) -> list[Path]:
    created_dirs: list[Path] = []
    written: list[Path] = []
    try:
        for path, text, executable in texts:
            for parent in reversed([path.parent, *path.parent.parents]):
                if not parent.exists():
                    parent.mkdir()
                    created_dirs.append(parent)
            with open(path, "x", encoding="utf-8") as handle:  # "x": never replace a file
                written.append(path)
                handle.write(text)
            if executable:
                path.chmod(0o755)
    except OSError as exc:
        for path in reversed(written):
            path.unlink(missing_ok=True)
        for parent in reversed(created_dirs):
            try:
                parent.rmdir()
            except OSError:
                pass
        raise ConfigError(
            f"cannot write the new project into {folder}: {exc.strerror or exc} ({exc.filename}).",
            hint="Check the folder's permissions and free space; nothing was left behind.",
        ) from None
    return written
