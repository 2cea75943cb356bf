"""Mapping templates: $input, $util, $context and the console's passthrough template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.gateway import vtl
from orch.render import passthrough_template


def context(**overrides):
    values = dict(
        resource_id="res1",
        resource_path="/",
        http_method="POST",
        extended_request_id="ext=",
        request_time="26/Nov/2026:11:24:05 +0000",
        path="/dev/",
        account_id="123456789012",
        protocol="HTTP/1.1",
        stage="dev",
        domain_prefix="api1",
        request_time_epoch=1,
        request_id="req-1",
        identity={"sourceIp": "127.0.0.1", "userAgent": "curl/8"},
        domain_name="127.0.0.1:9000",
        deployment_id="dep1",
        api_id="api1",
    )
    values.update(overrides)
    return vtl.build_context(**values)


def render(template, body="", params=None, stage_variables=None, ctx=None):
    return vtl.render(
        template,
        input_var=vtl.InputVariable(body, params),
        context=ctx or context(),
        stage_variables=stage_variables,
    )


PARAMS = {
    "path": {"id": "from-path"},
    "querystring": {"id": "from-query", "q": "1"},
    "header": {"id": "from-header", "X-Token": "abc"},
}


def test_params_by_name_prefers_path_then_querystring_then_header():
    assert render("$input.params('id')", params=PARAMS) == "from-path"
    assert render("$input.params('q')", params=PARAMS) == "1"
    assert render("$input.params('x-token')", params=PARAMS) == "abc"
    assert render("[$input.params('missing')]", params=PARAMS) == "[]"


def test_params_map_renders_like_a_java_map():
    out = render("$input.params()", params=PARAMS)
    assert out == (
        "{path={id=from-path}, querystring={id=from-query, q=1}, "
        "header={id=from-header, X-Token=abc}}"
    )


def test_json_and_path_follow_the_jsonpath_subset():
    body = json.dumps({"a": {"b": [10, {"c": "x"}]}, "k-1": None})
    assert render("$input.json('$.a.b[1]')", body) == '{"c":"x"}'
    assert render("$input.path('$.a.b[0]')", body) == "10"
    assert render("$input.path(\"$['a']['b'][1].c\")", body) == "x"
    assert render("$input.path('$.a.b').size()", body) == "2"
    assert render("[$input.path('$.k-1')]", body) == "[]"  # null renders as ""
    assert render("$input.json('$.nope')", body) == "null"


def test_empty_body_is_an_empty_object_and_input_body_is_its_text():
    assert render("$input.json('$')", "") == "{}"
    # case 17 (recorded on AWS): $input.body of an empty body is {}, else the raw text
    assert render("$input.body", "") == "{}"
    assert render("$input.body", '{"some": "value"}') == '{"some": "value"}'
    assert render("[$input.body.testAccess]", "some raw data") == "[]"


def test_a_body_that_is_not_json_is_one_json_string():
    form = "To=%2B15550001111&ToCity=SOME%2BCITY"
    assert render("$input.path('$')", form) == form
    assert render("#foreach($p in $input.path('$').split('&'))$p;#end", form) == (
        "To=%2B15550001111;ToCity=SOME%2BCITY;"
    )
    assert render("$input.json('$')", form) == json.dumps(form)
    assert render("[$input.path('$.To')]", form) == "[]"


def test_json_nested_past_the_depth_limit_is_a_body_parse_error():
    deep = "[" * 100_000 + "]" * 100_000
    for template in ("$input.json('$')", "$input.path('$')", "$input.path('$').size()"):
        with pytest.raises(vtl.BodyParseError):
            render(template, deep)
    with pytest.raises(vtl.BodyParseError):
        vtl.loads_json(deep)
    # just inside the limit still renders
    ok = "[" * 500 + "]" * 500
    assert render("$input.json('$')", ok) == ok


def test_lists_from_json_print_as_json_and_maps_java_style():
    # Recorded on AWS: case 16 and LocalStack's snapshot test_input_path_template_formatting
    cases = [
        ('$input.path("$")', {"foo": "bar"}, "{foo=bar}"),
        ('$input.path("$")', [{"foo": "bar"}], '[{"foo":"bar"}]'),
        ('$input.path("$").nested', {"nested": [{"foo": "bar"}]}, '[{"foo":"bar"}]'),
        ('$input.path("$")[0]', [{"foo": "bar"}], "{foo=bar}"),
        ('$input.path("$")[0]', [[{"foo": "bar"}]], '[{"foo":"bar"}]'),
        ('$input.path("$")', {"foo": [{"nested": "bar"}]}, '{foo=[{"nested":"bar"}]}'),
        ('$input.path("$").toString()', {"list": [{"foo": "bar"}]}, '{list=[{"foo":"bar"}]}'),
        ('$input.path("$")', {"bigger": "dict", "to": "test"}, "{bigger=dict, to=test}"),
    ]
    for template, body, expected in cases:
        assert render(template, json.dumps(body)) == expected, (template, body)
    # a list that is not from JSON keeps the Java form
    assert render("$input.params().header.keySet()", params=PARAMS) == "[id, X-Token]"


def test_util_functions():
    assert render('$util.escapeJavaScript("it\'s ""q"" /")') == 'it\\\'s \\"q\\" \\/'
    assert render("$util.urlEncode('a b&c')") == "a+b%26c"
    assert render("$util.urlDecode('a+b%26c')") == "a b&c"
    assert render("$util.base64Encode('hi')") == "aGk="
    assert render("$util.base64Decode('aGk=')") == "hi"
    assert render("#set($o = $util.parseJson('{\"a\": [1]}'))$o.a.get(0)") == "1"
    assert render("[$util.urlEncode($nothing)]") == "[]"


def _escape_reference(text: str) -> str:
    """commons-lang escapeJavaScript, one character at a time (vtl's loop before its cache)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "'\"\\/":
            out.append("\\" + ch)
        elif ch in "\b\n\t\f\r":
            out.append({"\b": "\\b", "\n": "\\n", "\t": "\\t", "\f": "\\f", "\r": "\\r"}[ch])
        elif code < 0x20 or (0x7F < code <= 0xFFFF):
            out.append(f"\\u{code:04X}")
        elif code > 0xFFFF:
            high, low = divmod(code - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04X}\\u{0xDC00 + low:04X}")
        else:
            out.append(ch)
    return "".join(out)


def test_escape_javascript_escapes_every_character_like_commons_lang():
    samples = [chr(c) for c in range(0, 0x3100)] + [chr(c) for c in range(0xD700, 0x10000, 7)]
    samples += [chr(c) for c in range(0x10000, 0x110000, 4099)] + ["\U0001F600", "\U0010FFFF"]
    for ch in samples:
        for text in (ch, f"a{ch}b/{ch}"):
            vtl._js_escaped.clear()
            assert vtl.escape_javascript(text) == _escape_reference(text), repr(text)
            assert vtl.escape_javascript(text) == _escape_reference(text), repr(text)  # cached
    assert vtl.escape_javascript(None) is None
    assert vtl.escape_javascript(True) == "true"
    assert vtl.escape_javascript(vtl.VtlList(["a/b"])) == "[a\\/b]"


def test_context_nulls_render_empty_and_nested_maps_render_empty():
    out = render("[$context.identity.user][$context.identity][$context.authorizer.principalId]")
    assert out == "[][][]"
    keys = render("#foreach($k in $context.keySet())$k,#end")
    assert keys.split(",")[:3] == ["resourceId", "resourcePath", "httpMethod"]
    assert "authorizer" not in keys


def test_stage_variables_and_response_override():
    ctx = context()
    out = render(
        "$stageVariables.env#set($context.responseOverride.status = 418)"
        "#set($context.responseOverride.header.X-Env = $stageVariables.env)",
        stage_variables={"env": "dev"},
        ctx=ctx,
    )
    assert out == "dev"
    assert vtl.response_override(ctx) == (418, {"X-Env": "dev"})


def test_syntax_error_is_a_template_error():
    with pytest.raises(vtl.TemplateError):
        render("#if($x")


def test_passthrough_template_gives_the_documented_event_for_the_prototype_request():
    params = {
        "path": {},
        "querystring": {"deptno-param": "10"},
        "header": {"Authorization": "Bearer t0k3n", "Content-Type": "application/json"},
    }
    out = render(
        passthrough_template(Path(__file__).resolve().parents[2]),
        body=json.dumps({"deptno": 10, "name": "O'Neil"}),
        params=params,
        stage_variables={"env": "dev"},
    )
    event = json.loads(out)
    assert event == {
        "body-json": {"deptno": 10, "name": "O'Neil"},
        "params": {
            "path": {},
            "querystring": {"deptno-param": "10"},
            # escapeJavaScript writes "application\/json", which JSON reads back as "/"
            "header": {"Authorization": "Bearer t0k3n", "Content-Type": "application/json"},
        },
        "stage-variables": {"env": "dev"},
        "context": {
            "account-id": "",
            "api-id": "api1",
            "api-key": "",
            "authorizer-principal-id": "",
            "caller": "",
            "cognito-authentication-provider": "",
            "cognito-authentication-type": "",
            "cognito-identity-id": "",
            "cognito-identity-pool-id": "",
            "http-method": "POST",
            "stage": "dev",
            "source-ip": "127.0.0.1",
            "user": "",
            "user-agent": "curl/8",
            "user-arn": "",
            "request-id": "req-1",
            "resource-id": "res1",
            "resource-path": "/",
        },
    }
    assert list(event) == ["body-json", "params", "stage-variables", "context"]
