"""`orch docs`: one static HTML page that renders a stage's OpenAPI document with Swagger UI.

This module owns the page: the document (orch.openapi) embedded as JSON, and the Swagger UI
bundle vendored from npm (`src/orch/docs_ui/`, see VENDORED.json and
scripts/vendor-swagger-ui.sh) embedded as data URLs, so the file works offline and alone
(opened from disk or served from S3). Swagger UI's remote validator badge is off
(`validatorUrl: null`) and a Content-Security-Policy lets the page load nothing from the
network; "Try it out" may call only the API's own servers. It writes the page and uploads it
through orch.aws; it builds no document itself and deploys nothing.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from orch.config import Stage
from orch.errors import ConfigError
from orch.resources import PACKAGE_DIR

UI_DIR = PACKAGE_DIR / "docs_ui"
UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="orch docs (Swagger UI {version})">
<title>{title}</title>
<link rel="stylesheet" href="data:text/css;base64,{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script id="openapi-document" type="application/json">{document}</script>
<script src="data:text/javascript;base64,{bundle}"></script>
<script>
window.ui = SwaggerUIBundle({{
  spec: JSON.parse(document.getElementById("openapi-document").textContent),
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: false,
  docExpansion: "list",
  defaultModelsExpandDepth: -1,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def ui_version() -> str:
    """The vendored Swagger UI release (src/orch/docs_ui/VENDORED.json)."""
    return str(json.loads((UI_DIR / "VENDORED.json").read_text())["version"])


def page(document: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI document (plain JSON data): everything inline.

    The Content-Security-Policy allows inline and data: scripts, styles, images and fonts,
    and network requests ("Try it out") only to the document's own servers.
    """
    ui = {name: base64.b64encode((UI_DIR / name).read_bytes()).decode() for name in UI_FILES}
    servers = sorted({_origin(s.get("url", "")) for s in document.get("servers", [])} - {""})
    csp = "; ".join([
        "default-src 'none'",
        "script-src 'unsafe-inline' data:",
        "style-src 'unsafe-inline' data:",
        "img-src data:",
        "font-src data:",
        "connect-src " + (" ".join(servers) if servers else "'none'"),
    ])
    # "</" inside the JSON would end the <script> element early; "<\/" is the same JSON.
    embedded = json.dumps(document, ensure_ascii=False).replace("</", "<\\/")
    title = document.get("info", {}).get("title", "API")
    return PAGE.format(csp=html.escape(csp), version=html.escape(ui_version()), title=html.escape(title),
                       css=ui["swagger-ui.css"], bundle=ui["swagger-ui-bundle.js"], document=embedded)


def _origin(url: str) -> str:
    """scheme://host[:port] of a server URL (server variables become a wildcard host part)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    host = parts.netloc.replace("{restApiId}", "*")
    if "{" in host:
        return ""
    return f"{parts.scheme}://{host}"


def default_path(stage: Stage) -> Path:
    """Where `orch docs STAGE` writes without --out: `.orch/docs/<stage>/index.html`."""
    return stage.project_dir / ".orch" / "docs" / stage.name / "index.html"


def write(text: str, path: Path) -> Path:
    """Write the page atomically (a temporary file renamed into place); return its path.
    Raises ConfigError naming the path when it cannot be written."""
    path = path.resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc}).") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # a page to open and publish, not a secret (mkstemp makes 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def publish_target(stage: Stage) -> tuple[str, str]:
    """(bucket, key) the stage's page is published to: `docs.bucket`, and `docs.key` or
    `<project>/<stage>/index.html`. ConfigError when the stage sets no `docs.bucket`."""
    docs = stage.config.docs
    if docs is None:
        raise ConfigError(
            f"stage {stage.name!r} sets no docs bucket, so there is nowhere to publish its page.",
            hint="Add `docs: {bucket: my-docs-bucket}` to stages/defaults.yaml or the stage's file "
            "(optionally `key: path/index.html`), or drop --publish to only write the file.",
        )
    return docs.bucket, docs.key or f"{stage.config.project}/{stage.name}/index.html"
