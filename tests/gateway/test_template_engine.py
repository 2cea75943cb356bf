"""The template engine orch leans on: airspeed-ext exactly, and ``vtl.py``'s fast path honest.

The fast path (``vtl.render``: shortcuts installed on airspeed's parse tree) must render every
template the same as airspeed's own ``Template.merge``: every template of the conformance
cases, the console's passthrough template and the templates the gateway tests use, each
against several bodies and parameter sets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import airspeed
import pytest
from tests.gateway import conformance
from tests.gateway.test_aws_answers import FORM_TEMPLATE
from tests.gateway.test_vtl import context

from orch.gateway import vtl
from orch.render import passthrough_template

REPO = Path(__file__).resolve().parents[2]


def _import_vtl_with(pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import orch.gateway.vtl"],
        env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_installed_engine_is_the_pinned_airspeed_ext():
    vtl.check_template_engine()  # raises otherwise
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"airspeed-ext=={vtl.AIRSPEED_VERSION}"' in pyproject


def test_a_plain_airspeed_installed_beside_it_fails_loudly_at_import(tmp_path):
    info = tmp_path / "airspeed-0.7.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: airspeed\nVersion: 0.7.1\n")
    (info / "RECORD").write_text("")
    proc = _import_vtl_with(tmp_path)
    assert proc.returncode != 0
    assert "plain `airspeed` 0.7.1 package is installed" in proc.stderr
    assert "pip uninstall -y airspeed" in proc.stderr


def test_an_overwritten_airspeed_module_fails_loudly_at_import(tmp_path):
    shutil.copytree(Path(airspeed.__file__).parent, tmp_path / "airspeed")
    proc = _import_vtl_with(tmp_path)  # the copy shadows the installed module
    assert proc.returncode != 0
    assert "is not the one airspeed-ext installed" in proc.stderr


# --- the differential test -------------------------------------------------------------

TEST_TEMPLATES = [
    "$input.params('id')|$input.params().path|$input.params().header.keySet()",
    "$input.json('$.a.b[1]')|$input.path('$.a.b').size()|[$input.path('$.missing')]",
    '{"raw": "$util.escapeJavaScript($input.body)"}',
    "#set($r = $input.path('$'))$r",
    '{"v": "$util.escapeJavaScript($input.params(\'v\'))"}',
    "#foreach($k in $context.keySet())$k=$context.get($k);#end",
    "$util.urlEncode($input.body)|$util.base64Encode($input.body)|$util.toJson($input.path('$'))",
    "#if($input.path('$.a') == $null)none#elseif($input.path('$.a').size() > 0)some#{else}empty#end",
    "$stageVariables.env#set($context.responseOverride.status = 418)$context.responseOverride.status",
    FORM_TEMPLATE,
]
BODIES = ["", '{"a": {"b": [10, {"c": "x"}]}}', '[{"foo": "bar"}]', "To=%2B1555&ToCity=SOME%2BCITY"]
PARAMS = [
    {"path": {}, "querystring": {}, "header": {}},
    {"path": {"id": "7"}, "querystring": {"v": "it's", "q": "1"}, "header": {"User-Agent": "t", "X-A": "b"}},
]


def _conformance_templates() -> list[str]:
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("requestTemplates", "responseTemplates") and isinstance(v, dict):
                    found.extend(t for t in v.values() if isinstance(t, str))
                else:
                    walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)

    for path in conformance.case_files(conformance.conformance_dir()):
        walk(json.loads(path.read_text()).get("apigateway"))
    return found


def _fast(template: str, body: str, params: dict) -> str:
    return vtl.render(
        template,
        input_var=vtl.InputVariable(body, params),
        context=context(),
        stage_variables={"env": "dev"},
    )


def _merged(template: str, body: str, params: dict) -> str:
    namespace = {
        "input": vtl.InputVariable(body, params),
        "context": context(),
        "stageVariables": vtl.VtlMap({"env": "dev"}),
        "util": vtl.UTIL,
    }
    return airspeed.Template(template).merge(namespace)


def _outcome(render: Any, *args: Any) -> tuple[str, str]:
    try:
        return ("ok", render(*args))
    except Exception:  # both paths must fail alike too
        return ("error", "")


def test_fast_path_renders_like_airspeeds_own_merge():
    from_cases = _conformance_templates()
    if conformance.case_files(conformance.conformance_dir()):
        assert len(from_cases) >= 20  # every case's request and response templates
    templates = [*TEST_TEMPLATES, passthrough_template(REPO), *from_cases]
    rendered = 0
    for template in templates:
        for body in BODIES:
            for params in PARAMS:
                fast = _outcome(_fast, template, body, params)
                merged = _outcome(_merged, template, body, params)
                assert fast == merged, (template, body, params)
                rendered += fast[0] == "ok"
    assert rendered > len(templates) * len(BODIES)  # most combinations render


@pytest.mark.parametrize("template", ["$input.path('$')", "$input.json('$')"])
def test_the_depth_guard_holds_on_both_paths(template):
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(vtl.BodyParseError):
        vtl.render(template, input_var=vtl.InputVariable(deep), context=context(), stage_variables={})
