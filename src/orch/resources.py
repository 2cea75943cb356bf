"""Where orch finds the files it ships: Terraform modules, Jinja2 templates, the built-in
passthrough template and the skeleton `orch init` writes.

This module owns the lookup order "the project's own folder first, then the copy inside
the installed orch package", so a project needs only `stages/` and `functions/`. It only
answers paths and reads small files; it never writes, renders or runs anything.
"""

from __future__ import annotations

from pathlib import Path

from orch.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
"""The installed `orch` package (in a source checkout: `src/orch`)."""

PACKAGED_MODULES = (PACKAGE_DIR / "modules").resolve()
"""orch's own Terraform modules: a copy inside the wheel, the repository's `modules/` in a
checkout (`src/orch/modules` is a symlink to it, followed here)."""
PACKAGED_TEMPLATES = PACKAGE_DIR / "templates"
SKELETON_DIR = PACKAGE_DIR / "skeleton"
"""What `orch init` copies into a new project (see orch.init)."""

ROOT_MODULE = "stack"
"""The module orch's rendered root calls; a project's `modules/` counts as its own set of
modules only when it has this one."""
PASSTHROUGH_TEMPLATE = Path("integration") / "templates" / "passthrough.vtl"


def modules_dir(project_dir: Path) -> Path:
    """The Terraform modules a stage of `project_dir` deploys with (an absolute path).

    The project's own `modules/` wins when it holds `stack/` (the root module orch calls);
    otherwise orch's packaged modules. Raises ConfigError when the packaged copy is missing
    (a broken install).
    """
    own = Path(project_dir) / "modules"
    if (own / ROOT_MODULE).is_dir():
        return own.absolute()
    if not (PACKAGED_MODULES / ROOT_MODULE).is_dir():
        raise ConfigError(
            f"orch's Terraform modules are missing from its installation ({PACKAGED_MODULES}).",
            hint="Reinstall orch (`pip install --force-reinstall orch`), or put the modules in "
            "the project's own modules/ folder.",
        )
    return PACKAGED_MODULES


def passthrough_template(project_dir: Path) -> str:
    """AWS's "Method Request passthrough" mapping template (VTL text), read from the same
    file the integration module uses, so Terraform and orch's local gateway agree.

    Raises ConfigError naming the file when it cannot be read.
    """
    path = modules_dir(project_dir) / PASSTHROUGH_TEMPLATE
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read the built-in passthrough template ({exc}).",
            hint="A project's own modules/ folder must contain every module orch's has, including "
            "integration/templates/passthrough.vtl; remove the folder to use orch's own modules.",
        ) from None


def template_search_path(project_dir: Path) -> list[Path]:
    """Folders searched, in order, for the Jinja2 templates orch renders (`main.tf.j2`, ...):
    the project's `templates/` (when it exists), then orch's own."""
    own = Path(project_dir) / "templates"
    return [own, PACKAGED_TEMPLATES] if own.is_dir() else [PACKAGED_TEMPLATES]


def module_sources(project_dir: Path) -> str:
    """A fingerprint of the modules a stage uses: their folder and every `source =` line in
    them. When it changes (another folder, a module call added), `terraform init` must run
    again, since Terraform installs module sources at init."""
    folder = modules_dir(project_dir)
    found = [str(folder)]
    for path in sorted(folder.rglob("*.tf")):
        rel = path.relative_to(folder)
        if ".terraform" in rel.parts or "tests" in rel.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("source") and "=" in stripped:
                found.append(f"{rel}:{stripped}")
    return "\n".join(found)
