#!/usr/bin/env python3
"""What installing orch costs: `pip install .` against `pip install '.[sandbox]'`, and the
`moto[server]` orch used to pull in, each into a fresh virtual environment.

For each variant: wall time of the `pip install`, size on disk and number of packages,
both counted above an empty venv (pip and setuptools left out). All variants share the
machine's pip cache and are installed in turn, in one run, so the ratios compare like with
like; the absolute times depend on the cache and the network (run twice for warm figures).
The last line is JSON with the figures and the ratios against the base install.

Usage: python bench/install.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "base": [str(REPO)],
    "sandbox": [f"{REPO}[sandbox]"],
    "moto[server] (before)": [str(REPO), "moto[server]>=5.2,<5.3"],
}


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.lstat(full).st_size
    return total


def packages(python: Path) -> set[str]:
    out = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                         check=True, capture_output=True, text=True).stdout
    return {p["name"].lower() for p in json.loads(out)}


def install(root: Path, specs: list[str]) -> dict[str, float | int]:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    python = root / "bin" / "python"
    empty_size, empty_packages = folder_size(root), packages(python)
    started = time.perf_counter()
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *specs], check=True)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "megabytes": round((folder_size(root) - empty_size) / 1e6, 1),
        "packages": len(packages(python) - empty_packages),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the venvs here and keep them")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="orch-install-bench-"))
    results: dict[str, dict[str, float | int]] = {}
    try:
        for name, specs in VARIANTS.items():
            folder = work / name.split()[0].replace("[", "-").replace("]", "")
            shutil.rmtree(folder, ignore_errors=True)
            results[name] = install(folder, specs)
            print(f"{name:24} {results[name]['seconds']:7.1f} s {results[name]['megabytes']:8.1f} MB "
                  f"{results[name]['packages']:4d} packages", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    base = results["base"]
    ratios = {
        name: {key: round(float(value) / float(base[key]), 2) for key, value in figures.items() if base[key]}
        for name, figures in results.items() if name != "base"
    }
    print(json.dumps({"results": results, "ratio_to_base": ratios}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
