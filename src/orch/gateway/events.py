"""The request/response data the gateway passes around, and the Lambda proxy (AWS_PROXY) shapes.

This module owns the AWS_PROXY v1 event (field order, header casing, repeated keys, query
decoding, nulls, exactly as the recordings in ../shared/conformance cases 5 and 6 show) and
the mapping of a proxy function's result back to an HTTP response. It must not route,
render templates or run handlers.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orch.gateway.vtl import IDENTITY_KEYS


@dataclass
class GatewayRequest:
    """One client request to a stage, as the HTTP server saw it."""

    method: str
    raw_path: str  # what follows ``_user_request_``, undecoded ('' or '/a', '//a', '/a/')
    query_string: str  # raw, without '?'
    headers: list[tuple[str, str]]  # names as sent, in order, repeats kept
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    server_port: int = 0
    protocol: str = "HTTP/1.1"
    scheme: str = "http"
    # Through a custom domain name: the base path its mapping matched ("" for the whole
    # domain); None through the invoke URL.
    base_path: str | None = None
    _header_index: dict[str, str] | None = field(default=None, repr=False)

    def header(self, name: str) -> str | None:
        """Last value of a header, case-insensitively."""
        if self._header_index is None:
            self._header_index = {k.lower(): v for k, v in self.headers}
        return self._header_index.get(name.lower())


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_id: str = ""
    detail: str = ""  # extra words for the request log line (why a 5xx happened)


# Headers AWS writes with its own casing whatever the client sent (cases 5 and 6 show
# 'authorization'/'aUThorization' -> 'Authorization' and 'user-Agent' -> 'User-Agent');
# other names keep the client's casing ('tEsT-HEADeR').
CANONICAL_HEADERS = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Charset",
        "Accept-Encoding",
        "Accept-Language",
        "Age",
        "Authorization",
        "Cache-Control",
        "Content-Encoding",
        "Content-MD5",
        "Content-Type",
        "Cookie",
        "Date",
        "Host",
        "If-Match",
        "If-Modified-Since",
        "If-None-Match",
        "Origin",
        "Pragma",
        "Range",
        "Referer",
        "User-Agent",
        "Via",
        "Warn",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "X-Amzn-Trace-Id",
    )
}

# Request headers API Gateway drops before the integration: they are in neither the proxy
# event (case 12: of 25 headers sent these 11 never arrive) nor ``$input.params()`` (case 2,
# where they render ""). The last three are hop-by-hop headers the recordings did not send.
DROPPED_REQUEST_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "content-md5",
        "expect",
        "max-forwards",
        "proxy-authenticate",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "www-authenticate",
        "keep-alive",
        "proxy-connection",
    }
)


def canonical_header(name: str) -> str:
    return CANONICAL_HEADERS.get(name.lower(), name)


class _Ids:
    """Unique ids in AWS's formats without a random-number syscall per request: random
    per-process prefixes (new after a fork) and a counter for the last characters."""

    _MASK48 = (1 << 48) - 1
    _B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        raw = os.urandom(32).hex()
        # uuid4: xxxxxxxx-xxxx-4xxx-[89ab]xxx-<12 hex from the counter>
        variant = "89ab"[int(raw[15], 16) & 3]
        self._uuid_prefix = f"{raw[:8]}-{raw[8:12]}-4{raw[12:15]}-{variant}{raw[16:19]}-"
        self._trace_prefix = raw[19:31]
        self._ext_prefix = "".join(self._B64[b & 63] for b in os.urandom(7))
        self._start = int.from_bytes(os.urandom(6), "big")
        self._counter = itertools.count(self._start)

    def request_id(self) -> str:
        """A UUID (version 4 format), unique per request."""
        return f"{self._uuid_prefix}{next(self._counter) & self._MASK48:012x}"

    def trace_suffix(self) -> str:
        """24 hex digits for an X-Amzn-Trace-Id root."""
        return f"{self._trace_prefix}{next(self._counter) & self._MASK48:012x}"

    def trace_parent(self) -> str:
        """16 hex digits for an X-Amzn-Trace-Id Parent."""
        return f"{self._trace_prefix[:4]}{next(self._counter) & self._MASK48:012x}"

    def extended_id(self) -> str:
        """An x-amz-apigw-id: 15 base64 characters and '='."""
        n = next(self._counter) & self._MASK48
        b64 = self._B64
        tail = "".join(b64[(n >> shift) & 63] for shift in (42, 36, 30, 24, 18, 12, 6, 0))
        return f"{self._ext_prefix}{tail}="


_ids = _Ids()
new_request_id = _ids.request_id
new_extended_id = _ids.extended_id


def trace_id(incoming: str | None = None, now: float | None = None) -> str:
    """The request's X-Ray trace header, ``Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>``.

    A client's ``X-Amzn-Trace-Id`` is kept: its Root, its Parent (a new one when it has none)
    and its Sampled flag (default 1 with a Parent, else 0). Case 24 recorded both halves: the
    whole header sent comes back on an AWS_PROXY response, and a Root sent alone comes back
    with another Parent. The Sampled default is LocalStack's AWS-validated choice
    (``next_gen/execute_api/handlers/parse.py``), not in a recording here.
    """
    fields: dict[str, str] = {}
    for part in (incoming or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            fields[key.capitalize()] = value
    root = fields.get("Root") or f"1-{int(now or time.time()):08x}-{_ids.trace_suffix()}"
    parent = fields.get("Parent")
    sampled = fields.get("Sampled") or ("1" if parent else "0")
    return f"Root={root};Parent={parent or _ids.trace_parent()};Sampled={sampled}"


def added_headers(request: GatewayRequest, trace: str) -> list[tuple[str, str]]:
    """What API Gateway adds on the way in (X-Forwarded-*, X-Amzn-Trace-Id)."""
    forwarded_for = request.header("X-Forwarded-For")
    return [
        (
            "X-Forwarded-For",
            f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip,
        ),
        ("X-Forwarded-Port", str(request.server_port)),
        ("X-Forwarded-Proto", request.scheme),
        ("X-Amzn-Trace-Id", trace),
    ]


def proxy_headers(
    request: GatewayRequest, trace: str
) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """``headers`` (last value wins) and ``multiValueHeaders`` of the proxy event."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    replaced = {"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"}
    for name, value in request.headers:
        lower = name.lower()
        if lower in DROPPED_REQUEST_HEADERS or lower in replaced:
            continue
        key = canonical_header(name)
        single[key] = value
        multi.setdefault(key, []).append(value)
    for name, value in added_headers(request, trace):
        single[name] = value
        multi[name] = [value]
    if not single:
        return None, None
    return single, multi


def parse_query(query_string: str) -> list[tuple[str, str]]:
    """Query pairs, URL-decoded with '+' as space (cases 5 and 6); a bare key has value ''."""
    pairs = []
    for piece in query_string.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        pairs.append((urllib.parse.unquote_plus(key), urllib.parse.unquote_plus(value)))
    return pairs


def query_maps(
    pairs: Iterable[tuple[str, str]],
) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # the last value of a repeated key, as AWS
        multi.setdefault(key, []).append(value)
    if not single:
        return None, None
    return single, multi


def media_type(header_value: str | None) -> str | None:
    """The first media type of a Content-Type or Accept value, parameters dropped, lower-cased."""
    if not header_value:
        return None
    return header_value.split(",", 1)[0].split(";", 1)[0].strip().lower() or None


def is_binary(header_value: str | None, binary_media_types: Iterable[str]) -> bool:
    """Whether a Content-Type or Accept value names one of the API's binary media types.

    As case 11 recorded for Accept: only the first media type of the header counts
    (``image/webp,image/png`` does not match ``image/png``); a configured ``type/*`` matches
    that type's subtypes; a configured ``*/sub`` never matches (not ``*/test``, not
    ``random/test``); ``image/*`` or ``*/*`` sent by the client match nothing more specific.
    A configured ``*/*`` matches every media type (AWS's documented catch-all, not recorded).
    """
    media = media_type(header_value)
    if media is None or "/" not in media:
        return False
    kind = media.split("/", 1)[0]
    for pattern in binary_media_types:
        pattern = pattern.split(";", 1)[0].strip().lower()
        if pattern == "*/*":
            return True
        if pattern.startswith("*/"):
            continue
        if pattern == media or (pattern.endswith("/*") and kind == pattern[:-2]):
            return True
    return False


def build_proxy_event(
    *,
    request: GatewayRequest,
    resource_path: str,
    path: str,
    path_parameters: Mapping[str, str] | None,
    stage_variables: Mapping[str, str] | None,
    request_context: Mapping[str, Any],
    trace: str,
    binary_media_types: Iterable[str] = (),
) -> dict[str, Any]:
    """The AWS_PROXY v1 event, keys in AWS's order."""
    headers, multi_headers = proxy_headers(request, trace)
    query, multi_query = query_maps(parse_query(request.query_string))
    body: str | None = None
    encoded = False
    if request.body:
        if is_binary(request.header("Content-Type"), binary_media_types):
            body, encoded = base64.b64encode(request.body).decode(), True
        else:
            body = request.body.decode("utf-8", errors="replace")
    return {
        "resource": resource_path,
        "path": path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": dict(stage_variables) if stage_variables else None,
        "requestContext": dict(request_context),
        "body": body,
        "isBase64Encoded": encoded,
    }


def proxy_request_context(
    *,
    resource_id: str,
    resource_path: str,
    http_method: str,
    extended_request_id: str,
    request_time: str,
    path: str,
    account_id: str,
    protocol: str,
    stage: str,
    domain_prefix: str,
    request_time_epoch: int,
    request_id: str,
    identity: Mapping[str, Any],
    domain_name: str,
    deployment_id: str,
    api_id: str,
) -> dict[str, Any]:
    return {
        "resourceId": resource_id,
        "resourcePath": resource_path,
        "httpMethod": http_method,
        "extendedRequestId": extended_request_id,
        "requestTime": request_time,
        "path": path,
        "accountId": account_id,
        "protocol": protocol,
        "stage": stage,
        "domainPrefix": domain_prefix,
        "requestTimeEpoch": request_time_epoch,
        "requestId": request_id,
        "identity": {key: identity.get(key) for key in IDENTITY_KEYS},
        "domainName": domain_name,
        "deploymentId": deployment_id,
        "apiId": api_id,
    }


class MalformedProxyResponse(ValueError):
    """The function's result is not a valid Lambda proxy response (AWS answers 502)."""


PROXY_RESPONSE_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)


def _header_text(name: str, value: Any) -> str:
    # Scalars become text as a JSON-to-String binding makes them (case 10: ``true`` ->
    # "true"); a null, object or list value is malformed.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedProxyResponse(f"header {name!r} has a {type(value).__name__} value")


def parse_proxy_response(
    payload: bytes | None, *, decode_base64: bool
) -> tuple[int, list[tuple[str, str]], bytes]:
    """A proxy function's result -> (status, headers, body); raises MalformedProxyResponse.

    AWS's rules, as case 10 recorded them: every field is optional (``{}`` or only
    ``headers`` answer 200 with an empty body); an unknown key, a ``statusCode`` that is not
    an integer (``"200"`` is one, ``"test"`` is not), ``multiValueHeaders`` values that are not
    lists, or a result that is not a JSON object make the response malformed (502);
    ``headers: null`` is fine. A base64 ``body`` is decoded only when ``decode_base64`` (the
    request's Accept names a binary media type, case 11) and ``isBase64Encoded`` is true;
    otherwise the text is sent as it is. Headers given in both maps: the
    ``multiValueHeaders`` values, plus a ``headers`` value they do not already hold (AWS's
    documented merge, https://docs.aws.amazon.com/apigateway/latest/developerguide/
    set-up-lambda-proxy-integrations.html). A ``body`` that is not a string is treated as
    malformed (not recorded).
    """
    try:
        result = json.loads(payload) if payload else None
    except (ValueError, RecursionError) as exc:
        raise MalformedProxyResponse(f"result is not JSON: {exc}") from exc
    if not isinstance(result, dict):
        raise MalformedProxyResponse("result is not a JSON object")
    unknown = set(result) - PROXY_RESPONSE_KEYS
    if unknown:
        raise MalformedProxyResponse(f"unexpected keys {sorted(unknown)}")
    status: Any = result.get("statusCode")
    if status is None:
        status = 200
    elif isinstance(status, str) and status.strip().lstrip("+-").isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode {status!r} is not an HTTP status")
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponse("headers/multiValueHeaders must be objects")
    headers: list[tuple[str, str]] = []
    multi_values: dict[str, list[str]] = {}
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] is not a list")
        texts = [_header_text(name, value) for value in values]
        multi_values[str(name).lower()] = texts
        headers.extend((str(name), text) for text in texts)
    for name, value in single.items():
        text = _header_text(name, value)
        if text not in multi_values.get(str(name).lower(), ()):
            headers.append((str(name), text))
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResponse("body must be a string")
    raw = (body or "").encode()
    if decode_base64 and result.get("isBase64Encoded") is True and body:
        try:
            raw = base64.b64decode(body, validate=False)
        except ValueError as exc:
            raise MalformedProxyResponse(f"body is not base64: {exc}") from exc
    return status, headers, raw
