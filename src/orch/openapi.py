"""A stage's API as an OpenAPI 3.0 document, built from the stage's definition.

This module owns turning a validated stage (orch.config) into typed OpenAPI models
(openapi-pydantic): paths and methods, parameters with their required flags, request bodies
and responses with descriptions, the CORS preflights and headers, and, on request, API
Gateway's own extensions (`x-amazon-apigateway-integration` and friends) describing what the
Terraform modules deploy. Every document is checked with openapi-spec-validator before it is
returned. It reads no files beyond the stage's templates and talks to no AWS service: it
describes the definition, not what is deployed.

API Gateway's extensions: https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions.html
"""

from __future__ import annotations

import json
import re
from typing import Any

from openapi_pydantic.v3.v3_0 import (
    Header,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Response,
    Schema,
    Server,
    ServerVariable,
)

from orch.config import ALL_METHODS, Cors, Route, Stage
from orch.errors import OrchError

OPENAPI_VERSION = "3.0.3"
BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
ANY_METHOD = "x-amazon-apigateway-any-method"
REQUEST_VALIDATOR = "required-parameters"  # the one modules/rest_api creates
PREFLIGHT_TEMPLATE = '{"statusCode": 200}'  # modules/cors
ERROR_TEMPLATE = '{"message":$context.error.messageString}'  # AWS's default, kept by modules/cors
ACCOUNT_PLACEHOLDER = "<account-id>"


def document(stage: Stage, *, extensions: bool = False) -> OpenAPI:
    """The stage's API as an OpenAPI 3.0 model. With `extensions`, API Gateway's
    `x-amazon-apigateway-*` blocks: each method's integration (URI with `<account-id>` for
    the account, which the definition does not know), request validators and the CORS
    gateway responses; ANY is then `x-amazon-apigateway-any-method` (without extensions it
    is listed as each HTTP method, so renderers show it).

    Raises OrchError (exit 1, a bug) if the result does not validate as OpenAPI 3.0.
    """
    cfg = stage.config
    paths: dict[str, PathItem] = {}
    preflights = cfg.api.preflights()
    for route in cfg.api.routes:
        item = paths.setdefault(route.path, PathItem())
        operation = _operation(stage, route, extensions)
        methods = [route.method] if extensions or route.method != "ANY" else _any_methods(cfg.api.routes, route)
        for method in methods:
            key = ANY_METHOD if method == "ANY" else method.lower()
            if key == ANY_METHOD:
                setattr(item, ANY_METHOD, _plain(operation))
            else:
                setattr(item, key, operation if len(methods) == 1 else _renamed(operation, method))
    for path, cors in preflights.items():
        paths[path].options = _preflight(path, cors, extensions)
    spec = OpenAPI(
        openapi=OPENAPI_VERSION,
        info=Info(title=stage.api_name, version=stage.name, description=cfg.api.description),
        servers=_servers(stage),
        paths=paths,
    )
    if extensions:
        _add_api_extensions(spec, stage)
    validate(as_dict(spec))
    return spec


def as_dict(spec: OpenAPI) -> dict[str, Any]:
    """The document as plain JSON data (aliases such as `in` and `$ref`, no nulls)."""
    return _plain(spec)


def _plain(model: Any) -> dict[str, Any]:
    """A model as JSON data: aliases, only what was set (no defaults such as deprecated: false)."""
    return model.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


def render(spec: OpenAPI, fmt: str = "json") -> str:
    """The document as JSON (2-space indent) or YAML text, ending in a newline."""
    data = as_dict(spec)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def validate(data: dict[str, Any]) -> None:
    """Check `data` against the OpenAPI 3.0 specification (openapi-spec-validator)."""
    from openapi_spec_validator import OpenAPIV30SpecValidator

    errors = sorted(OpenAPIV30SpecValidator(data).iter_errors(), key=str)
    if errors:
        raise OrchError(
            f"the OpenAPI document orch built is not valid OpenAPI 3.0: {errors[0].message}",
            hint="This is a bug in orch; please report it with the stage files.",
        )


def routes(data: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, API Gateway resource path) of every operation in a document, ANY as "ANY":
    what to compare with a deployed API's resources and methods."""
    found = set()
    for path, item in (data.get("paths") or {}).items():
        for key in item:
            if key == ANY_METHOD:
                found.add(("ANY", path))
            elif key.upper() in ALL_METHODS:
                found.add((key.upper(), path))
    return found


# --- pieces ----------------------------------------------------------------------------


def _validated(route: Route) -> bool:
    """Whether modules/rest_api puts the route behind its request validator: a required
    parameter (path parameters always are)."""
    params = route.parameters
    return "{" in route.path or any((*params.headers.values(), *params.querystrings.values(), *params.paths.values()))


def _any_methods(all_routes: list[Route], route: Route) -> list[str]:
    """What ANY answers on its path: every method the path has no route of its own for."""
    own = {r.method for r in all_routes if r.path == route.path and r.method != "ANY"}
    return [m for m in ALL_METHODS if m not in own and m != "OPTIONS"] or ["ANY"]


def _renamed(operation: Operation, method: str) -> Operation:
    return operation.model_copy(update={"operationId": f"{operation.operationId}_{method.lower()}"})


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path) if w]
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words) if words else method.lower() + "Root"


def _parameters(route: Route) -> list[Parameter]:
    params: list[Parameter] = []
    in_path = re.findall(r"\{([A-Za-z0-9_]+\+?)\}", route.path)
    for name in in_path:
        params.append(Parameter(
            name=name, param_in="path", required=True, param_schema=Schema(type="string"),
            description="The rest of the path (one segment or more)." if name.endswith("+") else None,
        ))
    for name, required in route.parameters.headers.items():
        params.append(Parameter(name=name, param_in="header", required=required, param_schema=Schema(type="string")))
    for name, required in route.parameters.querystrings.items():
        params.append(Parameter(name=name, param_in="query", required=required, param_schema=Schema(type="string")))
    return params


def _cors_headers(cors: Cors | None, route: Route) -> dict[str, Header] | None:
    if cors is None or route.integration.type != "AWS":
        return None
    headers = {"Access-Control-Allow-Origin": Header(
        description=f"CORS: {cors.allow_origin}", param_schema=Schema(type="string"))}
    if cors.expose_headers:
        headers["Access-Control-Expose-Headers"] = Header(param_schema=Schema(type="string"))
    if cors.allow_credentials:
        headers["Access-Control-Allow-Credentials"] = Header(param_schema=Schema(type="string"))
    return headers


def _operation(stage: Stage, route: Route, extensions: bool) -> Operation:
    integration = route.integration
    cors = stage.config.api.route_cors(route)
    first_line = route.description.strip().splitlines()[0] if route.description.strip() else ""
    proxy = integration.type == "AWS_PROXY"
    how = (
        f"Lambda proxy integration: the function {stage.function_name} gets the whole request and "
        "answers with its own status, headers and body."
        if proxy else
        f"Lambda integration: the request reaches the function {stage.function_name} through a mapping "
        "template; its result is the response body."
    )
    body = None
    if route.method not in BODYLESS:
        types = ["application/json"] if proxy else list(integration.content_types)
        body = RequestBody(
            description="Any body; passed to the function "
            + ("as it is." if proxy else "through the mapping template."),
            content={t: MediaType(media_type_schema=Schema()) for t in types},
            required=False,
        )
    headers = _cors_headers(cors, route)
    if proxy:
        responses = {"default": Response(description="The function's response.")}
    else:
        responses = {"200": Response(description="The function's result.", headers=headers)}
        for err in route.errors:
            responses[str(err.status)] = Response(
                description=f"The function failed with an error message matching `{err.pattern}`.", headers=headers)
    operation = Operation(
        operationId=_operation_id(route.method, route.path),
        summary=first_line or f"{route.method} {route.path}",
        description="\n\n".join(p for p in (route.description.strip(), how) if p),
        parameters=_parameters(route) or None,
        requestBody=body,
        responses=responses,
    )
    if extensions:
        extra = {"x-amazon-apigateway-integration": _integration(stage, route, cors)}
        if _validated(route):
            extra["x-amazon-apigateway-request-validator"] = REQUEST_VALIDATOR
        operation = operation.model_copy(update=extra)
    return operation


def _alias_uri(stage: Stage) -> str:
    region = stage.config.region
    alias = (f"arn:aws:lambda:{region}:{ACCOUNT_PLACEHOLDER}:function:{stage.function_name}:"
             f"{stage.stage_name}")
    return f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{alias}/invocations"


def _integration(stage: Stage, route: Route, cors: Cors | None) -> dict[str, Any]:
    from orch.render import request_template

    integration = route.integration
    block: dict[str, Any] = {
        "type": integration.type.lower(),
        "httpMethod": "POST",
        "uri": _alias_uri(stage),
        "timeoutInMillis": integration.timeout_milliseconds,
    }
    if integration.type == "AWS_PROXY":
        return block
    text = request_template(stage, integration.request_template)
    block["requestTemplates"] = {t: text for t in integration.content_types}
    block["passthroughBehavior"] = integration.passthrough_behavior.lower()
    parameters = (
        {f"method.response.header.{k}": f"'{v}'" for k, v in _route_header_values(cors).items()}
        if cors is not None else {}
    )
    responses: dict[str, Any] = {"default": {"statusCode": "200"}}
    for err in route.errors:
        responses[err.pattern] = {"statusCode": str(err.status)}
        if err.template:
            responses[err.pattern]["responseTemplates"] = {"application/json": err.template}
    if parameters:
        for response in responses.values():
            response["responseParameters"] = parameters
    block["responses"] = responses
    return block


def _route_header_values(cors: Cors) -> dict[str, str]:
    values = {"Access-Control-Allow-Origin": cors.allow_origin}
    if cors.expose_headers:
        values["Access-Control-Expose-Headers"] = ",".join(cors.expose_headers)
    if cors.allow_credentials:
        values["Access-Control-Allow-Credentials"] = "true"
    return values


def preflight_header_values(cors: Cors) -> dict[str, str]:
    """The Access-Control headers an OPTIONS preflight answers with (as modules/cors maps them)."""
    from orch.render import allowed_methods

    values = {
        "Access-Control-Allow-Origin": cors.allow_origin,
        "Access-Control-Allow-Methods": ",".join(allowed_methods(cors)),
        "Access-Control-Allow-Headers": ",".join(cors.allow_headers),
    }
    if cors.expose_headers:
        values["Access-Control-Expose-Headers"] = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        values["Access-Control-Max-Age"] = str(cors.max_age)
    if cors.allow_credentials:
        values["Access-Control-Allow-Credentials"] = "true"
    return values


def _preflight(path: str, cors: Cors, extensions: bool) -> Operation:
    values = preflight_header_values(cors)
    operation = Operation(
        operationId=_operation_id("OPTIONS", path),
        summary=f"CORS preflight of {path}",
        description=(
            "Answered by API Gateway itself (a MOCK integration), never by the function: the browser asks "
            f"whether a page on another origin may call {path}. Allowed origin: {cors.allow_origin}."
        ),
        parameters=[Parameter(name=n.strip("{}+") + ("+" if n.endswith("+}") else ""), param_in="path",
                              required=True, param_schema=Schema(type="string"))
                    for n in re.findall(r"\{[A-Za-z0-9_]+\+?\}", path)] or None,
        responses={"200": Response(
            description="The CORS headers; no body.",
            headers={name: Header(description=value, param_schema=Schema(type="string"))
                     for name, value in values.items()},
        )},
    )
    if extensions:
        operation = operation.model_copy(update={"x-amazon-apigateway-integration": {
            "type": "mock",
            "passthroughBehavior": "when_no_match",
            "requestTemplates": {"application/json": PREFLIGHT_TEMPLATE},
            "responses": {"default": {
                "statusCode": "200",
                "responseParameters": {f"method.response.header.{k}": f"'{v}'" for k, v in values.items()},
                "responseTemplates": {"application/json": ""},
            }},
        }})
    return operation


def _servers(stage: Stage) -> list[Server]:
    cfg = stage.config
    servers = []
    if cfg.domain is not None:
        servers.append(Server(url=cfg.domain.url, description=f"Stage {stage.name} on its custom domain."))
    servers.append(Server(
        url=f"https://{{restApiId}}.execute-api.{cfg.region}.amazonaws.com/{stage.stage_name}",
        description=f"Stage {stage.name}'s invoke URL (`orch output {stage.name}` shows the API id).",
        variables={"restApiId": ServerVariable(default="restApiId", description="The REST API's id.")},
    ))
    return servers


def _add_api_extensions(spec: OpenAPI, stage: Stage) -> None:
    api = stage.config.api
    extra: dict[str, Any] = {}
    if any(_validated(r) for r in api.routes):
        extra["x-amazon-apigateway-request-validators"] = {
            REQUEST_VALIDATOR: {"validateRequestParameters": True, "validateRequestBody": False},
        }
    error_cors = api.error_cors()
    if error_cors is not None:
        headers = {"Access-Control-Allow-Origin": error_cors.allow_origin}
        if error_cors.allow_headers:
            headers["Access-Control-Allow-Headers"] = ",".join(error_cors.allow_headers)
        if error_cors.expose_headers:
            headers["Access-Control-Expose-Headers"] = ",".join(error_cors.expose_headers)
        if error_cors.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        extra["x-amazon-apigateway-gateway-responses"] = {
            kind: {
                "responseParameters": {f"gatewayresponse.header.{k}": f"'{v}'" for k, v in headers.items()},
                "responseTemplates": {"application/json": ERROR_TEMPLATE},
            }
            for kind in ("DEFAULT_4XX", "DEFAULT_5XX")
        }
    for key, value in extra.items():
        setattr(spec, key, value)
