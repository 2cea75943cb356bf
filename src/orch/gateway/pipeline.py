"""One request through a deployed stage, the way API Gateway (REST, v1) processes it.

This module owns routing, method-request validation, request/response mapping (templates,
passthrough behaviour, integration-response selection, response parameters and overrides),
the integrations (AWS_PROXY and AWS Lambda through the worker pool, MOCK, AWS service calls
to the emulator) and AWS's error answers. It must not parse HTTP or talk to boto3 directly:
the server hands it a ``GatewayRequest``, the registry the model, the pool the handlers.
Every failure inside becomes an AWS-shaped response; ``handle`` never raises.
"""

from __future__ import annotations

import json
import math
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any, Protocol

from orch.errors import SandboxError
from orch.gateway import events, vtl
from orch.gateway.events import GatewayRequest, GatewayResponse
from orch.gateway.model import (
    SERVICE_URI,
    DeployedApi,
    FunctionRef,
    Integration,
    IntegrationResponse,
    Method,
    PackageMissing,
    Resource,
    parse_lambda_uri,
    substitute_stage_variables,
)

MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/json"

# Integration request headers a Lambda (AWS) integration refuses to send: mapping any of
# them makes every call fail with 500 (case 2).
LAMBDA_FORBIDDEN_REQUEST_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "authorization",
        "connection",
        "expect",
        "proxy-authenticate",
        "te",
    }
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


class Registry(Protocol):
    def get_api(self, rest_api_id: str, stage_name: str) -> DeployedApi: ...

    def get_function(self, ref: FunctionRef) -> Any: ...


class Invoker(Protocol):
    def invoke(self, spec: Any, event: bytes, request_id: str) -> Any: ...


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


class Router:
    """Resource tree match: literal part > {param} > {proxy+} (greedy, one part or more)."""

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

    def match(self, path: str) -> RouteMatch | None:
        trimmed = path.strip("/")
        parts = trimmed.split("/") if trimmed else []
        return self._walk(self.root, parts, 0, {}, trimmed)

    def _walk(
        self, node: _Node, parts: list[str], index: int, params: dict[str, str], trimmed: str
    ) -> RouteMatch | None:
        if index == len(parts):
            if node.resource is not None:
                return RouteMatch(node.resource, dict(params))
            return None
        part = parts[index]
        child = node.literal.get(part)
        if child is not None:
            found = self._walk(child, parts, index + 1, params, trimmed)
            if found:
                return found
        if node.param is not None and part:
            name, child = node.param
            params[name] = part
            found = self._walk(child, parts, index + 1, params, trimmed)
            if found:
                return found
            del params[name]
        if node.greedy is not None:
            name, resource = node.greedy
            rest = "/".join(parts[index:])
            if rest:
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


def _static_or_request_value(
    expression: str, request_params: Mapping[str, Mapping[str, str]]
) -> str | None:
    expression = expression.strip()
    if len(expression) >= 2 and expression[0] == "'" and expression[-1] == "'":
        return expression[1:-1]
    match = re.fullmatch(r"method\.request\.(path|querystring|header)\.(.+)", expression)
    if match:
        kind, name = match.groups()
        values = request_params.get(kind, {})
        if kind == "header":
            lowered = name.lower()
            for key, value in values.items():
                if key.lower() == lowered:
                    return value
            return None
        return values.get(name)
    return None


@dataclass
class _IntegrationResult:
    body: str
    headers: dict[str, str]
    selector: str | None  # matched against selectionPattern; None = success (default)
    error: bool = False


class _Reject(Exception):
    """Stop processing and answer with this response."""

    def __init__(self, response: GatewayResponse) -> None:
        super().__init__(response.status)
        self.response = response


_request_time_cache: tuple[int, str] = (-1, "")


def _request_time(second: int) -> str:
    """$context.requestTime (``02/Jan/2024:10:00:00 +0000``), formatted once per second."""
    global _request_time_cache
    cached, text = _request_time_cache
    if cached != second:
        text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        _request_time_cache = (second, text)
    return text


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
    ) -> None:
        self.registry = registry
        self.invoker = invoker
        self.aws_endpoint = aws_endpoint
        self.log = log or (lambda _msg: None)
        self.service_caller = service_caller
        self._routers: dict[tuple[str, str], tuple[DeployedApi, Router]] = {}

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
        try:
            return self._handle(rest_api_id, stage, request, request_id)
        except _Reject as reject:
            return reject.response
        except Exception as exc:  # never let a request kill the server
            self.log(
                f"gateway: internal error for request {request_id}: {exc!r}\n"
                + traceback.format_exc()
            )
            return internal_error(request_id, f"gateway bug: {exc!r}")

    def _handle(
        self, rest_api_id: str, stage: str, request: GatewayRequest, request_id: str
    ) -> GatewayResponse:
        if len(request.body) > MAX_BODY_BYTES:
            return _json_error(413, "Request Too Long", request_id, None)
        try:
            api = self.registry.get_api(rest_api_id, stage)
        except SandboxError as exc:
            return _json_error(
                403, "Forbidden", request_id, "ForbiddenException", detail=exc.message
            )
        # '/stage//a' is resource path '/a' while $context.path keeps '/stage//a' (case 5).
        raw = request.raw_path
        path = "/" + raw.lstrip("/")
        context_path = f"/{stage}{raw if raw else '/'}"
        match = self._router(api).match(path)
        if match is None:
            return missing_token(request_id)
        method = match.resource.methods.get(request.method) or match.resource.methods.get("ANY")
        if method is None or method.integration is None:
            return missing_token(request_id)

        now = time.time()
        extended_id = events.new_extended_id()
        trace = events.trace_id(now)
        identity = {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent")}
        host = request.header("Host") or ""
        common = {
            "resource_id": match.resource.id,
            "resource_path": match.resource.path,
            "http_method": request.method,
            "extended_request_id": extended_id,
            "request_time": _request_time(int(now)),
            "path": context_path,
            "account_id": api.account_id,
            "protocol": request.protocol,
            "stage": stage,
            "domain_prefix": api.rest_api_id,
            "request_time_epoch": int(now * 1000),
            "request_id": request_id,
            "identity": identity,
            "domain_name": host,
            "deployment_id": api.deployment_id,
            "api_id": api.rest_api_id,
        }
        request_params = self._request_params(request, match)
        if method.validate_request_parameters:
            self._validate(method, request_params, request_id)

        integration = method.integration
        if integration.type == "AWS_PROXY":
            response = self._aws_proxy(
                api, request, match, path, common, trace, integration, request_id
            )
        elif integration.type in ("AWS", "MOCK"):
            response = self._mapped(
                api, request, method, integration, request_params, common, request_id
            )
        else:
            response = internal_error(
                request_id,
                f"integration type {integration.type} is not supported by the local gateway",
            )
        response.headers.append(("x-amz-apigw-id", extended_id))
        if not any(name == "x-amzn-ErrorType" for name, _ in response.headers):
            response.headers.append(("X-Amzn-Trace-Id", trace))
        return response

    # parameters
    @staticmethod
    def _request_params(request: GatewayRequest, match: RouteMatch) -> dict[str, dict[str, str]]:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            if name.lower() not in events.TEMPLATE_HIDDEN_HEADERS:
                headers[events.canonical_header(name)] = value
        query, _ = events.query_maps(events.parse_query(request.query_string))
        return {"path": dict(match.path_parameters), "querystring": query or {}, "header": headers}

    @staticmethod
    def _validate(method: Method, params: Mapping[str, Mapping[str, str]], request_id: str):
        missing = []
        for key, required in method.request_parameters.items():
            found = re.fullmatch(r"method\.request\.(path|querystring|header)\.(.+)", key)
            if not required or not found:
                continue
            kind, name = found.groups()
            values = params.get(kind, {})
            present = (
                any(k.lower() == name.lower() for k in values)
                if kind == "header"
                else name in values
            )
            if not present:
                missing.append(name)
        if missing:
            raise _Reject(
                _json_error(
                    400,
                    f"Missing required request parameters: [{', '.join(missing)}]",
                    request_id,
                    "BadRequestException",
                )
            )

    # AWS_PROXY
    def _aws_proxy(self, api, request, match, path, common, trace, integration, request_id):
        ref = self._function_ref(api, integration, request_id)
        spec = self._spec(ref, request_id)
        request_context = events.proxy_request_context(**common)
        event = events.build_proxy_event(
            request=request,
            resource_path=match.resource.path,
            path=path,
            path_parameters=match.path_parameters,
            stage_variables=api.stage_variables,
            request_context=request_context,
            trace=trace,
            binary_media_types=api.binary_media_types,
        )
        result, integration_timeout = self._invoke(
            spec, event_bytes(event), request_id, integration
        )
        if result.timed_out and integration_timeout:
            return _json_error(
                504, "Endpoint request timed out", request_id, None, detail="integration timeout"
            )
        if result.timed_out or result.crashed or result.error is not None:
            why = (
                "timed out"
                if result.timed_out
                else (
                    "crashed"
                    if result.crashed
                    else f"raised {(result.error or {}).get('errorType')}"
                )
            )
            return internal_error(request_id, f"function {why}", status=502)
        try:
            status, headers, body = events.parse_proxy_response(result.payload)
        except events.MalformedProxyResponse as exc:
            self.log(f"gateway: malformed Lambda proxy response ({exc}) for request {request_id}")
            return internal_error(request_id, f"malformed Lambda proxy response: {exc}", status=502)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.insert(0, ("Content-Type", DEFAULT_CONTENT_TYPE))
        headers = [
            (n, v)
            for n, v in headers
            if n.lower() not in ("content-length", "transfer-encoding", "connection")
        ]
        headers.append(("x-amzn-RequestId", request_id))
        return GatewayResponse(status, headers, body, request_id)

    # AWS (non-proxy) and MOCK
    def _mapped(self, api, request, method, integration, request_params, common, request_id):
        if integration.type == "AWS" and self._is_lambda(integration):
            for key in integration.request_parameters:
                lowered = key.lower()
                if (
                    lowered.startswith("integration.request.header.")
                    and lowered[27:] in LAMBDA_FORBIDDEN_REQUEST_HEADERS
                ):
                    return internal_error(
                        request_id,
                        f"integration request parameter {key} cannot be sent to "
                        "Lambda (API Gateway answers 500)",
                    )
        context = vtl.build_context(**common)
        body_text = request.body.decode("utf-8", errors="replace")
        header_lookup = {k.lower(): v for k, v in request_params["header"].items()}
        input_var = vtl.InputVariable(body_text, request_params, header_lookup=header_lookup)

        content_type = _media_type(request.header("Content-Type")) or DEFAULT_CONTENT_TYPE
        templates = integration.request_templates
        key = _select_template(templates, content_type)
        if key is not None and templates[key]:
            try:
                payload = vtl.render(
                    templates[key],
                    input_var=input_var,
                    context=context,
                    stage_variables=api.stage_variables,
                )
            except vtl.BodyParseError as exc:
                return _json_error(
                    400,
                    f"Could not parse request body into json: {exc}",
                    request_id,
                    "BadRequestException",
                )
            except vtl.TemplateError as exc:
                self.log(f"gateway: request template failed for request {request_id}: {exc}")
                return internal_error(request_id, f"request template error: {exc}")
        elif key is not None:
            payload = ""
        else:
            behavior = integration.passthrough_behavior
            if behavior == "NEVER" or (behavior == "WHEN_NO_TEMPLATES" and templates):
                return _json_error(
                    415, "Unsupported Media Type", request_id, "UnsupportedMediaTypeException"
                )
            payload = body_text

        if integration.type == "MOCK":
            result = self._mock(payload)
        elif self._is_lambda(integration):
            result = self._lambda(api, integration, payload, request_id)
        else:
            result = self._service(api, integration, payload, request_params, request_id)
        if isinstance(result, GatewayResponse):
            return result
        return self._integration_response(
            request, method, integration, result, request_params, context, api, request_id
        )

    @staticmethod
    def _is_lambda(integration: Integration) -> bool:
        return bool(integration.uri) and ":lambda:path/" in integration.uri

    @staticmethod
    def _mock(payload: str) -> _IntegrationResult:
        status = "200"
        try:
            parsed = json.loads(payload) if payload.strip() else {}
            if isinstance(parsed, dict) and parsed.get("statusCode") is not None:
                status = str(parsed["statusCode"])
        except ValueError:
            pass
        return _IntegrationResult(body="", headers={}, selector=status)

    def _function_ref(self, api: DeployedApi, integration: Integration, request_id: str):
        ref = parse_lambda_uri(integration.uri or "", api.stage_variables)
        if ref is None:
            raise _Reject(
                internal_error(
                    request_id, f"integration URI {integration.uri!r} is not a Lambda function"
                )
            )
        return ref

    def _spec(self, ref: FunctionRef, request_id: str) -> Any:
        try:
            return self.registry.get_function(ref)
        except PackageMissing as exc:
            self.log(f"gateway: {exc}")
            explanation = str(exc).replace("\n", " ")
            response = internal_error(request_id, explanation, status=502)
            response.headers.append(("x-orch-error", explanation))
            raise _Reject(response) from exc
        except SandboxError as exc:
            self.log(f"gateway: {exc}")
            raise _Reject(internal_error(request_id, exc.message)) from exc

    def _invoke(self, spec: Any, event: bytes, request_id: str, integration: Integration):
        """Invoke with the shorter of the function's and the integration's timeout."""
        integration_seconds = max(1, math.ceil(integration.timeout_ms / 1000))
        integration_timeout = integration_seconds < spec.timeout
        if integration_timeout:
            spec = replace(spec, timeout=integration_seconds)
        return self.invoker.invoke(spec, event, request_id), integration_timeout

    def _lambda(self, api, integration, payload, request_id):
        ref = self._function_ref(api, integration, request_id)
        spec = self._spec(ref, request_id)
        event = payload.encode() if payload.strip() else b"{}"
        result, integration_timeout = self._invoke(spec, event, request_id, integration)
        if result.timed_out and integration_timeout:
            return _json_error(
                504, "Endpoint request timed out", request_id, None, detail="integration timeout"
            )
        if result.timed_out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            error = {
                "errorType": "Sandbox.Timedout",
                **(result.error or {}),
                "errorMessage": f"{stamp} {request_id} Task timed out after "
                f"{spec.timeout:.2f} seconds",
            }
        elif result.crashed:
            error = result.error or {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited unexpectedly",
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

    def _service(self, api, integration, payload, request_params, request_id):
        """An AWS service integration (SQS, SNS, ...), sent signed to the emulator."""
        uri = substitute_stage_variables(integration.uri or "", api.stage_variables)
        found = SERVICE_URI.match(uri)
        if found is None or self.service_caller is None:
            return internal_error(
                request_id, f"AWS integration URI {uri!r} is not supported by the local gateway"
            )
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        for target, source in integration.request_parameters.items():
            value = _static_or_request_value(source, request_params)
            if value is None:
                continue
            if target.startswith("integration.request.header."):
                headers[target[len("integration.request.header.") :]] = value
            elif target.startswith("integration.request.querystring."):
                query[target[len("integration.request.querystring.") :]] = value
        try:
            status, resp_headers, body = self.service_caller(
                service=found.group("service"),
                region=found.group("region"),
                kind=found.group("kind"),
                target=found.group("rest"),
                method=integration.http_method or "POST",
                headers=headers,
                query=query,
                body=payload.encode(),
                timeout=integration.timeout_ms / 1000,
            )
        except TimeoutError:
            return _json_error(504, "Endpoint request timed out", request_id, None)
        except Exception as exc:
            self.log(f"gateway: AWS service call failed for request {request_id}: {exc}")
            return internal_error(request_id, f"AWS service call failed: {exc}")
        return _IntegrationResult(
            body=body.decode("utf-8", errors="replace"), headers=resp_headers, selector=str(status)
        )

    @staticmethod
    def _select_response(
        integration: Integration, result: _IntegrationResult
    ) -> IntegrationResponse | None:
        if result.selector is not None:
            for response in integration.responses:
                pattern = response.selection_pattern
                if pattern:
                    try:
                        if re.fullmatch(pattern, result.selector):
                            return response
                    except re.error:
                        continue
        return integration.default_response()

    def _integration_response(
        self, request, method, integration, result, request_params, context, api, request_id
    ):
        selected = self._select_response(integration, result)
        if selected is None:
            return internal_error(
                request_id, "no integration response matches and there is no default one"
            )
        try:
            status = int(selected.status_code)
        except ValueError:
            return internal_error(
                request_id, f"integration response status {selected.status_code!r} is not a number"
            )
        templates = selected.response_templates
        accept = _media_type(request.header("Accept"))
        key = (
            _select_template(templates, accept)
            or _select_template(templates, DEFAULT_CONTENT_TYPE)
            or next(iter(templates), None)
        )
        content_type = key or DEFAULT_CONTENT_TYPE
        body = result.body
        if key is not None and templates[key]:
            input_var = vtl.InputVariable(result.body, request_params)
            try:
                body = vtl.render(
                    templates[key],
                    input_var=input_var,
                    context=context,
                    stage_variables=api.stage_variables,
                )
            except vtl.TemplateError as exc:
                self.log(f"gateway: response template failed for request {request_id}: {exc}")
                return internal_error(request_id, f"response template error: {exc}")
        headers: list[tuple[str, str]] = [("Content-Type", content_type)]
        mapped = self._response_parameters(selected, result)
        override_status, override_headers = vtl.response_override(context)
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
        headers.append(("x-amzn-RequestId", request_id))
        return GatewayResponse(
            status, headers, body.encode(), request_id, "function error" if result.error else ""
        )

    @staticmethod
    def _response_parameters(
        selected: IntegrationResponse, result: _IntegrationResult
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        parsed: Any = None
        for target, source in selected.response_parameters.items():
            if not target.startswith("method.response.header."):
                continue
            name = target[len("method.response.header.") :]
            source = source.strip()
            value: Any = None
            if len(source) >= 2 and source[0] == "'" and source[-1] == "'":
                value = source[1:-1]
            elif source.startswith("integration.response.header."):
                wanted = source[len("integration.response.header.") :].lower()
                value = next((v for k, v in result.headers.items() if k.lower() == wanted), None)
            elif source == "integration.response.body":
                value = result.body
            elif source.startswith("integration.response.body."):
                if parsed is None:
                    try:
                        parsed = json.loads(result.body) if result.body else {}
                    except ValueError:
                        parsed = {}
                try:
                    value = vtl.jsonpath_get(
                        parsed, "$." + source[len("integration.response.body.") :]
                    )
                except vtl.TemplateError:
                    value = None
                if value is not None and not isinstance(value, str):
                    value = json.dumps(value)
            if value is not None:
                out[name] = value
        return out


def event_bytes(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def http_date(now: float | None = None) -> str:
    return formatdate(now, usegmt=True)
