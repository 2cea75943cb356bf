"""scripts/install-terraform.sh (what CI and `orch init` projects install Terraform with):
the download's SHA-256 is checked against the pinned one before anything is unzipped or
installed. Runs the real script with `curl` replaced by a local stand-in (no network)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

SCRIPT = REPO / "scripts" / "install-terraform.sh"
pytestmark = pytest.mark.skipif(shutil.which("unzip") is None or shutil.which("sha256sum") is None,
                                reason="needs unzip and sha256sum")


def fake_release(tmp_path: Path) -> tuple[Path, str]:
    """A zip holding a `terraform` that prints a version, and a PATH whose curl 'downloads' it."""
    release = tmp_path / "release.zip"
    with zipfile.ZipFile(release, "w") as archive:
        info = zipfile.ZipInfo("terraform")
        info.external_attr = 0o755 << 16
        archive.writestr(info, "#!/bin/sh\necho 'Terraform v9.9.9'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    curl.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\n'
                    f'echo "$3" >> "{tmp_path}/urls"\ncp "{release}" "$2"\n')
    curl.chmod(0o755)
    return bin_dir, hashlib.sha256(release.read_bytes()).hexdigest()


def install(tmp_path: Path, bin_dir: Path, checksum: str) -> subprocess.CompletedProcess[str]:
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TERRAFORM_INSTALL_DIR": str(dest), "HOME": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), "9.9.9", checksum], env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_right_checksum_installs_it(tmp_path: Path) -> None:
    bin_dir, checksum = fake_release(tmp_path)
    done = install(tmp_path, bin_dir, checksum)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "dest" / "terraform"
    assert os.access(installed, os.X_OK) and "Terraform v9.9.9" in done.stdout
    assert (tmp_path / "urls").read_text().strip() == (
        "https://releases.hashicorp.com/terraform/9.9.9/terraform_9.9.9_linux_amd64.zip")


def test_a_wrong_checksum_installs_nothing(tmp_path: Path) -> None:
    bin_dir, checksum = fake_release(tmp_path)
    done = install(tmp_path, bin_dir, "0" * 64)
    assert done.returncode != 0
    assert f"SHA-256 is {checksum}" in done.stderr and "not installing it" in done.stderr
    assert not (tmp_path / "dest" / "terraform").exists()

