"""The template engine orch leans on: airspeed-ext exactly, and ``vtl.py``'s fast paths honest.

``vtl.render`` runs a template as one compiled Python function (``vtlcompile``) or, for a
template it does not compile, through airspeed's evaluation with shortcuts installed on the
tree (``engine="airspeed"`` forces the latter). Either must render every template the same
as airspeed's own ``Template.merge``: every template of the conformance cases, the
console's passthrough template and the templates below, each against several bodies and
parameter sets, and fail where it fails (with the same message on both of vtl's paths).
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
    # shapes the compiled path handles itself
    "#foreach($k in $input.path('$').keySet())$k=$input.path('$').get($k);#end",
    "#set($p = $input.path('$'))#if($p.a && $p.a.b.size() > 1)$p.a.b[1].c#elseif(!$p.a)no a#{else}?#end",
    "#foreach($t in $input.params().querystring.entrySet())$t.key:$t.value,$velocityCount;#end",
    "#set($n = 0)#foreach($i in [1..4])#set($n = $n + $i * 2)#end$n|#foreach($i in [2..0])$i#end",
    '#set($m = {"k": [1, 2], "s": "x"})$m.k.size() $m.s.length() $m.k.get(0) ${m.s} $!m.zz [${m.zz|"d"}]',
    "#set($x = $input.json('$.a'))#if($x == 'null')null#{else}$x.length()#end",
    '#set($s = "$input.params(\'v\')-#if($input.params(\'id\'))id#end")[$s]',
    "$input.path('$.a.b')[0]|$input.path('$')[0]",
    "#foreach($i in $input.path('$.a.b'))#set($last = $i)#end[$last]$i",
    "$util.escapeJavaScript($input.body)#stop$util.parseJson($input.body)",
    "#set($q = $input.params().querystring)#foreach($k in $q.keySet())$k=$util.urlEncode($q.get($k))"
    "#if($foreach.hasNext)&#end#end",
]
BODIES = [
    "",
    '{"a": {"b": [10, {"c": "x"}]}}',
    '[{"foo": "bar"}]',
    "To=%2B1555&ToCity=SOME%2BCITY",
    '{"a": {"b": [{"c": {"d": [1, 2.5, null, true, {"e": "deep"}]}}, {"c": "x"}]}, "n": -1e3}',
    json.dumps({"uni": "café ☃ 😀 ü", "q": 'it\'s "quoted" \\ / back'}),
    json.dumps({"uni": "café ☃ 😀 ü", "q": 'it\'s "quoted" \\ / back'}, ensure_ascii=False),
    '{"a": "text", "dup": 1, "dup": 2}',
    "not json at all: {",
    "  ",
]
PARAMS = [
    {"path": {}, "querystring": {}, "header": {}},
    {"path": {"id": "7"}, "querystring": {"v": "it's", "q": "1"}, "header": {"User-Agent": "t", "X-A": "b"}},
    {"path": {"id": "ü"}, "querystring": {f"q{i}": f"v{i} & \\ \"{i}\"" for i in range(12)}, "header": {}},
    {
        "path": {},
        "querystring": {"v": "a/b", "id": ""},
        "header": {"get": "shadows dict.get", "Content-Type": "application/json", "X-Uni": "☃"},
    },
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


def _rendered_by(engine: str) -> Any:
    """``vtl.render`` with the test's variables, through ``engine``."""

    def render(template: str, body: str, params: dict) -> str:
        return vtl.render(
            template,
            input_var=vtl.InputVariable(body, params),
            context=context(),
            stage_variables={"env": "dev"},
            engine=engine,
        )

    return render


_fast = _rendered_by("compiled")
_shortcuts = _rendered_by("airspeed")


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


def _detailed(render: Any, *args: Any) -> tuple[str, str]:
    try:
        return ("ok", render(*args))
    except vtl.TemplateError as exc:
        return (type(exc).__name__, str(exc))


def test_fast_path_renders_like_airspeeds_own_merge():
    from_cases = _conformance_templates()
    if conformance.case_files(conformance.conformance_dir()):
        assert len(from_cases) >= 20  # every case's request and response templates
        compiled = [t for t in from_cases if vtl.compiled_fully(t)]
        assert len(compiled) >= 0.9 * len(from_cases)  # most run as compiled functions
    assert vtl.compiled_fully(passthrough_template(REPO))
    assert all(vtl.compiled_fully(t) for t in TEST_TEMPLATES)
    templates = [*TEST_TEMPLATES, passthrough_template(REPO), *from_cases]
    rendered = failed = 0
    for template in templates:
        for body in BODIES:
            for params in PARAMS:
                fast = _outcome(_fast, template, body, params)
                merged = _outcome(_merged, template, body, params)
                assert fast == merged, (template, body, params)
                # vtl's two paths: the same text, or the same error class and message
                detailed = _detailed(_fast, template, body, params)
                assert detailed == _detailed(_shortcuts, template, body, params), (
                    template, body, params,
                )
                rendered += fast[0] == "ok"
                failed += fast[0] == "error"
    assert rendered > len(templates) * len(BODIES)  # most combinations render
    assert failed > 0  # and some fail (a body that is not JSON, a missing index)


def test_render_uses_the_compiled_function(monkeypatch):
    template = passthrough_template(REPO)
    expected = _merged(template, '{"a": 1}', PARAMS[1])

    def refuse(*_args: Any) -> None:
        raise AssertionError("airspeed evaluated the tree")

    monkeypatch.setattr(vtl.compile_template(template).root_element, "evaluate", refuse)
    assert _fast(template, '{"a": 1}', PARAMS[1]) == expected
    with pytest.raises(vtl.TemplateError, match="airspeed evaluated the tree"):
        _shortcuts(template, '{"a": 1}', PARAMS[1])


# --- airspeed's semantics the compiled path reproduces ----------------------------------

SEMANTICS = [
    # #set writes to the innermost scope that has the name, else the current one: a name
    # first set inside a #foreach is gone after the iteration
    ("#set($x = 1)#foreach($i in [1, 2])#set($x = $i)#set($y = $i)#end$x|$y|", "2||"),
    ("#foreach($i in [1, 2])#set($y = $i)[$y]#end[$y]", "[1][2][]"),
    ("#set($i = 5)#foreach($i in ['a', 'b'])$i#end$i", "ab5"),
    ("#foreach($i in [1, 2])#set($i = 9)$i#end", "99"),
    (
        "#foreach($a in [1, 2])#foreach($b in ['x', 'y'])$foreach.count$foreach.hasNext,#end"
        "$foreach.index;#end[$foreach.count]",
        "1true,2false,0;1true,2false,1;[]",
    ),
    ("#foreach($a in ['x', 'y'])$velocityCount:$velocityHasNext,#end", "1:true,2:false,"),
    ("#foreach($i in [1, 2])#set($foreach = 'z')$foreach#end", "zz"),
    ("#foreach($i in [1, 2])#set($s = \"#set($w = $i)\")#end[$w]", "[]"),
    # #set to null stores null (it shadows, it does not remove)
    ("#set($x = 'a')#set($x = $null)[$x]", "[]"),
    ("#set($x = 1)#foreach($i in [1])#set($x = $null)#end[$x]", "[]"),
    # every reference is quiet in airspeed-ext; only REPLACE_FORMAL_TEXT and a $ that
    # starts no name render their source text
    ("[$nothing][$!nothing][${nothing}][$!{nothing}][$nothing.a.b()]", "[][][][][]"),
    ("[${nothing|'alt'}][${nothing|0}][${nothing|5}]", "[alt][][5]"),
    ("#set($v = ${nothing|'alt'})[$v]", "[]"),
    ("#set($m = {'k': '__FORMAL_REFERENCE__REPLACE_TEXT__'})$m.k|$!m.k|${m.k}", "$m.k|$!m.k|${m.k}"),
    ("[${}][$!{}][$]", "[${}][$!{}][$]"),
    # #stop discards output, in a string only that string's
    ("a#stop b$nothing c", "a"),
    ('#set($s = "x#stop y")[$s]', "[x]"),
    # a method of a missing value is null, its arguments are never computed
    ("#set($m = {})[$nothing.foo($m.put('k', 1))]$m", "[]{}"),
    ("[$nothing.size()][$nothing.get(0)][$nothing[0]]", "[][][]"),
    # a missing value is a true condition; operands are computed right first, no short-cut
    ("#if($nothing)unset-is-true#end", "unset-is-true"),
    ("#set($l = [])#set($x = $l.add(1) == $l.add(2))$l", "[2, 1]"),
    ("#set($l = [])#if($l.add(1) || $l.add(2))#end$l", "[2, 1]"),
    ("#set($l = [])#set($m = {$l.add(1): $l.add(2)})$l", "[2, 1]"),  # a map's value, then key
    ("#set($n = 2 * 3 + 4 * 5 - 7 / 2 % 2)$n", "25"),
    ("#set($s = 'abc')$s.length()|$s.substring(1)|$s.toUpperCase()|$s.contains('b')", "3|bc|ABC|true"),
    ('#set($m = {"b": 1, "a": [1, 2]})$m|$m.keySet()|$m.a[1]', "{'b': 1, 'a': [1, 2]}|dict_keys(['b', 'a'])|2"),
]


@pytest.mark.parametrize("template, expected", SEMANTICS)
def test_compiled_semantics_are_airspeeds(template, expected):
    assert vtl.compiled_fully(template)
    assert _fast(template, "", PARAMS[0]) == expected
    assert _merged(template, "", PARAMS[0]) == expected


def test_stop_discards_output_but_evaluation_goes_on():
    ctx = context()
    out = vtl.render(
        "a#stop b#set($context.responseOverride.status = 418)c",
        input_var=vtl.InputVariable(""),
        context=ctx,
        stage_variables={},
    )
    assert out == "a"
    assert vtl.response_override(ctx)[0] == 418


@pytest.mark.parametrize(
    "template, message",
    [
        ("#if($nothing > 1)x#end", "TypeError: '>' not supported"),
        ("$input.path('$.zz')[0]", "TypeError: 'NoneType' object is not subscriptable"),
        ("#foreach($x in 5)#end", "ValueError: value for $x is not iterable in #foreach: 5"),
        ("#set($a.b = 1)", "KeyError: 'a'"),
        ("#set($l = [1])$l.get(5)", "IndexError: list index out of range"),
        ("#set($l = ['a'])$l['x']", "ValueError: expected integer for array index, got 'x'"),
        ("#set($x = 'a' + 1)", "TypeError: can only concatenate str"),
    ],
)
def test_compiled_errors_are_airspeeds(template, message):
    assert vtl.compiled_fully(template)
    with pytest.raises(vtl.TemplateError) as compiled:
        _fast(template, "", PARAMS[0])
    with pytest.raises(vtl.TemplateError) as evaluated:
        _shortcuts(template, "", PARAMS[0])
    assert str(compiled.value) == str(evaluated.value)
    assert message in str(compiled.value)
    assert type(compiled.value) is vtl.TemplateError
    with pytest.raises(airspeed.TemplateExecutionError):
        _merged(template, "", PARAMS[0])


@pytest.mark.parametrize(
    "template",
    [
        "#macro(m $a)<$a>#end#m('x')#m($input.body)",
        "#define($d)D$input.body#end$d",
        "#set($t = '$input.body')#evaluate($t)",
        "#foreach($i in [1])" * 12 + "$i" + "#end" * 12,  # past Python's static nesting
    ],
)
def test_templates_not_compiled_keep_airspeeds_evaluation(template):
    assert not vtl.compiled_fully(template)
    assert _fast(template, "b", PARAMS[0]) == _merged(template, "b", PARAMS[0])


@pytest.mark.parametrize("template", ["$input.path('$')", "$input.json('$')"])
def test_the_depth_guard_holds_on_both_paths(template):
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(vtl.BodyParseError):
        vtl.render(template, input_var=vtl.InputVariable(deep), context=context(), stage_variables={})
