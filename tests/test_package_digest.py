"""build_package(write=False), what `orch render` uses: the package's identity without
storing the zip or filling the dependency cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.errors import PackageError
from orch.package import build_package


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_without_writing_the_identity_is_the_stored_zips(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    return event\n")
    store = tmp_path / "orch" / "packages"
    dry = build_package(source, "python3.12", store, name="fn", write=False)
    assert tree(tmp_path / "orch") == []
    real = build_package(source, "python3.12", store, name="fn")
    assert (dry.sha256_hex, dry.sha256_b64, dry.size, dry.path) == (real.sha256_hex, real.sha256_b64, real.size,
                                                                    real.path)
    assert real.path.is_file()


@pytest.mark.vendoring
def test_without_writing_dependencies_are_vendored_into_a_removed_temporary_folder(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (source / "requirements.txt").write_text("six==1.16.0\n")
    store = tmp_path / "orch" / "packages"
    try:
        dry = build_package(source, "python3.12", store, name="fn", write=False)
    except PackageError as exc:
        pytest.skip(f"pip cannot install here: {str(exc).splitlines()[-1]}")
    assert tree(tmp_path / "orch") == []  # no zip, no deps-cache
    real = build_package(source, "python3.12", store, name="fn")
    assert dry.sha256_hex == real.sha256_hex and (tmp_path / "orch" / "deps-cache").is_dir()
