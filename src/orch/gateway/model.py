"""What is deployed in the emulator, read once and cached: REST API stages, their functions and
the custom domain names that map to them.

This module owns reading an API Gateway REST API stage (resources, methods, integrations,
integration and method responses, stage variables, deployment id), the custom domain names
and their base path mappings, and the Lambda function behind an integration URI from the
emulator with boto3, turning the function into a
``FunctionSpec`` whose code is the unpacked ``.orch/packages/<hex>.zip``. It must not serve
HTTP or run handlers. ``ApiRegistry`` keeps the warm path free of boto3 calls: it caches
what it read for one generation of the deployed state (``orch.gateway.generation``) and
reads again after ``orch.sandbox.mark_changed``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import SandboxError
from orch.gateway.gateway_responses import CustomResponse
from orch.gateway.workers import FunctionSpec

DEFAULT_TIMEOUT_MS = 29000
LAMBDA_URI = re.compile(
    r"^arn:aws[\w-]*:apigateway:(?P<region>[\w-]+):lambda:path/[\d-]+/functions/"
    r"(?P<function>.+)/invocations$"
)
SERVICE_URI = re.compile(
    r"^arn:aws[\w-]*:apigateway:(?P<region>[\w-]+):(?P<service>[\w.-]+):"
    r"(?P<kind>path|action)/(?P<rest>.*)$"
)
STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.:/?#&=,\-]+)\}")


# --- the deployed API ------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationResponse:
    status_code: str
    selection_pattern: str | None  # None or "" = the default response
    response_templates: Mapping[str, str]
    response_parameters: Mapping[str, str]
    content_handling: str | None = None


@dataclass(frozen=True)
class Integration:
    type: str  # AWS | AWS_PROXY | MOCK | HTTP | HTTP_PROXY
    uri: str | None
    http_method: str | None
    request_templates: Mapping[str, str]
    request_parameters: Mapping[str, str]
    passthrough_behavior: str  # WHEN_NO_MATCH | WHEN_NO_TEMPLATES | NEVER
    content_handling: str | None
    timeout_ms: int
    responses: tuple[IntegrationResponse, ...]

    def default_response(self) -> IntegrationResponse | None:
        for response in self.responses:
            if not response.selection_pattern:
                return response
        return None


@dataclass(frozen=True)
class Method:
    http_method: str
    authorization_type: str
    request_parameters: Mapping[str, bool]
    validate_request_parameters: bool
    integration: Integration | None
    method_responses: Mapping[str, Mapping[str, bool]]  # status -> responseParameters


@dataclass(frozen=True)
class Resource:
    id: str
    path: str
    parts: tuple[str, ...]
    methods: Mapping[str, Method]


@dataclass(frozen=True)
class DeployedApi:
    rest_api_id: str
    name: str
    stage_name: str
    deployment_id: str
    stage_variables: Mapping[str, str]
    resources: tuple[Resource, ...]
    region: str
    account_id: str
    binary_media_types: tuple[str, ...] = ()
    gateway_responses: Mapping[str, CustomResponse] = field(default_factory=dict)
    loaded_at: float = field(default=0.0, compare=False)


def routes(api: DeployedApi) -> list[tuple[str, str, str]]:
    """Every route of a deployed stage as ``(method, resource path, integration)``, sorted by
    path then method; the integration is ``AWS lambda <function>[:<qualifier>]`` for Lambda
    integrations, else its type (and URI). For people: ``orch serve``'s table, the 403 log."""
    rows: list[tuple[str, str, str]] = []
    for resource in api.resources:
        for verb, method in resource.methods.items():
            integration = method.integration
            if integration is None:
                target = "(no integration: 403)"
            else:
                ref = parse_lambda_uri(integration.uri, api.stage_variables) if integration.uri else None
                if ref is not None:
                    name = ref.function_arn.rsplit(":", 1)[-1]
                    target = f"{integration.type} lambda {name}" + (f":{ref.qualifier}" if ref.qualifier else "")
                else:
                    target = integration.type + (f" {integration.uri}" if integration.uri else "")
            rows.append((verb, resource.path, target))
    return sorted(rows, key=lambda row: (row[1], row[0]))


def describe_routes(api: DeployedApi) -> str:
    """``POST /, GET /items/{id}``: a stage's routes on one line (``(none)`` without any)."""
    return ", ".join(f"{verb} {path}" for verb, path, _target in routes(api)) or "(none)"


class ApiNotFound(SandboxError):
    """No such REST API or stage in the emulator."""


# --- custom domain names ---------------------------------------------------------------

NO_BASE_PATH = "(none)"
"""What API Gateway lists as the base path of a mapping for the whole domain."""


@dataclass(frozen=True)
class BasePathMapping:
    """One base path mapping of a custom domain name to a REST API stage."""

    domain_name: str
    base_path: str  # "" for the whole domain
    rest_api_id: str
    stage: str


@dataclass(frozen=True)
class DomainRoute:
    """Where a request to a custom domain goes: the stage, the path after the base path
    (``raw_path`` as the invoke URL's ``_user_request_`` tail) and the base path it matched.
    An empty ``rest_api_id`` means the domain exists but no mapping matches (AWS: 403)."""

    rest_api_id: str
    stage: str
    raw_path: str
    base_path: str


@dataclass(frozen=True)
class CustomDomains:
    """Every custom domain name's base path mappings, by lower-case domain name."""

    mappings: Mapping[str, tuple[BasePathMapping, ...]] = field(default_factory=dict)

    def route(self, host: str | None, path: str) -> DomainRoute | None:
        """The stage a request to ``host`` (a Host header, port allowed) for ``path`` reaches:
        the mapping whose base path is the path's first segment, else the domain's ``(none)``
        mapping. None when ``host`` is no custom domain name.
        https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mappings.html"""
        if not host or not self.mappings:
            return None
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        found = self.mappings.get(name.strip().rstrip(".").lower())
        if found is None:
            return None
        first = path.lstrip("/").split("/", 1)[0]
        for mapping in found:
            if mapping.base_path and mapping.base_path == first:
                rest = path.lstrip("/")[len(first):]
                return DomainRoute(mapping.rest_api_id, mapping.stage, rest, mapping.base_path)
        for mapping in found:
            if not mapping.base_path:
                return DomainRoute(mapping.rest_api_id, mapping.stage, path, "")
        return DomainRoute("", "", path, "")


def load_domains(apigw_client: Any) -> CustomDomains:
    """Every custom domain name and its base path mappings in the emulator."""
    mappings: dict[str, tuple[BasePathMapping, ...]] = {}
    for domain in _paginate(apigw_client.get_domain_names, "items"):
        name = domain.get("domainName")
        if not name:
            continue
        try:
            items = _paginate(functools.partial(apigw_client.get_base_path_mappings, domainName=name), "items")
        except apigw_client.exceptions.NotFoundException:
            continue
        mappings[name.lower()] = tuple(
            BasePathMapping(
                domain_name=name,
                base_path="" if item.get("basePath") in (None, "", NO_BASE_PATH) else item["basePath"],
                rest_api_id=item.get("restApiId", ""),
                stage=item.get("stage", ""),
            )
            for item in items
        )
    return CustomDomains(mappings)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def _integration(raw: Mapping[str, Any] | None) -> Integration | None:
    if not raw:
        return None
    responses = []
    for status, item in sorted((raw.get("integrationResponses") or {}).items()):
        responses.append(
            IntegrationResponse(
                status_code=str(item.get("statusCode", status)),
                selection_pattern=item.get("selectionPattern"),
                response_templates=dict(item.get("responseTemplates") or {}),
                response_parameters=dict(item.get("responseParameters") or {}),
                content_handling=item.get("contentHandling"),
            )
        )
    return Integration(
        type=str(raw.get("type", "MOCK")).upper(),
        uri=raw.get("uri"),
        http_method=raw.get("httpMethod"),
        request_templates=dict(raw.get("requestTemplates") or {}),
        request_parameters=dict(raw.get("requestParameters") or {}),
        passthrough_behavior=str(raw.get("passthroughBehavior") or "WHEN_NO_MATCH").upper(),
        content_handling=raw.get("contentHandling"),
        timeout_ms=int(raw.get("timeoutInMillis") or DEFAULT_TIMEOUT_MS),
        responses=tuple(responses),
    )


def _account_from_arn(arn: str | None) -> str | None:
    if arn and arn.startswith("arn:"):
        pieces = arn.split(":")
        if len(pieces) > 4 and pieces[4].isdigit():
            return pieces[4]
    return None


def load_api(
    apigw_client: Any, lambda_client: Any, rest_api_id: str, stage_name: str
) -> DeployedApi:
    """Read one REST API stage from the emulator (two or three boto3 calls)."""
    errors = apigw_client.exceptions
    try:
        api = apigw_client.get_rest_api(restApiId=rest_api_id)
        stage = apigw_client.get_stage(restApiId=rest_api_id, stageName=stage_name)
    except errors.NotFoundException as exc:
        raise ApiNotFound(
            f"REST API {rest_api_id!r} has no stage {stage_name!r} in the sandbox emulator.",
            hint="Run `orch apply --sandbox` for that stage, or check the invoke URL.",
        ) from exc
    validators: dict[str, bool] = {}
    try:
        for item in apigw_client.get_request_validators(restApiId=rest_api_id).get("items", []):
            validators[item["id"]] = bool(item.get("validateRequestParameters"))
    except Exception:  # older emulators: no validators means nothing is validated
        validators = {}
    resources = []
    kwargs: dict[str, Any] = {"restApiId": rest_api_id, "embed": ["methods"], "limit": 500}
    account_id: str | None = None
    while True:
        page = apigw_client.get_resources(**kwargs)
        for item in page.get("items", []):
            methods = {}
            for verb, raw in (item.get("resourceMethods") or {}).items():
                integration = _integration(raw.get("methodIntegration"))
                if integration and integration.uri:
                    account_id = account_id or _account_from_arn(
                        integration.uri.split("functions/", 1)[-1]
                    )
                methods[verb.upper()] = Method(
                    http_method=verb.upper(),
                    authorization_type=raw.get("authorizationType", "NONE"),
                    request_parameters=dict(raw.get("requestParameters") or {}),
                    validate_request_parameters=validators.get(
                        raw.get("requestValidatorId") or "", False
                    ),
                    integration=integration,
                    method_responses={
                        str(code): dict(resp.get("responseParameters") or {})
                        for code, resp in (raw.get("methodResponses") or {}).items()
                    },
                )
            path = item.get("path", "/")
            resources.append(
                Resource(id=item["id"], path=path, parts=_parts(path), methods=methods)
            )
        position = page.get("position")
        if not position:
            break
        kwargs["position"] = position
    region = apigw_client.meta.region_name
    return DeployedApi(
        gateway_responses=_gateway_responses(apigw_client, rest_api_id),
        rest_api_id=rest_api_id,
        name=api.get("name", ""),
        stage_name=stage_name,
        deployment_id=stage.get("deploymentId", ""),
        stage_variables=dict(stage.get("variables") or {}),
        resources=tuple(resources),
        region=region,
        account_id=account_id or "123456789012",
        binary_media_types=tuple(api.get("binaryMediaTypes") or ()),
        loaded_at=time.monotonic(),
    )


def _gateway_responses(apigw_client: Any, rest_api_id: str) -> dict[str, CustomResponse]:
    """The API's customized gateway responses (``put_gateway_response``), by type. AWS lists
    every type, customized or not (``defaultResponse`` false marks the customized ones);
    moto lists only what was put."""
    out: dict[str, CustomResponse] = {}
    try:
        items = apigw_client.get_gateway_responses(restApiId=rest_api_id).get("items", [])
    except Exception:  # an emulator without gateway responses: AWS's defaults apply
        return out
    for item in items:
        if item.get("defaultResponse") is True or not item.get("responseType"):
            continue
        out[item["responseType"]] = CustomResponse(
            response_type=item["responseType"],
            status_code=item.get("statusCode"),
            response_parameters=dict(item.get("responseParameters") or {}),
            response_templates=dict(item.get("responseTemplates") or {}),
        )
    return out


# --- the function behind an integration ------------------------------------------------


@dataclass(frozen=True)
class FunctionRef:
    """``arn:...:function:name[:qualifier]`` out of a Lambda integration URI."""

    function_arn: str  # without qualifier
    qualifier: str | None


def substitute_stage_variables(text: str, stage_variables: Mapping[str, str]) -> str:
    return STAGE_VARIABLE.sub(lambda m: stage_variables.get(m.group(1), ""), text)


def parse_lambda_uri(uri: str, stage_variables: Mapping[str, str]) -> FunctionRef | None:
    """The function (and qualifier) a Lambda integration URI invokes; None if not Lambda."""
    match = LAMBDA_URI.match(substitute_stage_variables(uri, stage_variables))
    if not match:
        return None
    target = match.group("function")
    pieces = target.split(":")
    # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    if len(pieces) >= 7 and pieces[0] == "arn":
        arn = ":".join(pieces[:7])
        qualifier = pieces[7] if len(pieces) > 7 and pieces[7] else None
        return FunctionRef(arn, qualifier)
    name, _, qualifier = target.partition(":")
    return FunctionRef(name, qualifier or None)


def lambda_refs(api: DeployedApi) -> list[FunctionRef]:
    """The functions a deployed stage's Lambda (AWS and AWS_PROXY) integrations invoke,
    each once, in resource order."""
    refs: list[FunctionRef] = []
    for resource in api.resources:
        for method in resource.methods.values():
            integration = method.integration
            if integration is None or integration.type not in ("AWS", "AWS_PROXY") or not integration.uri:
                continue
            ref = parse_lambda_uri(integration.uri, api.stage_variables)
            if ref is not None and ref not in refs:
                refs.append(ref)
    return refs


class PackageMissing(SandboxError):
    """The deployed function's package is not in ``.orch/packages``."""


def code_sha256_hex(code_sha256_b64: str) -> str:
    try:
        return base64.b64decode(code_sha256_b64, validate=True).hex()
    except (binascii.Error, ValueError) as exc:
        raise SandboxError(
            f"Lambda returned an unreadable CodeSha256 {code_sha256_b64!r}."
        ) from exc


def unpack_package(project_dir: Path, sha_hex: str) -> Path:
    """Unzip ``.orch/packages/<hex>.zip`` once into ``.orch/gateway/code/<hex>/`` atomically."""
    target = project_dir / ".orch" / "gateway" / "code" / sha_hex
    if target.is_dir():
        return target
    package = project_dir / ".orch" / "packages" / f"{sha_hex}.zip"
    if not package.is_file():
        raise PackageMissing(
            f"The deployed function's package {package} is missing (CodeSha256 {sha_hex}).",
            hint="Run `orch package` and `orch apply --sandbox` again so the package store "
            "and the emulator agree.",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha_hex}.", dir=target.parent))
    try:
        with zipfile.ZipFile(package) as archive:
            for info in archive.infolist():
                dest = (staging / info.filename).resolve()
                if not str(dest).startswith(str(staging.resolve())):
                    raise SandboxError(f"{package} holds an unsafe path {info.filename!r}.")
                archive.extract(info, staging)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(dest, mode | 0o400)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # lost a race to another thread/process: theirs is fine
                raise
    except zipfile.BadZipFile as exc:
        raise PackageMissing(
            f"The package {package} is not a valid zip file.",
            hint="Delete it and run `orch package` again.",
        ) from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def function_spec_from_config(config: Mapping[str, Any], code_dir: Path) -> FunctionSpec:
    return FunctionSpec(
        name=config["FunctionName"],
        version=str(config.get("Version", "$LATEST")),
        code_dir=code_dir,
        handler=config.get("Handler", ""),
        runtime=config.get("Runtime", ""),
        timeout=int(config.get("Timeout", 3)),
        memory_size=int(config.get("MemorySize", 128)),
        environment=dict((config.get("Environment") or {}).get("Variables") or {}),
        arn=config.get("FunctionArn", ""),
    )


def resolve_function(lambda_client: Any, ref: FunctionRef, project_dir: Path) -> FunctionSpec:
    """Lambda get_function -> the unpacked package -> a FunctionSpec for the worker pool."""
    kwargs: dict[str, Any] = {"FunctionName": ref.function_arn}
    if ref.qualifier:
        kwargs["Qualifier"] = ref.qualifier
    try:
        config = lambda_client.get_function(**kwargs)["Configuration"]
    except lambda_client.exceptions.ResourceNotFoundException as exc:
        raise SandboxError(
            f"The integration's function {ref.function_arn}"
            f"{':' + ref.qualifier if ref.qualifier else ''} does not exist in the emulator.",
            hint="Run `orch apply --sandbox` again.",
        ) from exc
    code_dir = unpack_package(project_dir, code_sha256_hex(config["CodeSha256"]))
    spec = function_spec_from_config(config, code_dir)
    if ref.qualifier:
        # Lambda's context.invoked_function_arn is the ARN the caller used: with an alias,
        # the alias ARN (moto answers with the version's ARN).
        base = spec.arn.split(":function:")[0] + ":function:" + spec.name
        spec = dataclasses.replace(spec, arn=f"{base}:{ref.qualifier}")
    return spec


# --- the cache -------------------------------------------------------------------------


class _Entry:
    """A cached value (or the error that loading it gave) and when it was last checked."""

    __slots__ = ("value", "error", "checked_at")

    def __init__(self, value: Any, error: SandboxError | None, checked_at: float) -> None:
        self.value = value
        self.error = error
        self.checked_at = checked_at

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class ApiRegistry:
    """Deployed APIs and function specs, cached for one generation of the deployed state.

    Every lookup first asks ``generation.current()`` (one ``stat``, see
    ``orch.gateway.generation``): when the token differs from the one the caches were
    filled under, they are emptied first, so a request that arrives after
    ``orch.sandbox.mark_changed`` is answered from what is deployed now, in every gateway
    process. A miss loads synchronously (boto3) under a per-key lock, so concurrent misses
    load once; a hit makes no boto3 call. What does not exist (a deleted API or stage, a
    deleted function, a package missing from ``.orch/packages``) is cached as that error for
    the generation too, so a client calling a destroyed stage does not cost a boto3 call per
    request; emulator hiccups are never cached.

    ``revalidate()`` re-reads every cached entry and drops the ones that changed: the
    gateway's watcher runs it off the request path as a safety net for changes made
    without ``mark_changed``. ``refresh_interval`` (tests) re-validates an entry on the
    request path when it is older than that many seconds.
    """

    def __init__(
        self,
        apigw_client: Any,
        lambda_client: Any,
        project_dir: Path,
        *,
        generation: Any = None,
        refresh_interval: float | None = None,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        code_overlay: Callable[[FunctionSpec], FunctionSpec] | None = None,
    ) -> None:
        """``generation``: an ``orch.gateway.generation.Generation`` (or anything with a
        ``current() -> str``); None: the caches are only invalidated by ``revalidate``.
        ``code_overlay``: applied to every function spec ``get_function`` returns, never
        cached (hot reload: ``orch.gateway.localcode.LocalCode.local_spec``)."""
        self.apigw = apigw_client
        self.lambda_ = lambda_client
        self.project_dir = Path(project_dir)
        self.generation = generation
        self.refresh_interval = refresh_interval
        self.log = log or (lambda _msg: None)
        self.clock = clock
        self.code_overlay = code_overlay
        self._token: str | None = generation.current() if generation is not None else None
        self._epoch = 0  # bumped whenever the caches are emptied
        self._apis: dict[tuple[str, str], _Entry] = {}
        self._functions: dict[FunctionRef, _Entry] = {}
        self._domains: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}

    # generations
    def sync(self) -> bool:
        """Empty the caches if the generation changed since they were filled; True if so."""
        if self.generation is None:
            return False
        token = self.generation.current()
        if token == self._token:
            return False
        with self._lock:
            if token == self._token:
                return False
            self._token = token
            self._clear_locked()
        self.log(f"gateway: deployed state changed (generation {token or '-'}): reading it again")
        return True

    def _clear_locked(self) -> None:
        self._epoch += 1
        self._apis = {}
        self._functions = {}
        self._domains = {}

    def _key_lock(self, key: Any) -> threading.Lock:
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _cached(
        self,
        table: str,
        key: Any,
        load: Callable[[], Any],
        expected: tuple[type, ...],
        unchanged: Callable[[_Entry], bool] | None = None,
    ) -> Any:
        """The cached value for ``key`` in ``self.<table>``, loading it on a miss;
        ``unchanged(entry)`` is a cheaper re-check than loading again."""
        entry = getattr(self, table).get(key)
        if entry is not None and self.refresh_interval is not None:
            if self.clock() - entry.checked_at >= self.refresh_interval:
                entry = self._recheck(table, key, entry, load, expected, unchanged)
        if entry is not None:
            return entry.get()
        with self._key_lock((table, key)):
            entry = getattr(self, table).get(key)
            if entry is None:
                epoch = self._epoch
                entry = self._load(load, expected)
                with self._lock:
                    if epoch == self._epoch:  # not emptied meanwhile: what we read is current
                        getattr(self, table)[key] = entry
        return entry.get()

    def _load(self, load: Callable[[], Any], expected: tuple[type, ...]) -> _Entry:
        try:
            return _Entry(load(), None, self.clock())
        except expected as exc:
            return _Entry(None, exc, self.clock())

    def _recheck(
        self,
        table: str,
        key: Any,
        entry: _Entry,
        load: Callable[[], Any],
        expected: tuple[type, ...],
        unchanged: Callable[[_Entry], bool] | None,
    ) -> _Entry:
        with self._key_lock((table, key)):
            current = getattr(self, table).get(key)
            if current is not entry:
                return current
            if unchanged is not None and unchanged(entry):
                entry.checked_at = self.clock()
                return entry
            epoch = self._epoch
            fresh = self._load(load, expected)
            with self._lock:
                if epoch == self._epoch:
                    getattr(self, table)[key] = fresh
            return fresh

    # APIs
    def get_api(self, rest_api_id: str, stage_name: str) -> DeployedApi:
        """The deployed stage; raises ``ApiNotFound`` (a ``SandboxError``) when there is none."""
        self.sync()
        return self._cached(
            "_apis",
            (rest_api_id, stage_name),
            lambda: load_api(self.apigw, self.lambda_, rest_api_id, stage_name),
            (ApiNotFound,),
            lambda entry: self._same_deployment(rest_api_id, stage_name, entry),
        )

    def _same_deployment(self, rest_api_id: str, stage_name: str, entry: _Entry) -> bool:
        """One get_stage: is the cached stage still deployed as it was (same deployment,
        same stage variables)?"""
        if entry.value is None:
            return False
        try:
            stage = self.apigw.get_stage(restApiId=rest_api_id, stageName=stage_name)
        except self.apigw.exceptions.NotFoundException:
            return False
        api = entry.value
        return stage.get("deploymentId") == api.deployment_id and dict(stage.get("variables") or {}) == dict(
            api.stage_variables
        )

    # custom domain names
    def route_domain(self, host: str | None, path: str) -> DomainRoute | None:
        """Where a request whose Host is a custom domain name goes (``CustomDomains.route``);
        None for any other host. The domain names are read once per generation."""
        if not host:
            return None
        self.sync()
        try:
            domains = self._cached("_domains", "all", lambda: load_domains(self.apigw), (SandboxError,))
        except Exception as exc:  # noqa: BLE001 - an emulator hiccup: serve as if no domain matched
            self.log(f"gateway: could not read the custom domain names: {exc!r}")
            return None
        return domains.route(host, path)

    # functions
    def get_function(self, ref: FunctionRef) -> FunctionSpec:
        """The function version ``ref`` names, unpacked; raises ``PackageMissing`` or
        ``SandboxError`` (no such function)."""
        self.sync()
        spec = self._cached(
            "_functions",
            ref,
            lambda: resolve_function(self.lambda_, ref, self.project_dir),
            (SandboxError,),
        )
        return spec if self.code_overlay is None else self.code_overlay(spec)

    # discovery and the safety net
    def deployed_apis(self) -> list[DeployedApi]:
        """Every stage of every REST API in the emulator's region, loaded into the cache
        (for warming workers before the first request)."""
        self.sync()
        found: list[DeployedApi] = []
        for rest_api in _paginate(self.apigw.get_rest_apis, "items"):
            try:
                stages = self.apigw.get_stages(restApiId=rest_api["id"]).get("item", [])
            except self.apigw.exceptions.NotFoundException:
                continue
            for stage in stages:
                try:
                    found.append(self.get_api(rest_api["id"], stage["stageName"]))
                except ApiNotFound:
                    continue
        return found

    def revalidate(self) -> bool:
        """Read every cached entry again and drop those that changed; True if any did.
        Errors reaching the emulator leave the caches as they are."""
        changed = False
        with self._lock:
            apis = dict(self._apis)
            functions = dict(self._functions)
            epoch = self._epoch
        stale: list[tuple[str, Any]] = []
        for key, entry in apis.items():
            try:
                if self._same_deployment(key[0], key[1], entry):
                    continue
                fresh = self._load(lambda key=key: load_api(self.apigw, self.lambda_, *key), (ApiNotFound,))
            except Exception as exc:  # noqa: BLE001 - keep serving what we have
                self.log(f"gateway: could not re-check {key[0]}/{key[1]}: {exc!r}")
                continue
            if not _same(entry, fresh):
                stale.append(("_apis", key))
        for ref, entry in functions.items():
            try:
                fresh = self._load(
                    lambda ref=ref: resolve_function(self.lambda_, ref, self.project_dir), (SandboxError,)
                )
            except Exception as exc:  # noqa: BLE001
                self.log(f"gateway: could not re-check function {ref.function_arn}: {exc!r}")
                continue
            if not _same(entry, fresh):
                stale.append(("_functions", ref))
        if stale:
            with self._lock:
                if epoch == self._epoch:
                    for table, key in stale:
                        getattr(self, table).pop(key, None)
            changed = True
            self.log(f"gateway: {len(stale)} deployed item(s) changed without a generation change; re-read")
        return changed


def _same(old: _Entry, new: _Entry) -> bool:
    if (old.error is None) != (new.error is None):
        return False
    if old.error is not None:
        return type(old.error) is type(new.error)
    return old.value == new.value


def _paginate(call: Callable[..., Mapping[str, Any]], key: str) -> list[Any]:
    items: list[Any] = []
    kwargs: dict[str, Any] = {"limit": 500}
    while True:
        page = call(**kwargs)
        items.extend(page.get(key, []))
        position = page.get("position")
        if not position:
            return items
        kwargs["position"] = position
