"""Function packages: a deterministic, content-addressed zip of a function's sources.

This module owns turning ``functions/<name>/`` (plus its pip/npm dependencies, vendored
and cached) into ``<store>/<sha256-hex>.zip``, checking that the handler file exists and
that Lambda's size limits hold. It must not read stage files, render Terraform, talk to
AWS (uploads of packages over 50 MB: ``orch.aws``) or print: it returns data and raises
``PackageError``; wiring a package to a stage belongs to the deploy engine.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch.errors import PackageError

DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024
"""Largest zip Lambda accepts inline (``filename``); bigger ones go through S3."""
UNZIPPED_LIMIT = 250 * 1024 * 1024
"""Largest unzipped function code (sources plus dependencies) Lambda accepts."""

ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
FILE_MODE = 0o100644
EXEC_MODE = 0o100755

# Caches, VCS folders and environments of the *source* folder; everything else is kept.
EXCLUDED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "node_modules",  # vendored ones come from the npm install, not the source folder
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".orch",
    }
)
EXCLUDED_FILES = frozenset({".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# In vendored dependency trees nested node_modules are real; only caches and VCS go.
VENDOR_EXCLUDED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn"})

DEPS_CACHE_VERSION = "orch-deps-v1"
COMMAND_TIMEOUT_SECONDS = 900
STDERR_TAIL_LINES = 20
NODE_MODULE_EXTENSIONS = (".js", ".mjs", ".cjs")


@dataclass(frozen=True)
class PackageResult:
    """A built package: ``path`` is ``<store>/<sha256_hex>.zip`` (absolute)."""

    path: Path
    sha256_hex: str
    sha256_b64: str  # Terraform's source_code_hash / Lambda's CodeSha256
    size: int  # zipped bytes
    unzipped_size: int
    file_count: int


@dataclass(frozen=True)
class _Entry:
    arcname: str
    path: Path
    size: int
    executable: bool


# --------------------------------------------------------------------------- build


def build_package(
    source_dir: Path, runtime: str, store_dir: Path, *, name: str, write: bool = True
) -> PackageResult:
    """Zip ``source_dir`` (with vendored dependencies) into ``store_dir/<sha256-hex>.zip``.

    Same sources and dependency files give a byte-identical zip. Python runtimes vendor
    ``requirements.txt`` with pip, Node.js runtimes ``package.json`` with npm; installed
    trees are cached under ``store_dir/../deps-cache/``. A source file wins over a
    vendored file with the same path. ``name`` (the function's name) only labels errors.
    Raises PackageError when the sources are missing or empty, an install fails, or the
    unzipped size is over UNZIPPED_LIMIT (checked before anything is written to the store).
    With ``write=False`` nothing is written under ``store_dir`` or the dependency cache (for
    ``orch render``): dependencies missing from the cache are vendored into a temporary
    folder that is removed, the zip is hashed in a temporary file, and ``path`` is where the
    zip would be stored.
    """
    source_dir = Path(source_dir)
    store_dir = Path(store_dir).absolute()
    _check_source_dir(source_dir, name)
    family = _runtime_family(runtime)
    cache_root = store_dir.parent / "deps-cache"
    skip_real = {os.path.realpath(store_dir), os.path.realpath(cache_root)}

    entries: dict[str, _Entry] = {}
    for entry in _scan(source_dir, "", EXCLUDED_DIRS, skip_real):
        entries[entry.arcname] = entry
    if not entries:
        raise PackageError(
            f"function {name!r}: source folder {source_dir} has no files to package "
            f"(caches, VCS folders, .venv and node_modules are left out)",
            hint="add the function's code there, or point the stage's function source at "
            "the right folder",
        )

    with contextlib.ExitStack() as scratch:
        if not write:
            cache_root = _ReadOnlyCache(cache_root, scratch)  # type: ignore[assignment]
        return _build(source_dir, runtime, store_dir, cache_root, family, entries, name, write)


def _build(source_dir: Path, runtime: str, store_dir: Path, cache_root: Path, family: str,
           entries: dict[str, _Entry], name: str, write: bool) -> PackageResult:
    vendored: list[_Entry] = []
    if family == "python" and _has_requirements(source_dir / "requirements.txt"):
        tree = _vendor_python(source_dir, runtime, cache_root, name)
        vendored = _scan(tree, "", VENDOR_EXCLUDED_DIRS, set())
    elif family == "node" and _has_node_dependencies(source_dir / "package.json"):
        tree = _vendor_node(source_dir, runtime, cache_root, name)
        if (tree / "node_modules").is_dir():
            vendored = _scan(
                tree / "node_modules",
                "node_modules/",
                VENDOR_EXCLUDED_DIRS,
                set(),
                hint="local `file:` dependencies are not supported: publish them, or copy "
                "their code into the function folder",
            )
    for entry in vendored:
        entries.setdefault(entry.arcname, entry)

    ordered = [entries[key] for key in sorted(entries)]
    unzipped_size = sum(e.size for e in ordered)
    if unzipped_size > UNZIPPED_LIMIT:
        largest = sorted(ordered, key=lambda e: e.size, reverse=True)[:3]
        listing = ", ".join(f"{e.arcname} ({_mb(e.size)})" for e in largest)
        raise PackageError(
            f"function {name!r}: the package from {source_dir} would be {_mb(unzipped_size)} "
            f"unzipped, over Lambda's {_mb(UNZIPPED_LIMIT)} limit; largest files: {listing}",
            hint="remove large files or dependencies from the function folder, or ship them "
            "as a Lambda layer or a container image",
        )

    if not write:
        return _hash_zip(ordered, store_dir, name, unzipped_size)
    return _write_zip(ordered, store_dir, name, unzipped_size)


def needs_s3(result: PackageResult) -> bool:
    """True when the zip is too big to hand to Lambda directly and must go through S3."""
    return result.size > DIRECT_UPLOAD_LIMIT


def check_handler(source_dir: Path, runtime: str, handler: str) -> None:
    """Raise PackageError unless the file that ``handler`` names exists in ``source_dir`` and defines it.

    python: ``handler.handler`` -> handler.py; ``a.b.handler`` or ``a/b.handler`` -> a/b.py
    (or a/b/__init__.py). nodejs: ``index.handler`` -> index.js/.mjs/.cjs; ``src/app.handler``
    -> src/app.js/... . provided.*: a ``bootstrap`` file (the handler is not checked).
    The file must also define (Python) or export (Node.js) the function, as far as its
    source shows statically (orch.handler_check; never imported, no false errors).
    """
    source_dir = Path(source_dir)
    _check_source_dir(source_dir, None)
    family = _runtime_family(runtime)
    fix = "create it, or fix `function.handler` in the stage file"

    if family == "provided":
        if not (source_dir / "bootstrap").is_file():
            raise PackageError(
                f"runtime {runtime} needs a 'bootstrap' file in {source_dir}",
                hint="add the bootstrap executable to the function folder",
            )
        return

    module, dot, function = handler.rpartition(".")
    if family == "python":
        if not dot or not module or not function:
            raise PackageError(
                f"handler {handler!r} must look like 'module.function' "
                f"(e.g. 'handler.handler') for runtime {runtime}",
                hint="fix `function.handler` in the stage file",
            )
        rel = module.replace(".", "/")
        candidates = [f"{rel}.py", f"{rel}/__init__.py"]
    else:  # node: the module is the basename up to its first dot (like the Lambda runtime)
        root, _, base = handler.rpartition("/")
        module, dot, function = base.partition(".")
        if not dot or not module or not function:
            raise PackageError(
                f"handler {handler!r} must look like 'file.export' "
                f"(e.g. 'index.handler') for runtime {runtime}",
                hint="fix `function.handler` in the stage file",
            )
        prefix = f"{root}/" if root else ""
        candidates = [f"{prefix}{module}{ext}" for ext in NODE_MODULE_EXTENSIONS]

    found = next((source_dir / c for c in candidates if (source_dir / c).is_file()), None)
    if found is None:
        wanted = " or ".join(str(source_dir / c) for c in candidates)
        raise PackageError(
            f"handler {handler!r} for runtime {runtime} needs {wanted}, which does not exist",
            hint=fix,
        )
    _check_handler_function(found, family, function.split(".")[0], handler)


def _check_handler_function(path: Path, family: str, function: str, handler: str) -> None:
    """Raise PackageError when `path` certainly does not define `function` (read statically)."""
    from orch.handler_check import file_exports

    try:
        exports = file_exports(path, family)
    except OSError as exc:
        raise PackageError(f"cannot read the handler file {path}: {exc.strerror or exc}") from exc
    if exports.has(function) is not False:
        return
    what = "defines no function" if family == "python" else "exports no"
    suggestion = exports.close_matches(function)
    hint = f"Did you mean {' or '.join(repr(m) for m in suggestion)}? " if suggestion else ""
    raise PackageError(
        f"handler {handler!r}: {path} {what} {function!r}",
        hint=hint + f"Define {function!r} there, or fix `function.handler` in the stage file.",
    )


# --------------------------------------------------------------------------- helpers


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _runtime_family(runtime: str) -> str:
    if runtime.startswith("python"):
        return "python"
    if runtime.startswith("nodejs"):
        return "node"
    if runtime.startswith("provided"):
        return "provided"
    raise PackageError(
        f"runtime {runtime!r} is not one orch can package (python3.x, nodejsNN.x, provided.*)",
        hint="fix `function.runtime` in the stage file",
    )


def _check_source_dir(source_dir: Path, name: str | None) -> None:
    label = f"function {name!r}: " if name else ""
    if not source_dir.exists():
        raise PackageError(
            f"{label}source folder {source_dir} does not exist",
            hint="create it, or fix the function's source folder in the stage file",
        )
    if not source_dir.is_dir():
        raise PackageError(
            f"{label}source {source_dir} is not a folder",
            hint="point the function's source at the folder that holds the handler",
        )


def _display(path: Path | str) -> str:
    """A path as text that can always be printed (undecodable bytes as \\xNN)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _check_name(path: Path, name: str, hint: str) -> None:
    """Refuse names a zip entry cannot carry faithfully: not UTF-8, or with control characters."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise PackageError(
            f"{_display(path)}: the file name is not valid UTF-8, so it cannot go into the zip",
            hint="rename it (UTF-8 names only), or " + hint,
        ) from None
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PackageError(
            f"{_display(path)}: the file name contains control characters (such as a newline)",
            hint="rename it, or " + hint,
        )


def _scan(
    root: Path,
    prefix: str,
    excluded_dirs: frozenset[str],
    skip_real: set[str],
    *,
    hint: str | None = None,
) -> list[_Entry]:
    """Files under ``root`` as zip entries. Symlinks are followed only while they stay inside
    ``root`` (one pointing out is refused, naming it: nothing outside is ever read); loops
    and names a zip cannot carry are refused too."""
    out: list[_Entry] = []
    root_real = os.path.realpath(root)
    outside_hint = hint or "copy what it points to into the folder, or remove the symlink"
    hint = hint or "fix or remove it from the function folder"

    def walk(folder: Path, rel: str, ancestors: frozenset[str]) -> None:
        try:
            children = sorted(os.scandir(folder), key=lambda d: d.name)
        except OSError as exc:
            raise PackageError(
                f"cannot read folder {_display(folder)}: {exc.strerror or exc}",
                hint="fix its permissions or remove it from the function folder",
            ) from exc
        for child in children:
            path = Path(child.path)
            arcname = f"{rel}{child.name}"
            _check_name(path, child.name, hint)
            real = os.path.realpath(path)
            if child.is_symlink() and not _inside(real, root_real):
                raise PackageError(
                    f"{_display(path)} is a symlink to {_display(os.readlink(path))}, outside the folder "
                    f"being packaged ({_display(root)}); orch never packages what lies outside it",
                    hint=outside_hint,
                )
            try:
                st = os.stat(real)
            except OSError as exc:
                raise PackageError(
                    f"cannot read {_display(path)}: {exc.strerror or exc} (a broken symlink?)",
                    hint=hint,
                ) from exc
            if stat.S_ISDIR(st.st_mode):
                if child.name in excluded_dirs or real in skip_real:
                    continue
                if real in ancestors:
                    raise PackageError(
                        f"symlink loop at {_display(path)}",
                        hint="remove the symlink from the function folder",
                    )
                walk(path, f"{arcname}/", ancestors | {real})
            elif stat.S_ISREG(st.st_mode):
                if child.name in EXCLUDED_FILES or child.name.endswith(EXCLUDED_SUFFIXES):
                    continue
                out.append(
                    _Entry(
                        arcname=prefix + arcname,
                        path=Path(real),  # opened by its resolved name: the checked file
                        size=st.st_size,
                        executable=bool(st.st_mode & 0o111),
                    )
                )
            # sockets, fifos and devices are not function code: skipped

    walk(root, "", frozenset({root_real}))
    return out


def _set_compress_level(info: zipfile.ZipInfo, level: int) -> None:
    # Python 3.13 renamed ZipInfo._compresslevel to compress_level (keeping an alias).
    if hasattr(info, "compress_level"):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]


def _write_zip(
    entries: list[_Entry], store_dir: Path, name: str, unzipped_size: int
) -> PackageResult:
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=store_dir)
    except OSError as exc:
        raise PackageError(
            f"cannot write into the package store {store_dir}: {exc.strerror or exc}",
            hint="check the permissions of the project's .orch folder",
        ) from exc
    tmp = Path(tmp_name)
    current: list[_Entry | None] = [None]
    try:
        with os.fdopen(fd, "w+b") as fh:
            hex_digest, size = _zip_into(fh, entries, current)
        final = store_dir / f"{hex_digest}.zip"
        if final.exists() and final.stat().st_size == size:
            tmp.unlink()  # same content already stored: keep the existing file
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
    except OSError as exc:
        what = f"reading {current[0].path}" if current[0] is not None else f"writing into {store_dir}"
        raise PackageError(
            f"function {name!r}: packaging failed while {what}: {exc.strerror or exc}",
            hint="check that the file is readable and the disk is not full, then retry",
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return _result(final, hex_digest, size, unzipped_size, len(entries))


def _zip_into(fh: Any, entries: list[_Entry], current: list[_Entry | None]) -> tuple[str, int]:
    """Write the deterministic zip of ``entries`` into ``fh``; return (sha256 hex, size).
    ``current[0]`` names the entry being read, for error messages."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
        for entry in entries:
            current[0] = entry
            info = zipfile.ZipInfo(entry.arcname, date_time=ZIP_TIMESTAMP)
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (EXEC_MODE if entry.executable else FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            _set_compress_level(info, COMPRESS_LEVEL)
            info.file_size = entry.size
            with open(entry.path, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        current[0] = None
    fh.seek(0)
    for chunk in iter(lambda: fh.read(1024 * 1024), b""):
        digest.update(chunk)
    return digest.hexdigest(), fh.tell()


def _hash_zip(entries: list[_Entry], store_dir: Path, name: str, unzipped_size: int) -> PackageResult:
    """The package's identity without storing it: zipped into a temporary file, hashed, removed."""
    current: list[_Entry | None] = [None]
    try:
        with tempfile.TemporaryFile() as fh:
            hex_digest, size = _zip_into(fh, entries, current)
    except OSError as exc:
        what = f"reading {current[0].path}" if current[0] is not None else "writing a temporary file"
        raise PackageError(
            f"function {name!r}: packaging failed while {what}: {exc.strerror or exc}",
            hint="check that the file is readable and the disk is not full, then retry",
        ) from exc
    return _result(store_dir / f"{hex_digest}.zip", hex_digest, size, unzipped_size, len(entries))


def _result(path: Path, hex_digest: str, size: int, unzipped_size: int, count: int) -> PackageResult:
    return PackageResult(
        path=path,
        sha256_hex=hex_digest,
        sha256_b64=base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii"),
        size=size,
        unzipped_size=unzipped_size,
        file_count=count,
    )


# --------------------------------------------------------------------------- dependencies


def _cache_key(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class _ReadOnlyCache:
    """A dependency cache that is read but never written: a miss is vendored into a temporary
    folder (outside the project) that ``scratch`` removes when the build is done."""

    def __init__(self, root: Path, scratch: contextlib.ExitStack) -> None:
        self.root = root
        self.scratch = scratch

    def tree(self, key: str, populate: Callable[[Path], None]) -> Path:
        final = self.root / key
        if final.is_dir():
            return final
        tmp = Path(self.scratch.enter_context(tempfile.TemporaryDirectory(prefix="orch-deps-")))
        populate(tmp)
        return tmp


def _cached_tree(cache_root: Path, key: str, populate: Callable[[Path], None]) -> Path:
    """Return ``cache_root/key``, filling it with ``populate(tmp)`` + an atomic rename."""
    if isinstance(cache_root, _ReadOnlyCache):
        return cache_root.tree(key, populate)
    final = cache_root / key
    if final.is_dir():
        return final
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_root))
    except OSError as exc:
        raise PackageError(
            f"cannot create the dependency cache {cache_root}: {exc.strerror or exc}",
            hint="check the permissions of the project's .orch folder",
        ) from exc
    try:
        populate(tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if not final.is_dir():  # not "someone else finished first"
                raise PackageError(
                    f"cannot store dependencies in {final}: {exc.strerror or exc}",
                    hint="check the permissions of the project's .orch folder",
                ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _run(cmd: list[str], cwd: Path, what: str, name: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        NPM_CONFIG_UPDATE_NOTIFIER="false",
        NPM_CONFIG_FUND="false",
        NPM_CONFIG_AUDIT="false",
    )
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise PackageError(
            f"function {name!r}: cannot run {cmd[0]!r} to {what}: it is not installed or not "
            f"on PATH",
            hint="install it (Node.js brings npm; pip comes with Python) and retry",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise PackageError(
            f"function {name!r}: {' '.join(cmd[:3])} did not finish within "
            f"{COMMAND_TIMEOUT_SECONDS} s while trying to {what}",
            hint="check the network access to the package index, then retry",
        ) from exc


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-STDERR_TAIL_LINES:]) or "(no output)"


def _has_requirements(path: Path) -> bool:
    """True when ``path`` exists and names anything (not only comments and blank lines)."""
    if not path.is_file():
        return False
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read {path}: {exc}", hint="fix or remove the file") from exc
    return any(line.split("#", 1)[0].strip() for line in lines)


def _has_node_dependencies(path: Path) -> bool:
    """True when ``path`` (package.json) exists and declares runtime dependencies."""
    if not path.is_file():
        return False
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read {path}: {exc}", hint="fix or remove the file") from exc
    except json.JSONDecodeError as exc:
        raise PackageError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
            hint="fix package.json",
        ) from exc
    if not isinstance(manifest, dict):
        raise PackageError(f"{path} must hold a JSON object", hint="fix package.json")
    keys = ("dependencies", "optionalDependencies", "bundleDependencies", "bundledDependencies")
    return any(manifest.get(key) for key in keys)


def _python_version(runtime: str) -> str | None:
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _vendor_python(source_dir: Path, runtime: str, cache_root: Path, name: str) -> Path:
    requirements = source_dir / "requirements.txt"
    try:
        req_bytes = requirements.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read {requirements}: {exc.strerror or exc}") from exc
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    target_version = _python_version(runtime) or here
    native = target_version == here and sys.platform == "linux" and platform.machine() == "x86_64"
    key = _cache_key(
        [DEPS_CACHE_VERSION.encode(), b"python", runtime.encode(), here.encode(), req_bytes]
    )
    base = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-r",
        str(requirements.absolute()),
        "--no-compile",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
    ]
    # Lambda runs linux x86_64 with the runtime's Python: ask pip for those wheels when
    # this interpreter differs, falling back to a plain install (pure-Python sdists).
    cross = [
        "--platform",
        "manylinux2014_x86_64",
        "--implementation",
        "cp",
        "--python-version",
        target_version,
        "--only-binary=:all:",
    ]

    def populate(tmp: Path) -> None:
        attempts = [base] if native else [base + cross, base]
        failures: list[str] = []
        for cmd in attempts:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            proc = _run([*cmd, "--target", str(tmp)], source_dir, "vendor requirements.txt", name)
            if proc.returncode == 0:
                _normalize_python_tree(tmp)
                return
            failures.append(_tail(proc.stderr or proc.stdout))
        raise PackageError(
            f"function {name!r}: pip could not install {requirements} "
            f"for {runtime}:\n{failures[-1]}",
            hint="fix requirements.txt (or the network access to the package index) and retry",
        )

    return _cached_tree(cache_root, key, populate)


def _normalize_python_tree(tree: Path) -> None:
    """Make a pip --target tree machine-independent: no bytecode, no absolute shebangs."""
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    scripts = tree / "bin"
    if not scripts.is_dir():
        return
    for script in scripts.iterdir():
        if not script.is_file():
            continue
        data = script.read_bytes()
        first, newline, rest = data.partition(b"\n")
        if first.startswith(b"#!") and b"python" in first:
            script.write_bytes(b"#!/usr/bin/env python3" + newline + rest)


def _vendor_node(source_dir: Path, runtime: str, cache_root: Path, name: str) -> Path:
    manifests = ["package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"]
    present: list[tuple[str, bytes]] = []
    for manifest in manifests:
        path = source_dir / manifest
        if path.is_file():
            try:
                present.append((manifest, path.read_bytes()))
            except OSError as exc:
                raise PackageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    parts = [DEPS_CACHE_VERSION.encode(), b"node", runtime.encode()]
    for manifest, data in present:
        parts += [manifest.encode(), data]
    key = _cache_key(parts)
    locked = any(m in {"package-lock.json", "npm-shrinkwrap.json"} for m, _ in present)
    verb = ["ci"] if locked else ["install"]
    cmd = ["npm", *verb, "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"]

    def populate(tmp: Path) -> None:
        for manifest, data in present:
            (tmp / manifest).write_bytes(data)
        proc = _run(cmd, tmp, "install the dependencies in package.json", name)
        if proc.returncode != 0:
            hint = "fix package.json (or the network access to the npm registry) and retry"
            if locked:
                hint = (
                    "npm ci needs package-lock.json in sync with package.json: run "
                    "`npm install` in the function folder, or fix the network access, and retry"
                )
            raise PackageError(
                f"function {name!r}: `{' '.join(cmd)}` failed for {source_dir / 'package.json'}:"
                f"\n{_tail(proc.stderr or proc.stdout)}",
                hint=hint,
            )

    return _cached_tree(cache_root, key, populate)
