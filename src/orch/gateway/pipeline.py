"""One request through a deployed stage, the way API Gateway (REST, v1) processes it.

This module owns routing, method-request validation, request/response mapping (templates,
passthrough behaviour, parameter mappings, integration-response selection, response
parameters and overrides), the integrations (AWS_PROXY and AWS Lambda through the worker
pool, HTTP and HTTP_PROXY to their backends, MOCK, AWS service calls to the emulator) and
turning failures into gateway responses. It must not parse HTTP from clients or talk to boto3
directly: the server hands it a ``GatewayRequest``, the registry the model, the pool the
handlers. Every failure inside becomes an AWS-shaped response; ``handle`` never raises.

Where AWS's answer comes from: the recordings in ``../shared/conformance`` (cited as "case
N"), AWS's documentation (URLs at the rules), and LocalStack's AWS-validated snapshot tests
(``tests/aws/services/apigateway/*.snapshot.json``). Rules that none of these establish say
so where they are made.
"""

from __future__ import annotations

import json
import math
import re
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import Any, Protocol

from orch.errors import SandboxError
from orch.gateway import events, vtl
from orch.gateway import gateway_responses as gr
from orch.gateway.events import GatewayRequest, GatewayResponse
from orch.gateway.gateway_responses import GatewayError
from orch.gateway.model import (
    SERVICE_URI,
    DeployedApi,
    FunctionRef,
    Integration,
    IntegrationResponse,
    Method,
    PackageMissing,
    Resource,
    describe_routes,
    parse_lambda_uri,
    substitute_stage_variables,
)

MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/json"

# Integration request headers an integration refuses to send: mapping one of them makes
# every call fail with 500 Internal server error. Lambda (AWS and AWS_PROXY): recorded in
# cases 2 and 12. HTTP and HTTP_PROXY: LocalStack's list, not recorded here.
FORBIDDEN_MAPPED_HEADERS_HTTP = frozenset(
    {"content-length", "transfer-encoding", "x-amzn-trace-id", "x-amzn-apigateway-api-id"}
)
FORBIDDEN_MAPPED_HEADERS_LAMBDA = FORBIDDEN_MAPPED_HEADERS_HTTP | frozenset(
    {"authorization", "connection", "expect", "proxy-authenticate", "te"}
)
# Method response headers API Gateway renames to x-amzn-Remapped-<name> (case 2), and the
# one it drops.
REMAPPED_RESPONSE_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "content-md5",
        "date",
        "expect",
        "host",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "trailer",
        "upgrade",
        "user-agent",
        "www-authenticate",
    }
)
DROPPED_RESPONSE_HEADERS = frozenset({"transfer-encoding"})
# Response headers of an HTTP backend that never reach the client of an HTTP_PROXY
# integration: framing the gateway redoes, hop-by-hop headers.
HTTP_PROXY_DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}
)
_PARAMETER = re.compile(r"method\.request\.(path|querystring|header|multivaluequerystring|multivalueheader)\.(.+)")


class Registry(Protocol):
    def get_api(self, rest_api_id: str, stage_name: str) -> DeployedApi: ...

    def get_function(self, ref: FunctionRef) -> Any: ...


class Invoker(Protocol):
    def invoke(self, spec: Any, event: bytes, request_id: str) -> Any: ...


class HttpCaller(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float,
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...


# --- routing ---------------------------------------------------------------------------


class _Node:
    __slots__ = ("literal", "param", "greedy", "resource")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: tuple[str, _Node] | None = None
        self.greedy: tuple[str, Resource] | None = None
        self.resource: Resource | None = None


@dataclass(frozen=True)
class RouteMatch:
    resource: Resource
    path_parameters: dict[str, str]


def _serves(resource: Resource, verb: str | None) -> bool:
    return verb is None or verb in resource.methods or "ANY" in resource.methods


class Router:
    """Resource tree match: literal part > {param} > {proxy+} (greedy, one part or more).

    With a method, a resource matches only when it has that method or ANY; otherwise the
    search goes on to the next candidate: ``OPTIONS /test`` where ``/test`` has only POST is
    served by a ``/{proxy+}`` sibling with OPTIONS (case 15).
    """

    def __init__(self, resources: tuple[Resource, ...]) -> None:
        self.root = _Node()
        for resource in resources:
            node = self.root
            for index, part in enumerate(resource.parts):
                if part.startswith("{") and part.endswith("+}"):
                    if index == len(resource.parts) - 1:
                        node.greedy = (part[1:-2], resource)
                    break
                if part.startswith("{") and part.endswith("}"):
                    if node.param is None:
                        node.param = (part[1:-1], _Node())
                    node = node.param[1]
                else:
                    node = node.literal.setdefault(part, _Node())
            else:
                node.resource = resource

    def match(self, path: str, method: str | None = None) -> RouteMatch | None:
        trimmed = path.strip("/")
        parts = trimmed.split("/") if trimmed else []
        return self._walk(self.root, parts, 0, {}, method)

    def _walk(
        self, node: _Node, parts: list[str], index: int, params: dict[str, str], verb: str | None
    ) -> RouteMatch | None:
        if index == len(parts):
            if node.resource is not None and _serves(node.resource, verb):
                return RouteMatch(node.resource, dict(params))
            return None
        part = parts[index]
        child = node.literal.get(part)
        if child is not None:
            found = self._walk(child, parts, index + 1, params, verb)
            if found:
                return found
        if node.param is not None and part:
            name, child = node.param
            params[name] = part
            found = self._walk(child, parts, index + 1, params, verb)
            if found:
                return found
            del params[name]
        if node.greedy is not None:
            name, resource = node.greedy
            rest = "/".join(parts[index:])
            if rest and _serves(resource, verb):
                return RouteMatch(resource, {**params, name: rest})
        return None


# --- helpers ---------------------------------------------------------------------------


def _json_error(
    status: int, message: str, request_id: str, error_type: str | None, detail: str = ""
) -> GatewayResponse:
    body = json.dumps({"message": message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return GatewayResponse(status, headers, body, request_id, detail)


def missing_token(request_id: str) -> GatewayResponse:
    return _json_error(
        403, "Missing Authentication Token", request_id, "MissingAuthenticationTokenException"
    )


def internal_error(request_id: str, detail: str, status: int = 500) -> GatewayResponse:
    return _json_error(
        status, "Internal server error", request_id, "InternalServerErrorException", detail
    )


def _internal(detail: str, *, status: int | None = None, response_type: str = "DEFAULT_5XX") -> GatewayError:
    return GatewayError(response_type, "Internal server error", status=status, detail=detail)


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _select_template(templates: Mapping[str, str], content_type: str | None) -> str | None:
    """Template key for a media type; case-insensitive, as AWS."""
    if not templates or content_type is None:
        return None
    for key in templates:
        if key.lower() == content_type:
            return key
    return None


def _response_template_key(templates: Mapping[str, str], accept: str | None) -> str | None:
    """The response template for a request's Accept: its media type, else application/json,
    else the first one (AWS's documented order; the first is what get_integration lists)."""
    return (
        _select_template(templates, _media_type(accept))
        or _select_template(templates, DEFAULT_CONTENT_TYPE)
        or next(iter(templates), None)
    )


@dataclass
class _IntegrationResult:
    body: str
    headers: dict[str, str]
    selector: str | None  # matched against selectionPattern; None = success (default)
    error: bool = False
    raw: bytes | None = None  # the backend's bytes when no response template applies


_request_time_cache: tuple[int, str] = (-1, "")


def _request_time(second: int) -> str:
    """$context.requestTime (``02/Jan/2024:10:00:00 +0000``), formatted once per second."""
    global _request_time_cache
    cached, text = _request_time_cache
    if cached != second:
        text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        _request_time_cache = (second, text)
    return text


def _context_path(request: GatewayRequest, stage: str, raw: str) -> str:
    """``$context.path``: the path the client asked for. Through the invoke URL it starts
    with the stage (AWS's example: ``/{stage}/root/child``); through a custom domain name it
    is the request's own path, base path included, and so is an AWS_PROXY event's ``path``
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html;
    why serverless-http has a ``basePath`` option)."""
    if request.base_path is None:
        return f"/{stage}{raw if raw else '/'}"
    prefix = f"/{request.base_path}" if request.base_path else ""
    return f"{prefix}{raw}" or "/"


def _domain_prefix(request: GatewayRequest, api: DeployedApi) -> str:
    """``$context.domainPrefix``: the first label of the host the client called (the API id
    on an execute-api host, the custom domain's first label otherwise)."""
    if request.base_path is None:
        return api.rest_api_id
    return (request.header("Host") or "").split(":", 1)[0].split(".", 1)[0]


def _lambda_payload_error(payload: str) -> str | None:
    """Why Lambda would refuse this payload (``Could not parse request body into json``),
    or None when it is a JSON document. An empty payload is sent as ``{}``."""
    if not payload.strip():
        return None
    try:
        vtl.loads_json(payload)
    except vtl.BodyParseError as exc:
        return str(exc)
    except vtl.NotJson as exc:
        return str(exc)
    return None


@dataclass
class Invocation:
    """One request on its way through a stage: what every step reads, built once.

    ``params`` is the method request as templates and mappings see it (``path``,
    ``querystring`` with the last value of a repeated key, ``header`` without the headers
    API Gateway drops); ``multi`` holds every value of repeated query keys and headers;
    ``common`` the values ``$context`` and the proxy ``requestContext`` are built from.
    """

    api: DeployedApi
    request: GatewayRequest
    request_id: str
    path: str
    match: RouteMatch
    method: Method
    params: dict[str, dict[str, str]]
    multi: dict[str, dict[str, list[str]]]
    common: dict[str, Any]
    trace: str
    extended_id: str
    _context: vtl.RootContext | None = field(default=None, repr=False)

    @property
    def context(self) -> vtl.RootContext:
        """``$context`` of this request, shared by its request and response templates."""
        if self._context is None:
            self._context = vtl.build_context(**self.common)
        return self._context

    def source_value(self, source: str) -> str | None:
        """A parameter mapping source: ``'static'``, ``method.request.<where>.<name>``,
        ``stageVariables.<name>`` or ``context.<name>`` (None when it has no value).
        https://docs.aws.amazon.com/apigateway/latest/developerguide/request-response-data-mappings.html"""
        source = source.strip()
        if len(source) >= 2 and source[0] == "'" and source[-1] == "'":
            return source[1:-1]
        found = _PARAMETER.fullmatch(source)
        if found:
            kind, name = found.groups()
            if kind.startswith("multivalue"):
                values = self.multi.get(kind[len("multivalue"):], {})
                match = _lookup(values, name, kind == "multivalueheader")
                return ",".join(match) if match else None
            return _lookup(self.params.get(kind, {}), name, kind == "header")
        if source.startswith("stageVariables."):
            return self.api.stage_variables.get(source[len("stageVariables."):])
        if source.startswith("context."):
            value: Any = self.context
            for part in source[len("context."):].split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            return None if value is None or isinstance(value, Mapping) else str(value)
        return None

    def mapped(self, parameters: Mapping[str, str], prefix: str) -> dict[str, dict[str, str]]:
        """``integration.request.{header,querystring,path}.<name>`` mappings with a value."""
        out: dict[str, dict[str, str]] = {"header": {}, "querystring": {}, "path": {}}
        for target, source in parameters.items():
            if not target.startswith(prefix):
                continue
            kind, _, name = target[len(prefix):].partition(".")
            if kind in out and name:
                value = self.source_value(source)
                if value is not None:
                    out[kind][name] = value
        return out


def _lookup(values: Mapping[str, Any], name: str, case_insensitive: bool) -> Any:
    if not case_insensitive:
        return values.get(name)
    lowered = name.lower()
    return next((v for k, v in values.items() if k.lower() == lowered), None)


def _default_http_caller() -> HttpCaller:
    """An HTTP client for HTTP/HTTP_PROXY backends: no retries, no redirects followed (API
    Gateway returns a backend's 3xx as it is), a timeout per call."""
    import urllib3

    pool = urllib3.PoolManager(maxsize=8, retries=False)

    def call(method, url, headers, body, timeout):
        response = pool.request(
            method,
            url,
            body=body or None,
            headers=urllib3.HTTPHeaderDict(headers),
            timeout=urllib3.Timeout(total=timeout),
            redirect=False,
            preload_content=True,
            decode_content=False,
        )
        return response.status, list(response.headers.items()), response.data

    return call


# --- the pipeline ----------------------------------------------------------------------


class Gateway:
    """Answers requests for any stage the registry can load."""

    def __init__(
        self,
        registry: Registry,
        invoker: Invoker,
        *,
        aws_endpoint: str | None = None,
        log: Callable[[str], None] | None = None,
        service_caller: Callable[..., tuple[int, dict[str, str], bytes]] | None = None,
        http_caller: HttpCaller | None = None,
    ) -> None:
        self.registry = registry
        self.invoker = invoker
        self.aws_endpoint = aws_endpoint
        self.log = log or (lambda _msg: None)
        self.service_caller = service_caller
        self._http_caller = http_caller
        self._routers: dict[tuple[str, str], tuple[DeployedApi, Router]] = {}

    @property
    def http_caller(self) -> HttpCaller:
        if self._http_caller is None:
            self._http_caller = _default_http_caller()
        return self._http_caller

    def _router(self, api: DeployedApi) -> Router:
        key = (api.rest_api_id, api.stage_name)
        cached = self._routers.get(key)
        if cached is not None and cached[0] is api:
            return cached[1]
        router = Router(api.resources)
        self._routers[key] = (api, router)
        return router

    # entry point
    def handle(self, rest_api_id: str, stage: str, request: GatewayRequest) -> GatewayResponse:
        request_id = events.new_request_id()
        state: dict[str, Any] = {}
        try:
            return self._handle(rest_api_id, stage, request, request_id, state)
        except GatewayError as error:
            return self._error_response(error, request, request_id, state)
        except Exception as exc:  # never let a request kill the server
            self.log(
                f"gateway: internal error for request {request_id}: {exc!r}\n"
                + traceback.format_exc()
            )
            return internal_error(request_id, f"gateway bug: {exc!r}")

    def _handle(
        self,
        rest_api_id: str,
        stage: str,
        request: GatewayRequest,
        request_id: str,
        state: dict[str, Any],
    ) -> GatewayResponse:
        if len(request.body) > MAX_BODY_BYTES:
            raise GatewayError("REQUEST_TOO_LARGE", "Request Too Long")
        if not rest_api_id or not stage:  # a custom domain name without a matching base path
            return _json_error(
                403, "Forbidden", request_id, "ForbiddenException", detail="no base path mapping matches"
            )
        try:
            api = self.registry.get_api(rest_api_id, stage)
        except SandboxError as exc:
            return _json_error(
                403, "Forbidden", request_id, "ForbiddenException", detail=exc.message
            )
        state["api"] = api
        # '/stage//a' is resource path '/a' while $context.path keeps '/stage//a' (case 5).
        raw = request.raw_path
        path = "/" + raw.lstrip("/")
        match = self._router(api).match(path, request.method)
        if match is None:
            raise self._no_route(api, request.method, path)
        method = match.resource.methods.get(request.method) or match.resource.methods["ANY"]
        if method.integration is None:
            raise self._no_route(api, request.method, path)

        now = time.time()
        extended_id = events.new_extended_id()
        params, multi = self._request_params(request, match)
        state["params"] = params
        inv = Invocation(
            api=api,
            request=request,
            request_id=request_id,
            path=path,
            match=match,
            method=method,
            params=params,
            multi=multi,
            common={
                "resource_id": match.resource.id,
                "resource_path": match.resource.path,
                "http_method": request.method,
                "extended_request_id": extended_id,
                "request_time": _request_time(int(now)),
                "path": _context_path(request, stage, raw),
                "account_id": api.account_id,
                "protocol": request.protocol,
                "stage": stage,
                "domain_prefix": _domain_prefix(request, api),
                "request_time_epoch": int(now * 1000),
                "request_id": request_id,
                "identity": {
                    "sourceIp": request.source_ip,
                    "userAgent": request.header("User-Agent"),
                },
                "domain_name": request.header("Host") or "",
                "deployment_id": api.deployment_id,
                "api_id": api.rest_api_id,
            },
            trace=events.trace_id(request.header("X-Amzn-Trace-Id"), now),
            extended_id=extended_id,
        )
        state["inv"] = inv
        if method.validate_request_parameters:
            self._validate(method, params)

        integration = method.integration
        kind = integration.type
        if kind == "AWS_PROXY":
            response = self._aws_proxy(inv, integration)
        elif kind == "HTTP_PROXY":
            response = self._http_proxy(inv, integration)
        elif kind in ("AWS", "MOCK", "HTTP"):
            response = self._mapped(inv, integration)
        else:
            raise _internal(f"integration type {kind} is not supported by the local gateway")
        response.headers.append(("x-amz-apigw-id", extended_id))
        # MOCK and HTTP_PROXY answers carry no trace header (case 24 for MOCK; HTTP_PROXY is
        # LocalStack's rule), nor do error answers (case 2).
        if kind not in ("MOCK", "HTTP_PROXY"):
            response.headers.append(("X-Amzn-Trace-Id", inv.trace))
        return response

    def _no_route(self, api: DeployedApi, verb: str, path: str) -> GatewayError:
        """AWS's answer to a route the stage does not have (403 Missing Authentication Token,
        case 15), logged with the routes it does have: the usual cause is a typo in the URL."""
        self.log(
            f"gateway: 403 for {verb} {path}: stage {api.stage_name!r} of REST API {api.rest_api_id} has no "
            f"such route; its routes: {describe_routes(api)}"
        )
        return GatewayError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

    def _error_response(
        self, error: GatewayError, request: GatewayRequest, request_id: str, state: dict[str, Any]
    ) -> GatewayResponse:
        """A gateway response: AWS's default, or as the API customized it."""
        api: DeployedApi | None = state.get("api")
        custom = api.gateway_responses if api is not None else {}
        status = gr.status_for(error, custom)
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        body = json.dumps({"message": error.message}).encode()
        entry = gr.customization(error, custom)
        if entry is not None and api is not None:
            inv: Invocation | None = state.get("inv")
            context_values = dict(inv.context) if inv is not None else {}
            lookup = gr.variable_lookup(
                error, context_values, api.stage_variables, state.get("params") or {}
            )
            key = _response_template_key(entry.response_templates, request.header("Accept"))
            if key is not None:
                headers[0] = ("Content-Type", key)
                body = gr.render_template(entry.response_templates[key], lookup).encode()
            for name, value in gr.header_values(entry.response_parameters, lookup):
                if name.lower() == "content-type":
                    headers[0] = ("Content-Type", value)
                else:
                    headers.append((name, value))
        headers.append(("x-amzn-RequestId", request_id))
        if error.error_type:
            headers.append(("x-amzn-ErrorType", error.error_type))
        headers.extend(error.extra_headers)
        inv = state.get("inv")
        if inv is not None:
            headers.append(("x-amz-apigw-id", inv.extended_id))
        return GatewayResponse(status, headers, body, request_id, error.detail or error.message)

    # parameters
    @staticmethod
    def _request_params(
        request: GatewayRequest, match: RouteMatch
    ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, list[str]]]]:
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            if name.lower() not in events.DROPPED_REQUEST_HEADERS:
                key = events.canonical_header(name)
                headers[key] = value
                multi_headers.setdefault(key, []).append(value)
        query, multi_query = events.query_maps(events.parse_query(request.query_string))
        params = {"path": dict(match.path_parameters), "querystring": query or {}, "header": headers}
        return params, {"querystring": multi_query or {}, "header": multi_headers}

    @staticmethod
    def _validate(method: Method, params: Mapping[str, Mapping[str, str]]) -> None:
        """Required method request parameters, checked by a request validator.

        The names are listed in the order of their ``method.request.*`` keys, which AWS keeps
        sorted (its get_method lists them so): headers, then path, then query string (case 13
        and LocalStack's AWS snapshot ``test_api_gateway_request_validator``)."""
        missing = []
        for key in sorted(method.request_parameters):
            found = _PARAMETER.fullmatch(key)
            if not method.request_parameters[key] or not found:
                continue
            kind, name = found.groups()
            kind = kind.replace("multivalue", "")
            values = params.get(kind, {})
            if _lookup(values, name, kind == "header") is None:
                missing.append(name)
        if missing:
            raise GatewayError(
                "BAD_REQUEST_PARAMETERS",
                f"Missing required request parameters: [{', '.join(missing)}]",
            )

    @staticmethod
    def _check_mapped_headers(integration: Integration, forbidden: frozenset[str]) -> None:
        for key in integration.request_parameters:
            lowered = key.lower()
            if lowered.startswith("integration.request.header.") and lowered[27:] in forbidden:
                raise _internal(
                    f"integration request parameter {key} cannot be sent to this "
                    "integration (API Gateway answers 500)"
                )

    # AWS_PROXY
    def _aws_proxy(self, inv: Invocation, integration: Integration) -> GatewayResponse:
        # Only POST invokes Lambda: another integration method fails every call with 500
        # (case 9; AWS's INTEGRATION_FAILURE type, whose documented default would be 504).
        if (integration.http_method or "POST").upper() != "POST":
            raise _internal(
                "an AWS_PROXY integration must use the POST integration method",
                status=500,
                response_type="INTEGRATION_FAILURE",
            )
        self._check_mapped_headers(integration, FORBIDDEN_MAPPED_HEADERS_LAMBDA)
        ref = self._function_ref(inv.api, integration)
        spec = self._spec(ref)
        request_context = events.proxy_request_context(**inv.common)
        event = events.build_proxy_event(
            request=inv.request,
            resource_path=inv.match.resource.path,
            path=inv.path if inv.request.base_path is None else inv.common["path"],
            path_parameters=inv.match.path_parameters,
            stage_variables=inv.api.stage_variables,
            request_context=request_context,
            trace=inv.trace,
            binary_media_types=inv.api.binary_media_types,
        )
        result, integration_timeout = self._invoke(spec, event_bytes(event), inv.request_id, integration)
        if result.timed_out and integration_timeout:
            raise GatewayError(
                "INTEGRATION_TIMEOUT", "Endpoint request timed out", detail="integration timeout"
            )
        if result.timed_out or result.crashed or result.error is not None:
            why = (
                "timed out"
                if result.timed_out
                else ("crashed" if result.crashed else f"raised {(result.error or {}).get('errorType')}")
            )
            raise _internal(f"function {why}", status=502)
        decode = events.is_binary(inv.request.header("Accept"), inv.api.binary_media_types)
        try:
            status, headers, body = events.parse_proxy_response(result.payload, decode_base64=decode)
        except events.MalformedProxyResponse as exc:
            self.log(f"gateway: malformed Lambda proxy response ({exc}) for request {inv.request_id}")
            raise _internal(f"malformed Lambda proxy response: {exc}", status=502) from exc
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.insert(0, ("Content-Type", DEFAULT_CONTENT_TYPE))
        headers = [
            (n, v)
            for n, v in headers
            if n.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        headers.append(("x-amzn-RequestId", inv.request_id))
        return GatewayResponse(status, headers, body, inv.request_id)

    # HTTP_PROXY
    def _http_proxy(self, inv: Invocation, integration: Integration) -> GatewayResponse:
        """The client's request passed on (method, headers, query, body) and the backend's
        response passed back; parameter mappings add headers and query values and fill
        ``{name}`` in the URI. https://docs.aws.amazon.com/apigateway/latest/developerguide/
        setup-http-integrations.html"""
        self._check_mapped_headers(integration, FORBIDDEN_MAPPED_HEADERS_HTTP)
        mapped = inv.mapped(integration.request_parameters, "integration.request.")
        headers = [
            (name, value)
            for name, value in inv.request.headers
            if name.lower() not in events.DROPPED_REQUEST_HEADERS
            and name.lower() not in ("host", "content-encoding", "via")
        ]
        headers.extend(mapped["header"].items())
        query = inv.request.query_string
        if mapped["querystring"]:
            extra = urllib.parse.urlencode(list(mapped["querystring"].items()))
            query = f"{query}&{extra}" if query else extra
        status, backend_headers, body = self._call_http(inv, integration, mapped, headers, query, inv.request.body)
        out = [
            (name, value)
            for name, value in backend_headers
            if name.lower() not in HTTP_PROXY_DROPPED_RESPONSE_HEADERS
        ]
        out.append(("x-amzn-RequestId", inv.request_id))
        return GatewayResponse(status, out, body, inv.request_id)

    def _call_http(
        self,
        inv: Invocation,
        integration: Integration,
        mapped: Mapping[str, Mapping[str, str]],
        headers: list[tuple[str, str]],
        query: str,
        body: bytes,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        uri = substitute_stage_variables(integration.uri or "", inv.api.stage_variables)
        path_values = {**inv.match.path_parameters, **mapped["path"]}
        uri = re.sub(
            r"\{([^{}]+?)\+?\}",
            lambda m: path_values.get(m.group(1).rstrip("+"), m.group(0)),
            uri,
        )
        if query:
            uri = f"{uri}{'&' if '?' in uri else '?'}{query}"
        verb = (integration.http_method or "ANY").upper()
        if verb == "ANY":
            verb = inv.request.method
        defaults = {
            "accept": ("Accept", "application/json"),
            "user-agent": ("User-Agent", f"AmazonAPIGateway_{inv.api.rest_api_id}"),
        }
        present = {name.lower() for name, _ in headers}
        all_headers = [pair for key, pair in defaults.items() if key not in present]
        all_headers.extend(headers)
        all_headers.append(("X-Amzn-Trace-Id", inv.trace))
        all_headers.append(("X-Amzn-Apigateway-Api-Id", inv.api.rest_api_id))
        if verb in ("GET", "HEAD", "OPTIONS"):
            body = b""
        timeout = max(integration.timeout_ms, 50) / 1000
        try:
            return self.http_caller(verb, uri, all_headers, body, timeout)
        except Exception as exc:
            name = type(exc).__name__
            if "Timeout" in name or isinstance(exc, TimeoutError):
                raise GatewayError(
                    "INTEGRATION_TIMEOUT", "Endpoint request timed out", detail=f"{uri}: {exc}"
                ) from exc
            # An unreachable or invalid endpoint: 500 (LocalStack's answer; not recorded).
            self.log(f"gateway: HTTP integration {verb} {uri} failed for request {inv.request_id}: {exc}")
            raise _internal(
                f"HTTP integration endpoint failed: {exc}", response_type="API_CONFIGURATION_ERROR"
            ) from exc

    # AWS (non-proxy), HTTP and MOCK
    def _mapped(self, inv: Invocation, integration: Integration) -> GatewayResponse:
        is_lambda = integration.type == "AWS" and self._is_lambda(integration)
        if is_lambda:
            self._check_mapped_headers(integration, FORBIDDEN_MAPPED_HEADERS_LAMBDA)
        elif integration.type == "HTTP":
            self._check_mapped_headers(integration, FORBIDDEN_MAPPED_HEADERS_HTTP)
        request = inv.request
        body_text = request.body.decode("utf-8", errors="replace")
        header_lookup = {k.lower(): v for k, v in inv.params["header"].items()}
        input_var = vtl.InputVariable(body_text, inv.params, header_lookup=header_lookup)

        content_type = _media_type(request.header("Content-Type")) or DEFAULT_CONTENT_TYPE
        templates = integration.request_templates
        key = _select_template(templates, content_type)
        if key is not None and templates[key]:
            payload = self._render(templates[key], input_var, inv, "request")
        elif key is not None:
            payload = ""
        else:
            behavior = integration.passthrough_behavior
            if behavior == "NEVER" or (behavior == "WHEN_NO_TEMPLATES" and templates):
                raise GatewayError("UNSUPPORTED_MEDIA_TYPE", "Unsupported Media Type")
            payload = body_text

        if integration.type == "MOCK":
            result = self._mock(payload)
        elif is_lambda:
            result = self._lambda(inv, integration, payload)
        elif integration.type == "HTTP":
            result = self._http(inv, integration, payload, key)
        else:
            result = self._service(inv, integration, payload)
        return self._integration_response(inv, integration, result)

    def _render(self, template: str, input_var: vtl.InputVariable, inv: Invocation, which: str) -> str:
        try:
            return vtl.render(
                template,
                input_var=input_var,
                context=inv.context,
                stage_variables=inv.api.stage_variables,
            )
        except vtl.BodyParseError as exc:
            raise GatewayError(
                "BAD_REQUEST_BODY",
                f"Could not parse request body into json: {exc}",
                error_type="BadRequestException",
            ) from exc
        except vtl.TemplateError as exc:
            self.log(f"gateway: {which} template failed for request {inv.request_id}: {exc}")
            raise _internal(f"{which} template error: {exc}") from exc

    @staticmethod
    def _is_lambda(integration: Integration) -> bool:
        return bool(integration.uri) and ":lambda:path/" in integration.uri

    @staticmethod
    def _mock(payload: str) -> _IntegrationResult:
        """MOCK: the status is the ``statusCode`` integer of the rendered request template,
        which need not be strict JSON (``{statusCode: 200}`` works, case 21). Without one
        AWS fails the call with 500 and logs "Unable to parse statusCode. It should be an
        integer that is defined in the request template." (the log text is AWS's; the 500
        is LocalStack's AWS-validated behaviour, not in a recording here)."""
        status: Any = None
        try:
            parsed = vtl.loads_json(payload)
            if isinstance(parsed, dict):
                status = parsed.get("statusCode")
        except (vtl.NotJson, vtl.BodyParseError):
            found = re.search(r"""(?:^|[{,])\s*["']?statusCode["']?\s*:\s*(-?\d+)\s*(?:[,}]|$)""", payload)
            status = int(found.group(1)) if found else None
        if not isinstance(status, int) or isinstance(status, bool):
            raise _internal("MOCK: unable to parse statusCode from the request template")
        return _IntegrationResult(body="", headers={}, selector=str(status))

    def _function_ref(self, api: DeployedApi, integration: Integration) -> FunctionRef:
        ref = parse_lambda_uri(integration.uri or "", api.stage_variables)
        if ref is None:
            raise _internal(f"integration URI {integration.uri!r} is not a Lambda function")
        return ref

    def _spec(self, ref: FunctionRef) -> Any:
        try:
            return self.registry.get_function(ref)
        except PackageMissing as exc:
            self.log(f"gateway: {exc}")
            explanation = str(exc).replace("\n", " ")
            raise GatewayError(
                "DEFAULT_5XX",
                "Internal server error",
                status=502,
                detail=explanation,
                extra_headers=(("x-orch-error", explanation),),
            ) from exc
        except SandboxError as exc:
            self.log(f"gateway: {exc}")
            raise _internal(exc.message) from exc

    def _invoke(self, spec: Any, event: bytes, request_id: str, integration: Integration):
        """Invoke with the shorter of the function's and the integration's timeout."""
        integration_seconds = max(1, math.ceil(integration.timeout_ms / 1000))
        integration_timeout = integration_seconds < spec.timeout
        if integration_timeout:
            spec = replace(spec, timeout=integration_seconds)
        return self.invoker.invoke(spec, event, request_id), integration_timeout

    def _lambda(self, inv: Invocation, integration: Integration, payload: str) -> _IntegrationResult:
        ref = self._function_ref(inv.api, integration)
        # Lambda refuses a payload that is not JSON; the function is never called and the
        # client gets Lambda's message (InvalidRequestContentException, "Could not parse
        # request body into json: Could not parse payload into json: ..."). Reported from AWS
        # by serverless/serverless#2270 and #2807, Zappa#352, podaac/hydrocron#64; the 400
        # status and the exact parser text after the prefix are not in a recording.
        problem = _lambda_payload_error(payload)
        if problem is not None:
            raise GatewayError(
                "DEFAULT_4XX",
                f"Could not parse request body into json: Could not parse payload into json: {problem}",
                status=400,
                error_type="BadRequestException",
            )
        spec = self._spec(ref)
        event = payload.encode() if payload.strip() else b"{}"
        result, integration_timeout = self._invoke(spec, event, inv.request_id, integration)
        if result.timed_out and integration_timeout:
            raise GatewayError(
                "INTEGRATION_TIMEOUT", "Endpoint request timed out", detail="integration timeout"
            )
        if result.timed_out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            error = {
                "errorType": "Sandbox.Timedout",
                **(result.error or {}),
                "errorMessage": f"{stamp} {inv.request_id} Task timed out after "
                f"{spec.timeout:.2f} seconds",
            }
        elif result.crashed:
            error = result.error or {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited unexpectedly",
            }
        else:
            error = result.error
        if error is not None:
            return _IntegrationResult(
                body=json.dumps(error),
                headers={},
                selector=str(error.get("errorMessage", "")),
                error=True,
            )
        body = (result.payload or b"null").decode("utf-8", errors="replace")
        return _IntegrationResult(body=body, headers={}, selector=None)

    def _http(
        self, inv: Invocation, integration: Integration, payload: str, template_key: str | None
    ) -> _IntegrationResult:
        """HTTP (non-proxy): the rendered request (or the passthrough body) goes to the
        backend with only the mapped headers and query values; the backend's status picks the
        integration response. https://docs.aws.amazon.com/apigateway/latest/developerguide/
        setup-http-integrations.html"""
        mapped = inv.mapped(integration.request_parameters, "integration.request.")
        headers = list(mapped["header"].items())
        if inv.request.method not in ("GET", "HEAD", "OPTIONS") and not any(
            name.lower() == "content-type" for name, _ in headers
        ):
            content_type = template_key or inv.request.header("Content-Type")
            if content_type:
                headers.append(("Content-Type", content_type))
        query = urllib.parse.urlencode(list(mapped["querystring"].items()))
        status, backend_headers, data = self._call_http(
            inv, integration, mapped, headers, query, payload.encode()
        )
        return _IntegrationResult(
            body=data.decode("utf-8", errors="replace"),
            headers=dict(backend_headers),
            selector=str(status),
            raw=data,
        )

    def _service(self, inv: Invocation, integration: Integration, payload: str) -> _IntegrationResult:
        """An AWS service integration (SQS, SNS, ...), sent signed to the emulator."""
        uri = substitute_stage_variables(integration.uri or "", inv.api.stage_variables)
        found = SERVICE_URI.match(uri)
        if found is None or self.service_caller is None:
            raise _internal(f"AWS integration URI {uri!r} is not supported by the local gateway")
        mapped = inv.mapped(integration.request_parameters, "integration.request.")
        try:
            status, resp_headers, body = self.service_caller(
                service=found.group("service"),
                region=found.group("region"),
                kind=found.group("kind"),
                target=found.group("rest"),
                method=integration.http_method or "POST",
                headers=mapped["header"],
                query=mapped["querystring"],
                body=payload.encode(),
                timeout=integration.timeout_ms / 1000,
            )
        except TimeoutError as exc:
            raise GatewayError("INTEGRATION_TIMEOUT", "Endpoint request timed out") from exc
        except Exception as exc:
            self.log(f"gateway: AWS service call failed for request {inv.request_id}: {exc}")
            raise _internal(f"AWS service call failed: {exc}") from exc
        return _IntegrationResult(
            body=body.decode("utf-8", errors="replace"), headers=resp_headers, selector=str(status)
        )

    @staticmethod
    def _select_response(
        integration: Integration, result: _IntegrationResult
    ) -> IntegrationResponse | None:
        """The integration response whose selectionPattern matches the whole selector (a
        Lambda error message, an HTTP or service status), else the default one. A Lambda
        result that is not an error always takes the default (case 8)."""
        if result.selector is not None:
            for response in integration.responses:
                pattern = response.selection_pattern
                if pattern:
                    try:
                        if re.fullmatch(pattern, result.selector, re.DOTALL):
                            return response
                    except re.error:
                        continue
        return integration.default_response()

    def _integration_response(
        self, inv: Invocation, integration: Integration, result: _IntegrationResult
    ) -> GatewayResponse:
        selected = self._select_response(integration, result)
        if selected is None:
            raise _internal(
                "no integration response matches and there is no default one",
                response_type="API_CONFIGURATION_ERROR",
            )
        try:
            status = int(selected.status_code)
        except ValueError as exc:
            raise _internal(
                f"integration response status {selected.status_code!r} is not a number"
            ) from exc
        templates = selected.response_templates
        key = _response_template_key(templates, inv.request.header("Accept"))
        content_type = key or DEFAULT_CONTENT_TYPE
        if key is not None and templates[key]:
            input_var = vtl.InputVariable(result.body, inv.params)
            body = self._render(templates[key], input_var, inv, "response").encode()
        elif result.raw is not None:  # no template (or an empty one): the body as it came
            body = result.raw
        else:
            body = result.body.encode()
        headers: list[tuple[str, str]] = [("Content-Type", content_type)]
        mapped = self._response_parameters(selected, result, inv)
        override_status, override_headers = vtl.response_override(inv.context)
        mapped.update(override_headers)
        for name, value in mapped.items():
            lowered = name.lower()
            if lowered in DROPPED_RESPONSE_HEADERS:
                continue
            if lowered in REMAPPED_RESPONSE_HEADERS:
                headers.append((f"x-amzn-Remapped-{name}", value))
            elif lowered == "content-type":
                headers[0] = ("Content-Type", value)
            else:
                headers.append((name, value))
        if override_status is not None and 100 <= override_status <= 599:
            status = override_status
        headers.append(("x-amzn-RequestId", inv.request_id))
        return GatewayResponse(
            status, headers, body, inv.request_id, "function error" if result.error else ""
        )

    @staticmethod
    def _response_parameters(
        selected: IntegrationResponse, result: _IntegrationResult, inv: Invocation
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        parsed: Any = None
        for target, source in selected.response_parameters.items():
            if not target.startswith("method.response.header."):
                continue
            name = target[len("method.response.header.") :]
            source = source.strip()
            value: Any = None
            if source.startswith("integration.response.header."):
                wanted = source[len("integration.response.header.") :].lower()
                value = next((v for k, v in result.headers.items() if k.lower() == wanted), None)
            elif source == "integration.response.body":
                value = result.body
            elif source.startswith("integration.response.body."):
                if parsed is None:
                    try:
                        parsed = vtl.loads_json(result.body) if result.body else {}
                    except (vtl.NotJson, vtl.BodyParseError):
                        parsed = {}
                try:
                    value = vtl.jsonpath_get(
                        parsed, "$." + source[len("integration.response.body.") :]
                    )
                except vtl.TemplateError:
                    value = None
                if value is not None and not isinstance(value, str):
                    value = json.dumps(value)
            else:
                value = inv.source_value(source)
            if value is not None:
                out[name] = value
        return out


def event_bytes(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def http_date(now: float | None = None) -> str:
    return formatdate(now, usegmt=True)
