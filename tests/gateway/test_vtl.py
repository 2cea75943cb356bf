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


def test_empty_body_is_an_empty_object():
    assert render("$input.json('$')", "") == "{}"


def test_malformed_json_body_raises_body_parse_error():
    with pytest.raises(vtl.BodyParseError):
        render("$input.json('$')", "{not json")


def test_util_functions():
    assert render('$util.escapeJavaScript("it\'s ""q"" /")') == 'it\\\'s \\"q\\" \\/'
    assert render("$util.urlEncode('a b&c')") == "a+b%26c"
    assert render("$util.urlDecode('a+b%26c')") == "a b&c"
    assert render("$util.base64Encode('hi')") == "aGk="
    assert render("$util.base64Decode('aGk=')") == "hi"
    assert render("#set($o = $util.parseJson('{\"a\": [1]}'))$o.a.get(0)") == "1"


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
