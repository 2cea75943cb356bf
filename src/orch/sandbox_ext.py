"""What the sandbox adds to moto: the API Gateway update calls Terraform needs.

moto (5.2.x) implements creating and deleting API Gateway methods, integrations, their
responses and custom domain names, but not `UpdateMethod`, `UpdateMethodResponse`,
`UpdateIntegration`, `UpdateIntegrationResponse` and `UpdateDomainName`: it answers HTTP
500, which the AWS provider retries for many minutes. Terraform changes those resources in
place (a new request template, parameter, selection pattern, a domain's security policy or
certificate), so without these a second `orch apply` in the sandbox hangs.

`install()` adds the five actions to moto's API Gateway response class, applying the JSON
Patch operations the API defines (op add/replace/remove, path `/requestTemplates/<type>`,
`/selectionPattern`, ...). It only runs inside the sandbox daemon. Remove a handler here
once moto implements it (`install` skips actions moto already has).
"""

from __future__ import annotations

import json
from typing import Any

# API field (first path segment) -> moto attribute, for single values.
_SCALARS: dict[str, dict[str, str]] = {
    "integration": {
        "uri": "uri",
        "type": "integration_type",
        "httpMethod": "http_method",
        "passthroughBehavior": "passthrough_behaviour",
        "timeoutInMillis": "timeout_in_millis",
        "contentHandling": "content_handling",
        "credentials": "credentials",
        "connectionType": "connection_type",
        "cacheNamespace": "cache_namespace",
    },
    "integration_response": {
        "selectionPattern": "selection_pattern",
        "contentHandling": "content_handling",
    },
    "method": {
        "authorizationType": "authorization_type",
        "authorizerId": "authorizer_id",
        "apiKeyRequired": "api_key_required",
        "operationName": "operation_name",
        "requestValidatorId": "request_validator_id",
    },
    "method_response": {},
    "domain_name": {
        "securityPolicy": "security_policy",
        "certificateArn": "certificate_arn",
        "certificateName": "certificate_name",
        "regionalCertificateArn": "regional_certificate_arn",
        "regionalCertificateName": "regional_certificate_name",
    },
}
# API field -> moto attribute, for maps addressed as /field/<escaped key>.
_MAPS = {
    "requestTemplates": "request_templates",
    "requestParameters": "request_parameters",
    "responseTemplates": "response_templates",
    "responseParameters": "response_parameters",
    "responseModels": "response_models",
    "requestModels": "request_models",
}


class UnsupportedPatch(ValueError):
    pass


def apply_patch(obj: Any, kind: str, operations: list[dict[str, Any]] | None) -> None:
    """Apply API Gateway patch operations to a moto model object of `kind`."""
    for op in operations or []:
        field, _, key = op["path"].strip("/").partition("/")
        value = op.get("value")
        removing = op["op"] == "remove"
        if field in _MAPS:
            attr = _MAPS[field]
            current = dict(getattr(obj, attr, None) or {})
            if not key:
                current = {} if removing else json.loads(value or "{}")
            else:
                key = key.replace("~1", "/").replace("~0", "~")  # JSON Pointer escapes
                if removing:
                    current.pop(key, None)
                else:
                    if kind in ("method", "method_response") and value in ("true", "false"):
                        value = value == "true"  # required flags are booleans
                    current[key] = value
            setattr(obj, attr, current if (current or kind == "integration_response") else None)
        elif field in _SCALARS[kind]:
            setattr(obj, _SCALARS[kind][field], None if removing else value)
        elif kind == "domain_name" and field == "endpointConfiguration" and key.startswith("types/") and not removing:
            types = list((obj.endpoint_configuration or {}).get("types") or [])
            index = int(key.split("/", 1)[1]) if key.split("/", 1)[1].isdigit() else len(types)
            types[index:index + 1] = [value]
            obj.endpoint_configuration = {**(obj.endpoint_configuration or {}), "types": types}
        else:
            raise UnsupportedPatch(f"patch path {op['path']!r} is not supported for {kind}")


def _ids(path: str) -> tuple[str, str, str, str | None]:
    # /restapis/{api}/resources/{resource}/methods/{method}[/integration]/responses/{status}
    parts = path.split("?")[0].strip("/").split("/")
    return parts[1], parts[3], parts[5], parts[-1] if "responses" in parts else None


def _make(kind: str, getter: str):
    def action(self: Any) -> tuple[int, dict[str, str], str]:
        api, resource, method, status = _ids(self.path)
        args = [api, resource, method] + ([status] if status is not None else [])
        obj = getattr(self.backend, getter)(*args)
        try:
            apply_patch(obj, kind, self._get_param("patchOperations"))
        except UnsupportedPatch as exc:
            from moto.apigateway.exceptions import BadRequestException

            raise BadRequestException(str(exc)) from None
        return 200, {}, json.dumps(obj.to_json())

    action.__name__ = f"update_{kind}"
    return action


def _update_domain_name(self: Any) -> tuple[int, dict[str, str], str]:
    # /domainnames/{domain_name}
    name = self.path.split("?")[0].rstrip("/").split("/")[-1]
    obj = self.backend.get_domain_name(name)
    try:
        apply_patch(obj, "domain_name", self._get_param("patchOperations"))
    except UnsupportedPatch as exc:
        from moto.apigateway.exceptions import BadRequestException

        raise BadRequestException(str(exc)) from None
    return 200, {}, json.dumps(obj.to_json())


def install() -> list[str]:
    """Add the missing actions to moto; return the names added."""
    from moto.apigateway.responses import APIGatewayResponse

    added = []
    if not hasattr(APIGatewayResponse, "update_domain_name"):
        APIGatewayResponse.update_domain_name = _update_domain_name
        added.append("update_domain_name")
    for kind, getter in (
        ("integration", "get_integration"),
        ("integration_response", "get_integration_response"),
        ("method", "get_method"),
        ("method_response", "get_method_response"),
    ):
        name = f"update_{kind}"
        if not hasattr(APIGatewayResponse, name):
            setattr(APIGatewayResponse, name, _make(kind, getter))
            added.append(name)
    return added
