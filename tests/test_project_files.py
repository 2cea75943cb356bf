"""orch outside its own repository: modules and templates from the installed package,
a project's own folders overriding them, and `orch init` writing a new project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, assert_clean_failure, orch
from orch import resources
from orch.config import load_all, load_stage
from orch.errors import ConfigError
from orch.init import PROJECT_FILES, init_project, project_name_for
from orch.render import PackageRef, Target, render, work_dir

PKG = PackageRef("c2hhMjU2", filename="/pkg/abc.zip")


def module_source(files: dict[str, str], folder: Path) -> Path:
    """Where the rendered root's `module "stack"` points, as an absolute path."""
    line = next(x for x in files["main.tf"].splitlines() if x.strip().startswith("source") and "stack" in x)
    return Path(os.path.normpath(folder / line.split('"')[1]))


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A project as `orch init` writes it: stages/ and functions/ only."""
    init_project(tmp_path / "fresh")
    return tmp_path / "fresh"


def test_a_project_without_modules_uses_the_packaged_ones(fresh: Path) -> None:
    assert not (fresh / "modules").exists() and not (fresh / "templates").exists()
    stage = load_stage(fresh, "dev")
    files = render(stage, Target("aws"), PKG)
    assert module_source(files, work_dir(fresh, "dev", Target("aws"))) == resources.PACKAGED_MODULES / "stack"
    assert (resources.PACKAGED_MODULES / "stack" / "main.tf").is_file()
    template = json.loads(files["terraform.tfvars.json"])["api"]["routes"][0]["request_templates"]
    packaged = (resources.PACKAGED_MODULES / resources.PASSTHROUGH_TEMPLATE).read_text()
    assert template["application/json"] == packaged and '"body-json"' in packaged


def test_the_projects_own_modules_win(fresh: Path) -> None:
    shutil.copytree(REPO / "modules", fresh / "modules")
    vtl = fresh / "modules" / resources.PASSTHROUGH_TEMPLATE
    vtl.write_text("## the project's own passthrough\n" + vtl.read_text())
    files = render(load_stage(fresh, "dev"), Target("aws"), PKG)
    assert module_source(files, work_dir(fresh, "dev", Target("aws"))) == fresh / "modules" / "stack"
    template = json.loads(files["terraform.tfvars.json"])["api"]["routes"][0]["request_templates"]
    assert template["application/json"].startswith("## the project's own passthrough")


def test_a_modules_folder_without_the_root_module_is_not_taken_for_orchs(fresh: Path) -> None:
    (fresh / "modules" / "vpc").mkdir(parents=True)  # the team's other Terraform, say
    assert resources.modules_dir(fresh) == resources.PACKAGED_MODULES


def test_the_projects_own_templates_win(fresh: Path) -> None:
    (fresh / "templates").mkdir()
    own = (resources.PACKAGED_TEMPLATES / "backend.tf.j2").read_text() + "# the project's own backend\n"
    (fresh / "templates" / "backend.tf.j2").write_text(own)
    assert resources.template_search_path(fresh) == [fresh / "templates", resources.PACKAGED_TEMPLATES]
    files = render(load_stage(fresh, "dev"), Target("aws"), PKG)
    assert files["backend.tf"].rstrip().endswith("# the project's own backend")
    assert "# the project's own" not in files["main.tf"]


def test_the_init_fingerprint_follows_the_modules_folder(fresh: Path) -> None:
    packaged = resources.module_sources(fresh)
    assert packaged.splitlines()[0] == str(resources.PACKAGED_MODULES)
    assert any(line.startswith("stack/main.tf:source") for line in packaged.splitlines())
    shutil.copytree(REPO / "modules", fresh / "modules")
    assert resources.module_sources(fresh) != packaged  # another folder: terraform init again


# --------------------------------------------------------------------------- orch init


def test_init_writes_a_project_shaped_like_this_repository(tmp_path: Path) -> None:
    written = init_project(tmp_path / "demo")
    assert sorted(p.relative_to(tmp_path / "demo").as_posix() for p in written) == sorted(
        f.path for f in PROJECT_FILES
    )
    new = {s.name: s for s in load_all(tmp_path / "demo")}
    ours = {s.name: s for s in load_all(REPO)}
    assert set(new) == set(ours) == {"dev", "prod"}
    for name in new:
        got, want = new[name].config.model_dump(), ours[name].config.model_dump()
        assert got.pop("project") == "demo" and want.pop("project") == "orch"
        assert got["tags"].pop("project") == "demo" and want["tags"].pop("project") == "orch"
        assert got == want
    assert new["dev"].function_name == "demo-loopback-dev"
    handler = tmp_path / "demo" / "functions" / "loopback" / "handler.py"
    assert handler.read_text() == (REPO / "functions" / "loopback" / "handler.py").read_text()
    assert ".orch/" in (tmp_path / "demo" / ".gitignore").read_text().splitlines()


def test_every_project_file_ships_in_the_wheel() -> None:
    """The hook for the CI files (issue 8): each ProjectFile's source exists in the skeleton
    and a `[tool.setuptools.package-data]` pattern carries it into the wheel (setuptools'
    globs, relative to the package, as Path.glob reads them)."""
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["orch"]
    shipped = {path.resolve() for pattern in patterns for path in resources.PACKAGE_DIR.glob(pattern)}
    assert len({f.path for f in PROJECT_FILES}) == len(PROJECT_FILES)
    for item in PROJECT_FILES:
        source = resources.SKELETON_DIR / item.source
        assert source.is_file(), f"{item.path}: no {source}"
        assert source.resolve() in shipped, f"{item.path}: {item.source} is in no package-data pattern"


def test_init_writes_executable_project_files_with_mode_755(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import init

    script = init.ProjectFile(".ci/run", "gitignore", executable=True)  # any skeleton file will do
    monkeypatch.setattr(init, "PROJECT_FILES", (*init.PROJECT_FILES, script))
    init_project(tmp_path / "demo")
    assert (tmp_path / "demo" / ".ci" / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "demo" / ".gitignore").stat().st_mode & 0o111 == 0


@pytest.mark.parametrize(
    ("folder", "name"),
    [("demo", "demo"), ("My API_v2", "my-api-v2"), ("2024-shop", "shop"), ("___", "app"), ("x" * 40, "x" * 31)],
)
def test_project_name_from_the_folder(folder: str, name: str) -> None:
    assert project_name_for(Path("/somewhere") / folder) == name


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    (target / "stages").mkdir(parents=True)
    (target / "stages" / "dev.yaml").write_text("# mine\n")
    result = orch("init", str(target), cwd=tmp_path)
    assert_clean_failure(result, 3, "stages/dev.yaml", "never overwrites")
    assert (target / "stages" / "dev.yaml").read_text() == "# mine\n"
    assert sorted(p.name for p in target.rglob("*")) == ["dev.yaml", "stages"]


def test_init_refuses_a_bad_name_and_a_file_as_folder(tmp_path: Path) -> None:
    result = orch("init", "demo", "--name", "Bad_Name", cwd=tmp_path)
    assert_clean_failure(result, 3, "--name 'Bad_Name'")
    assert not (tmp_path / "demo").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        init_project(tmp_path / "afile")


def test_init_rolls_back_when_a_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    (target / "functions").mkdir(parents=True)
    (target / "functions" / "loopback").write_text("a file where a folder must go\n")
    with pytest.raises(ConfigError, match="nothing was left behind"):
        init_project(target)  # stages/ is written first, then functions/loopback/handler.py fails
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["functions", "functions/loopback"]


def test_init_then_render_needs_no_modules_folder(tmp_path: Path) -> None:
    result = orch("init", "demo", cwd=tmp_path)
    assert result.code == 0, result.output
    assert "orch apply dev --sandbox" in result.stderr
    result = orch("render", "dev", "--file", "main.tf", cwd=tmp_path / "demo")
    assert result.code == 0, result.output
    files = {"main.tf": result.stdout}
    assert module_source(files, tmp_path / "demo" / ".orch" / "work" / "aws" / "dev") == (
        resources.PACKAGED_MODULES / "stack"
    )


class _Distribution:
    def __init__(self, direct_url: dict | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


GIT_INSTALL = {"url": "https://git.example.com/team/orch.git",
               "vcs_info": {"vcs": "git", "commit_id": "0123456789abcdef0123456789abcdef01234567"}}


@pytest.mark.parametrize("direct_url, expected", [
    (GIT_INSTALL, "orch[sandbox] @ git+https://git.example.com/team/orch.git@0123456789abcdef0123456789abcdef01234567"),
    (None, None),  # from a package index: never guess public PyPI's unrelated `orch`
    ({"url": "file:///home/me/orch", "dir_info": {"editable": True}}, None),  # this machine only
    ({"url": "file:///home/me/orch", "vcs_info": {"vcs": "git", "commit_id": "abc"}}, None),
])
def test_the_ci_files_install_orch_from_where_this_orch_came_or_say_to_set_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct_url: dict | None, expected: str | None) -> None:
    monkeypatch.setattr("orch.init.metadata.distribution", lambda name: _Distribution(direct_url))
    init_project(tmp_path / "demo")
    travis = (tmp_path / "demo" / ".travis.yml").read_text()
    workflow = (tmp_path / "demo" / ".github" / "workflows" / "orch.yml").read_text()
    want = '""' if expected is None else json.dumps(expected)
    assert f"- ORCH_PACKAGE={want}" in travis and f"ORCH_PACKAGE: {want}" in workflow
    assert "bash scripts/install-orch.sh" in travis and "bash scripts/install-orch.sh" in workflow


def test_the_ci_install_script_refuses_an_unset_package(tmp_path: Path) -> None:
    init_project(tmp_path / "demo")
    script = tmp_path / "demo" / "scripts" / "install-orch.sh"
    env = {k: v for k, v in os.environ.items() if k != "ORCH_PACKAGE"}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "ORCH_PACKAGE is not set" in result.stderr and "git+https://" in result.stderr
