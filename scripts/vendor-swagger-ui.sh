#!/usr/bin/env bash
# Re-vendor Swagger UI (the npm package swagger-ui-dist) into src/orch/docs_ui/, the renderer
# of `orch docs`. Usage: scripts/vendor-swagger-ui.sh [VERSION]  (default: the version in
# src/orch/docs_ui/VENDORED.json). Needs npm (it only downloads the package tarball with
# `npm pack`); records the version, licence, the tarball's integrity and each file's SHA-256
# in VENDORED.json, which tests/test_docs.py checks against the files.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/src/orch/docs_ui"
version="${1:-$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$dest/VENDORED.json")}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
tarball="$(ls "$work"/swagger-ui-dist-*.tgz)"
tar -xzf "$tarball" -C "$work"
mkdir -p "$dest"
for name in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
  cp "$work/package/$name" "$dest/$name"
done

python3 - "$dest" "$work/package/package.json" "$tarball" <<'PY'
import base64, hashlib, json, sys
from pathlib import Path

dest, package_json, tarball = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
files = {name: hashlib.sha256((dest / name).read_bytes()).hexdigest()
         for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE")}
record = {
    "package": package_json["name"],
    "version": package_json["version"],
    "license": package_json["license"],
    "source": f"npm pack {package_json['name']}@{package_json['version']}",
    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode(),
    "sha256": files,
}
(dest / "VENDORED.json").write_text(json.dumps(record, indent=2) + "\n")
print(f"vendored {record['package']} {record['version']} into {dest}")
PY
