"""orch as a user gets it: a wheel (`pip install .`, not editable) in a fresh virtual
environment, used in an empty folder (issue 11, acceptance 1 and 2).

To stay affordable the wheel is installed with `--no-deps` and the fresh environment finds
orch's dependencies through a `.pth` file pointing at a folder of symlinks to this test
environment's own site-packages (orch's editable install left out, and for the "without
the extra" environment moto and Flask left out too). orch itself, its modules, templates
and skeleton come only from the wheel, and the deploying environment lacks what moto's own
service extras would add beyond the `sandbox` extra. One stage is deployed for real: the real terraform
binary against the sandbox's real moto server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import requests

from helpers import REPO, Result, assert_clean_failure

pytestmark = [pytest.mark.integration, pytest.mark.wheel]

if shutil.which("terraform") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("terraform is not on PATH; CI needs it")
    pytest.skip("terraform is not on PATH", allow_module_level=True)

SANDBOX_EXTRA = ("moto", "flask", "flask_cors")
NOT_IN_THE_EXTRA = ("joserfc", "py_partiql_parser")  # what moto[apigateway,s3] would add


def dependency_view(dest: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A folder of symlinks to this environment's site-packages, minus orch itself and the
    distributions named in `leave_out` (import names; their .dist-info goes too)."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir(parents=True)
    for entry in site.iterdir():
        name = entry.name
        stem = name.split("-")[0].lower().replace(".py", "")
        if name.endswith(".pth") or name.startswith("__editable__") or stem in ("orch", "pip", "__pycache__"):
            continue
        if stem.replace("_", "-") in {m.replace("_", "-") for m in leave_out}:
            continue
        (dest / name).symlink_to(entry)
    return dest


def fresh_venv(root: Path, wheel: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A new virtual environment with only the wheel installed in it; returns its bin/."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    view = dependency_view(root / "deps", leave_out)
    (Path(site) / "_orch_test_dependencies.pth").write_text(f"{view}\n")
    return root / "bin"


def run(bin_dir: Path, *args: str, cwd: Path, timeout: float = 600) -> Result:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ORCH_PROJECT_DIR", "ORCH_SANDBOX")}
    env["NO_COLOR"] = "1"
    proc = subprocess.run([str(bin_dir / "orch"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                    "-w", str(out), str(REPO)], check=True)
    (found,) = out.glob("orch-*.whl")
    return found


def test_the_installed_wheel_deploys_a_new_project(wheel: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", wheel, leave_out=NOT_IN_THE_EXTRA)
    where = subprocess.run([bin_dir / "python", "-c", "import orch.resources as r; print(r.PACKAGE_DIR)"],
                           check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(tmp_path / "venv")), where  # the wheel's orch, not this checkout's

    created = run(bin_dir, "init", "demo", cwd=tmp_path)
    assert created.code == 0, created.output
    demo = tmp_path / "demo"
    assert sorted(p.name for p in demo.iterdir()) == [
        ".github", ".gitignore", ".travis.yml", "functions", "scripts", "stages"]  # the CI files too
    assert (demo / ".github" / "workflows" / "orch.yml").is_file()
    try:
        applied = run(bin_dir, "apply", "dev", "--sandbox", cwd=demo)
        assert applied.code == 0, applied.output
        url = applied.stdout.strip().splitlines()[-1]
        resp = requests.post(f"{url}?deptno-param=x", headers={"Authorization": "y"}, data='{"a":1}', timeout=30)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["stage"] == "dev" and answer["event"]["body-json"] == {"a": 1}
        assert answer["event"]["params"]["querystring"] == {"deptno-param": "x"}
        assert answer["context"]["function_name"] == "demo-loopback-dev"
        main_tf = (demo / ".orch" / "work" / "sandbox" / "dev" / "main.tf").read_text()
        source = main_tf.split('source = "')[1].split('"')[0]
        modules = Path(os.path.normpath(demo / ".orch" / "work" / "sandbox" / "dev" / source))
        assert modules == Path(where) / "modules" / "stack"

        # A corrupt state.json neither hides the daemon nor yields an unreachable URL.
        state = demo / ".orch" / "sandbox" / "state.json"
        state.write_text("{corrupt")
        out = run(bin_dir, "output", "dev", "--sandbox", "--json", cwd=demo)
        assert out.code == 0, out.output
        assert json.loads(out.stdout)["invoke_url"] == url
        assert requests.post(url, json={"a": 2}, timeout=30).json()["event"]["body-json"] == {"a": 2}
    finally:
        stopped = run(bin_dir, "sandbox", "stop", cwd=demo)
    assert stopped.code == 0 and "sandbox stopped" in stopped.stderr, stopped.output
    gone = run(bin_dir, "output", "dev", "--sandbox", cwd=demo)
    assert_clean_failure(gone, 8, "the sandbox is not running", "Apply it first: `orch apply dev --sandbox`")
    assert "http://" not in gone.stdout


def test_without_the_sandbox_extra(wheel: Path, tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", wheel, leave_out=SANDBOX_EXTRA)
    missing = subprocess.run([bin_dir / "python", "-c", "import moto"], capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'moto'" in missing.stderr

    assert run(bin_dir, "--help", cwd=tmp_path).code == 0
    assert run(bin_dir, "init", "demo", cwd=tmp_path).code == 0
    demo = tmp_path / "demo"
    assert run(bin_dir, "render", "dev", cwd=demo).code == 0  # what needs no emulator still works
    assert not (demo / ".orch").exists()  # and render writes nothing
    for args in (["plan", "dev", "--sandbox"], ["sandbox", "start"]):
        result = run(bin_dir, *args, cwd=demo)
        assert_clean_failure(result, 7, "pip install 'orch[sandbox]'")
    assert not (demo / ".orch").exists()  # nothing started, nothing written
