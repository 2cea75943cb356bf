"""orch.package: deterministic zips, exclusions, vendoring, limits."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from orch import package
from orch.errors import PackageError
from orch.package import (
    DIRECT_UPLOAD_LIMIT,
    UNZIPPED_LIMIT,
    PackageResult,
    build_package,
    check_handler,
    needs_s3,
)

ROOT = Path(__file__).resolve().parents[1]

# Phrases pip prints when it cannot reach a package index (no network, proxy, DNS).
NETWORK_TROUBLE = (
    "could not find a version",
    "no matching distribution",
    "connection",
    "network",
    "temporary failure",
    "name resolution",
    "timed out",
    "proxy",
)


def write(path: Path, text: str = "x\n", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "fn"
    write(root / "handler.py", "def handler(event, context):\n    return event\n")
    write(root / "lib" / "util.py", "VALUE = 1\n")
    write(root / "data.txt", "some data\n")
    write(root / "bin" / "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    # everything below is left out of the package
    write(root / "__pycache__" / "handler.cpython-311.pyc", "bytecode")
    write(root / "lib" / "__pycache__" / "util.cpython-311.pyc", "bytecode")
    write(root / "stale.pyc", "bytecode")
    write(root / ".git" / "config", "[core]\n")
    write(root / ".hg" / "hgrc", "")
    write(root / ".svn" / "entries", "")
    write(root / ".venv" / "bin" / "python", "")
    write(root / "node_modules" / "left-pad" / "index.js", "")
    write(root / ".pytest_cache" / "v" / "cache" / "lastfailed", "{}")
    write(root / ".DS_Store", "")
    write(root / "lib" / ".DS_Store", "")
    return root


def build(source: Path, store: Path, runtime: str = "python3.12") -> PackageResult:
    return build_package(source, runtime, store, name="test-fn")


def names(result: PackageResult) -> list[str]:
    with zipfile.ZipFile(result.path) as zf:
        return zf.namelist()


# --------------------------------------------------------------------------- determinism


def test_same_sources_give_byte_identical_zips(src: Path, tmp_path: Path) -> None:
    first = build(src, tmp_path / "store1")
    second = build(src, tmp_path / "store2")
    assert first.sha256_hex == second.sha256_hex
    assert first.path.read_bytes() == second.path.read_bytes()

    # mtimes and the group-write bit of a plain file do not matter
    for path in src.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (src / "data.txt").chmod(0o664)
    third = build(src, tmp_path / "store3")
    assert third.sha256_hex == first.sha256_hex
    assert third.path.read_bytes() == first.path.read_bytes()
    (src / "data.txt").chmod(0o644)
    assert build(src, tmp_path / "store4").sha256_hex == first.sha256_hex


def test_content_change_changes_the_hash(src: Path, tmp_path: Path) -> None:
    before = build(src, tmp_path / "store")
    (src / "data.txt").write_text("other data\n")
    after = build(src, tmp_path / "store")
    assert after.sha256_hex != before.sha256_hex
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted(
        [before.path.name, after.path.name]
    )


def test_result_describes_the_zip(src: Path, tmp_path: Path) -> None:
    result = build(src, tmp_path / "store")
    data = result.path.read_bytes()
    digest = hashlib.sha256(data).digest()
    assert result.path.is_absolute()
    assert result.path == (tmp_path / "store" / f"{digest.hex()}.zip").absolute()
    assert result.sha256_hex == digest.hex()
    assert result.sha256_b64 == base64.b64encode(digest).decode()
    assert result.size == len(data)
    assert result.file_count == 4
    expected = sum((src / n).stat().st_size for n in names(result))
    assert result.unzipped_size == expected


def test_zip_entries_are_normalized(src: Path, tmp_path: Path) -> None:
    result = build(src, tmp_path / "store")
    with zipfile.ZipFile(result.path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        for info in infos:
            assert not info.is_dir()
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.extra == b""
            assert info.create_system == 3
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert modes["bin/run.sh"] == 0o100755
        assert modes["handler.py"] == 0o100644
        assert modes["data.txt"] == 0o100644
        assert zf.read("lib/util.py") == b"VALUE = 1\n"


def test_caches_vcs_and_environments_are_excluded(src: Path, tmp_path: Path) -> None:
    assert names(build(src, tmp_path / "store")) == [
        "bin/run.sh",
        "data.txt",
        "handler.py",
        "lib/util.py",
    ]


def test_existing_package_is_kept_and_no_temp_files_remain(src: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = build(src, store)
    inode = first.path.stat().st_ino
    second = build(src, store)
    assert second.path == first.path
    assert second.path.stat().st_ino == inode  # not rewritten
    assert [p.name for p in store.iterdir()] == [first.path.name]


def test_symlinks_inside_the_folder_are_followed_and_loops_refused(src: Path, tmp_path: Path) -> None:
    (src / "shared.py").symlink_to(src / "lib" / "util.py")
    (src / "alias").symlink_to(src / "lib", target_is_directory=True)
    with zipfile.ZipFile(build(src, tmp_path / "store").path) as zf:
        assert zf.read("shared.py") == zf.read("alias/util.py") == b"VALUE = 1\n"
    (src / "lib" / "loop").symlink_to(src / "lib", target_is_directory=True)
    with pytest.raises(PackageError, match="symlink loop"):
        build(src, tmp_path / "store")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.py", "/etc"])
def test_a_symlink_out_of_the_folder_is_refused_and_nothing_is_read(src: Path, tmp_path: Path, target: str) -> None:
    write(tmp_path / "outside.py", "SECRET = 1\n")
    link = src / "lib" / "leak"
    link.symlink_to(target)
    store = tmp_path / "store"
    with pytest.raises(PackageError) as err:
        build(src, store)
    assert f"{link} is a symlink to {target}, outside the folder being packaged" in str(err.value)
    assert not store.exists()  # refused while scanning: no zip, not even a temporary one


def test_a_file_name_that_is_not_utf8_is_refused_by_name(src: Path, tmp_path: Path) -> None:
    (src.joinpath(os.fsdecode(b"caf\xe9.txt"))).write_text("x")
    with pytest.raises(PackageError, match=r"caf\\xe9.txt: the file name is not valid UTF-8"):
        build(src, tmp_path / "store")


def test_a_file_name_with_a_newline_is_refused(src: Path, tmp_path: Path) -> None:
    write(src / "two\nlines.py")
    with pytest.raises(PackageError, match="control characters"):
        build(src, tmp_path / "store")


# --------------------------------------------------------------------------- bad input


def test_missing_source_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PackageError, match="does not exist") as err:
        build(missing, tmp_path / "store")
    assert str(missing) in str(err.value)
    assert not (tmp_path / "store").exists()


def test_source_that_is_a_file(tmp_path: Path) -> None:
    file = write(tmp_path / "handler.py")
    with pytest.raises(PackageError, match="not a folder") as err:
        build(file, tmp_path / "store")
    assert str(file) in str(err.value)


def test_empty_source_dir(tmp_path: Path) -> None:
    empty = tmp_path / "fn"
    write(empty / "__pycache__" / "x.pyc")  # only excluded content
    (empty / "sub").mkdir()
    with pytest.raises(PackageError, match="no files") as err:
        build(empty, tmp_path / "store")
    assert str(empty) in str(err.value)
    assert not (tmp_path / "store").exists()


def test_unknown_runtime(src: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="function.runtime"):
        build(src, tmp_path / "store", runtime="java21")


def test_over_the_unzipped_limit_writes_nothing(src: Path, tmp_path: Path) -> None:
    with open(src / "big.bin", "wb") as fh:
        fh.truncate(251 * 1024 * 1024)  # sparse: costs no disk and no time
    store = tmp_path / "store"
    with pytest.raises(PackageError, match="250.0 MB") as err:
        build(src, store)
    assert "big.bin" in str(err.value)
    assert not store.exists() or list(store.iterdir()) == []


# --------------------------------------------------------------------------- handlers


@pytest.mark.parametrize(
    ("runtime", "handler", "files"),
    [
        ("python3.12", "handler.handler", ["handler.py"]),
        ("python3.12", "app.api.main", ["app/api.py"]),
        ("python3.12", "app/api.main", ["app/api.py"]),
        ("python3.12", "pkg.handler", ["pkg/__init__.py"]),
        ("nodejs22.x", "index.handler", ["index.js"]),
        ("nodejs22.x", "index.handler", ["index.mjs"]),
        ("nodejs22.x", "index.handler", ["index.cjs"]),
        ("nodejs22.x", "src/app.handlers.main", ["src/app.js"]),
        ("provided.al2023", "ignored", ["bootstrap"]),
    ],
)
def test_check_handler_accepts(
    tmp_path: Path, runtime: str, handler: str, files: list[str]
) -> None:
    function = handler.rpartition("/")[2].split(".", 1)[1].split(".")[0] if "." in handler else ""
    for name in files:
        if name.endswith(".py"):
            write(tmp_path / name, f"def {handler.rpartition('.')[2]}(event, context):\n    return event\n")
        elif name.endswith("js"):
            write(tmp_path / name, f"exports.{function} = async (event) => event;\n")
        else:
            write(tmp_path / name)
    check_handler(tmp_path, runtime, handler)


@pytest.mark.parametrize(
    ("runtime", "handler", "wanted"),
    [
        ("python3.12", "handler.handler", "handler.py"),
        ("python3.12", "app.api.main", "app/api.py"),
        ("nodejs22.x", "index.handler", "index.js"),
        ("nodejs22.x", "src/app.main", "src/app.mjs"),
        ("provided.al2023", "x", "bootstrap"),
    ],
)
def test_check_handler_names_the_missing_file(
    tmp_path: Path, runtime: str, handler: str, wanted: str
) -> None:
    write(tmp_path / "other.py")
    with pytest.raises(PackageError) as err:
        check_handler(tmp_path, runtime, handler)
    assert str(tmp_path) in str(err.value)
    assert wanted in str(err.value)


@pytest.mark.parametrize("handler", ["handler", ".handler", "handler."])
def test_check_handler_rejects_malformed_names(tmp_path: Path, handler: str) -> None:
    write(tmp_path / "handler.py")
    with pytest.raises(PackageError, match="function.handler"):
        check_handler(tmp_path, "python3.12", handler)
    with pytest.raises(PackageError, match="function.handler"):
        check_handler(tmp_path, "nodejs22.x", handler)


def test_check_handler_missing_source_dir(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="does not exist"):
        check_handler(tmp_path / "nope", "python3.12", "handler.handler")


# --------------------------------------------------------------------------- vendoring


def build_or_skip_offline(source: Path, store: Path, runtime: str) -> PackageResult:
    try:
        return build(source, store, runtime)
    except PackageError as exc:
        text = str(exc).lower()
        if "pip could not install" in text and any(s in text for s in NETWORK_TROUBLE):
            pytest.skip(f"pip cannot reach a package index: {str(exc).splitlines()[-1]}")
        raise


@pytest.mark.vendoring
def test_requirements_are_vendored_deterministically(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "handler.py", "import six\n")
    write(source / "requirements.txt", "six==1.16.0\n")
    store = tmp_path / ".orch" / "packages"

    # python3.12 differs from this interpreter (3.11): the manylinux/cp312 wheel path
    first = build_or_skip_offline(source, store, "python3.12")
    listing = names(first)
    assert "six.py" in listing
    assert "six-1.16.0.dist-info/METADATA" in listing
    assert "handler.py" in listing and "requirements.txt" in listing
    assert not [n for n in listing if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(first.path) as zf:
        assert zf.read("handler.py") == b"import six\n"
    cache = tmp_path / ".orch" / "deps-cache"
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1

    # cached: same bytes; then a fresh pip install into an empty cache: still the same bytes
    assert build(source, tmp_path / "store2", "python3.12").path.read_bytes() == (
        first.path.read_bytes()
    )
    shutil.rmtree(cache)
    again = build_or_skip_offline(source, store, "python3.12")
    assert again.sha256_hex == first.sha256_hex
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.vendoring
def test_pip_failure_is_a_package_error_with_pip_output(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "handler.py")
    write(source / "requirements.txt", "./no-such-project-dir\n")
    with pytest.raises(PackageError, match="pip could not install") as err:
        build(source, tmp_path / "store", "python3.11")
    assert str(source / "requirements.txt") in str(err.value)
    assert not (tmp_path / "store").exists()
    assert [p for p in (tmp_path / "deps-cache").iterdir()] == []  # no half-filled cache


needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


@needs_npm
@pytest.mark.vendoring
def test_node_dependencies_are_vendored_deterministically(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "index.js", "exports.handler = async () => require('left-pad')('1', 3);\n")
    manifest = {"name": "fn", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}
    write(source / "package.json", json.dumps(manifest))
    try:
        first = build(source, tmp_path / "store", "nodejs22.x")
    except PackageError as exc:
        text = str(exc)
        if any(code in text for code in ("ENOTFOUND", "ETIMEDOUT", "ECONNREFUSED", "EAI_AGAIN")):
            pytest.skip(f"npm cannot reach its registry: {text.splitlines()[-1]}")
        raise
    listing = names(first)
    assert "index.js" in listing and "package.json" in listing
    assert "node_modules/left-pad/package.json" in listing
    assert "node_modules/left-pad/index.js" in listing
    shutil.rmtree(tmp_path / "deps-cache")  # a fresh npm install gives the same bytes
    assert build(source, tmp_path / "store", "nodejs22.x").sha256_hex == first.sha256_hex


@needs_npm
@pytest.mark.vendoring
def test_local_file_dependencies_are_refused_clearly(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "index.js")
    write(source / "vendor" / "greet" / "package.json", json.dumps({"name": "greet"}))
    manifest = {"name": "fn", "dependencies": {"greet": "file:./vendor/greet"}}
    write(source / "package.json", json.dumps(manifest))
    with pytest.raises(PackageError, match="`file:` dependencies are not supported"):
        build(source, tmp_path / "store", "nodejs22.x")


@needs_npm
@pytest.mark.vendoring
def test_npm_failure_is_a_package_error_with_npm_output(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "index.js")
    manifest = {"name": "fn", "version": "1.0.0", "dependencies": {"Bad Name!": "1.0.0"}}
    write(source / "package.json", json.dumps(manifest))
    with pytest.raises(PackageError, match="npm install") as err:
        build(source, tmp_path / "store", "nodejs22.x")
    assert str(source / "package.json") in str(err.value)
    assert "EINVALIDPACKAGENAME" in str(err.value)  # npm's own complaint is carried along
    assert not (tmp_path / "store").exists()
    assert [p for p in (tmp_path / "deps-cache").iterdir()] == []


def test_invalid_package_json(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    write(source / "index.js")
    write(source / "package.json", "{ not json")
    with pytest.raises(PackageError, match="not valid JSON") as err:
        build(source, tmp_path / "store", "nodejs22.x")
    assert str(source / "package.json") in str(err.value)


def test_manifests_without_dependencies_need_no_installer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # neither npm nor pip reachable
    node = tmp_path / "node"
    write(node / "index.js")
    write(node / "package.json", json.dumps({"name": "fn", "dependencies": {}}))
    assert names(build(node, tmp_path / "store", "nodejs22.x")) == ["index.js", "package.json"]
    py = tmp_path / "py"
    write(py / "handler.py")
    write(py / "requirements.txt", "# nothing yet\n\n")
    assert names(build(py, tmp_path / "store", "python3.12")) == ["handler.py", "requirements.txt"]
    assert not (tmp_path / "deps-cache").exists()


def test_missing_npm_is_a_package_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "fn"
    write(source / "index.js")
    write(source / "package.json", json.dumps({"dependencies": {"left-pad": "1.3.0"}}))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(PackageError, match="'npm'.*not installed"):
        build(source, tmp_path / "store", "nodejs22.x")


@pytest.mark.parametrize(
    ("folder", "runtime", "handler"),
    [
        ("loopback", "python3.12", "handler.handler"),
        ("loopback-node", "nodejs22.x", "index.handler"),
    ],
)
def test_shipped_examples_package(tmp_path: Path, folder: str, runtime: str, handler: str) -> None:
    if runtime.startswith("nodejs") and shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    source = ROOT / "functions" / folder
    check_handler(source, runtime, handler)
    result = build(source, tmp_path / "store", runtime)
    assert handler.split(".")[0] + (".py" if runtime.startswith("python") else ".js") in (
        names(result)
    )
    assert "README.md" in names(result)


# --------------------------------------------------------------------------- S3


def fake_result(tmp_path: Path, size: int) -> PackageResult:
    data = b"zip-bytes"
    path = tmp_path / f"{hashlib.sha256(data).hexdigest()}.zip"
    path.write_bytes(data)
    digest = hashlib.sha256(data).digest()
    return PackageResult(
        path=path,
        sha256_hex=digest.hex(),
        sha256_b64=base64.b64encode(digest).decode(),
        size=size,
        unzipped_size=size,
        file_count=1,
    )


def test_needs_s3_above_the_direct_upload_limit(tmp_path: Path) -> None:
    assert needs_s3(fake_result(tmp_path, DIRECT_UPLOAD_LIMIT + 1))
    assert not needs_s3(fake_result(tmp_path, DIRECT_UPLOAD_LIMIT))
    assert UNZIPPED_LIMIT == 250 * 1024 * 1024 and DIRECT_UPLOAD_LIMIT == 50 * 1024 * 1024


def test_module_has_no_prints() -> None:
    source = Path(package.__file__).read_text()
    assert "print(" not in source
