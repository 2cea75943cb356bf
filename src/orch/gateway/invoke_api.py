"""Lambda's own Invoke call, answered by the local gateway, so `orch invoke --sandbox` is the
same boto3 call as on AWS with another endpoint.

This module owns the REST shape of Invoke (``POST /2015-03-31/functions/{name}/invocations``,
``Qualifier``, ``X-Amz-Invocation-Type``, ``X-Amz-Log-Type``; answers with
``X-Amz-Function-Error``, ``X-Amz-Log-Result``, ``X-Amz-Executed-Version``, errors as
``x-amzn-ErrorType`` + ``{"Type", "Message"}``):
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html. It finds the function version
through the registry and runs it through the worker pool it is given; it must not speak
HTTP (orch.gateway.server does) or emulate API Gateway.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from orch.errors import SandboxError
from orch.gateway.events import GatewayResponse
from orch.gateway.model import FunctionRef

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
LOG_TAIL_BYTES = 4096  # Invoke's LogResult: "the last 4 KB of the execution log"


def _error(status: int, error_type: str, message: str, request_id: str) -> GatewayResponse:
    body = json.dumps({"Type": "User", "Message": message}).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type),
               ("x-amzn-RequestId", request_id)]
    return GatewayResponse(status, headers, body, request_id, f"lambda invoke: {error_type}")


class LambdaInvokeApi:
    """Answers Invoke for every function the emulator holds. ``registry`` resolves a
    function (``get_function(FunctionRef)``), ``invoker`` runs it (``invoke(spec, event,
    request_id)``, the worker pool)."""

    def __init__(self, registry: Any, invoker: Any, *, log: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.invoker = invoker
        self.log = log or (lambda _line: None)

    def __call__(self, method: str, path: str, query: str, headers: Mapping[str, str],
                 body: bytes) -> GatewayResponse | None:
        """The answer to a request for this API, or None when the request is not one."""
        match = INVOKE_PATH.match(path)
        if match is None:
            return None
        request_id = str(uuid.uuid4())
        if method != "POST":
            return _error(405, "MethodNotAllowedException", f"{method} is not allowed on {path}", request_id)
        lower = {name.lower(): value for name, value in headers.items()}
        name = unquote(match.group("name"))
        qualifier = (parse_qs(query).get("Qualifier") or [None])[0]
        base, _, suffix = name.rpartition(":") if name.count(":") in (1, 7) else (name, "", "")
        if suffix and not qualifier:  # `name:alias` or a qualified ARN
            name, qualifier = base, suffix
        try:
            spec = self.registry.get_function(FunctionRef(name, qualifier))
        except SandboxError as exc:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}"
                          + (f":{qualifier}" if qualifier else "") + f" ({exc.message})", request_id)
        event = body if body.strip() else b"{}"
        try:
            json.loads(event)
        except ValueError as exc:
            return _error(400, "InvalidRequestContentException",
                          f"Could not parse request body into json: {exc}", request_id)
        kind = lower.get("x-amz-invocation-type", "RequestResponse")
        common = [("x-amzn-RequestId", request_id), ("X-Amz-Executed-Version", spec.version)]
        if kind == "DryRun":
            return GatewayResponse(204, common, b"", request_id, "lambda invoke: DryRun")
        if kind == "Event":
            threading.Thread(target=self.invoker.invoke, args=(spec, event, request_id), daemon=True).start()
            return GatewayResponse(202, common, b"", request_id, "lambda invoke: Event")
        if kind != "RequestResponse":
            return _error(400, "InvalidParameterValueException", f"unknown invocation type {kind}", request_id)
        result = self.invoker.invoke(spec, event, request_id)
        headers_out = [("Content-Type", "application/json"), *common]
        if result.error is not None:
            headers_out.append(("X-Amz-Function-Error", "Unhandled"))
            payload = json.dumps(result.error).encode()
        else:
            payload = result.payload if result.payload is not None else b"null"
        if lower.get("x-amz-log-type") == "Tail":
            tail = result.logs.encode("utf-8", "replace")[-LOG_TAIL_BYTES:]
            headers_out.append(("X-Amz-Log-Result", base64.b64encode(tail).decode()))
        return GatewayResponse(200, headers_out, payload, request_id, f"lambda invoke {spec.name}:{spec.version}")


__all__ = ["INVOKE_PATH", "LambdaInvokeApi"]
