"""Stage configuration: load `stages/*.yaml`, merge, validate, and describe a stage.

This module owns the shape of a stage (pydantic models), the precedence of values and the
error messages for bad stage files. It reads files but never writes any, and knows nothing
about Terraform, AWS or the CLI.

Precedence, lowest to highest:
  1. defaults built into these models (documented in the README),
  2. `stages/defaults.yaml` (shared by every stage),
  3. `stages/<stage>.yaml` (only what differs for that stage).
Mappings merge key by key; lists and scalars from a higher level replace the lower one.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orch.errors import ConfigError
from orch.stage_yaml import read_mapping

DEFAULTS_FILE = "defaults.yaml"
CI_POLICY_FILE = "ci.yaml"
"""`orch ci`'s policy (orch.ci.policy), not a stage."""
NOT_STAGES = frozenset({DEFAULTS_FILE, CI_POLICY_FILE})
"""Files in `stages/` that are not stages: every other `*.yaml` there is one."""
STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
RUNTIMES = ("python3.11", "python3.12", "python3.13", "nodejs20.x", "nodejs22.x")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
BUILTIN_TEMPLATES = ("passthrough",)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""What ANY stands for (API Gateway's x-amazon-apigateway-any-method)."""
PATH_RE = re.compile(r"^/$|^(/([A-Za-z0-9._~-]+|\{[A-Za-z0-9_]+\}|\{[A-Za-z0-9_]+\+\}))+$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
INT32_MAX = 2**31 - 1
"""AWS API integers are 32-bit: e.g. PutFunctionConcurrency's ReservedConcurrentExecutions
(https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html)."""
ENVIRONMENT_MAX_BYTES = 4 * 1024
"""Lambda: all environment variables of a function together, at most 4 KB
(https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)."""
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
"""AWS tags (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html)."""
EXTENSION_PREFIX = "x-"
"""Top-level keys starting with this are ignored: a place for YAML anchors (`x-common: &c`)
to merge with `<<: *c`, as in the Compose specification's extension fields."""


@functools.lru_cache(maxsize=1)
def aws_regions() -> frozenset[str]:
    """Regions where both Lambda and API Gateway exist, from botocore's endpoint data (every
    partition: aws, aws-cn, aws-us-gov, ...). A region newer than the installed botocore is
    missing until boto3/botocore are upgraded."""
    import botocore.session

    session = botocore.session.get_session()
    found: set[str] = set()
    for partition in session.get_available_partitions():
        found |= set(session.get_available_regions("lambda", partition_name=partition)) & set(
            session.get_available_regions("apigateway", partition_name=partition)
        )
    return frozenset(found)


def check_region(value: str) -> str:
    """`value` if it is a region orch can deploy to (aws_regions), else ValueError with the
    closest names."""
    regions = aws_regions()
    if value in regions:
        return value
    import botocore

    close = difflib.get_close_matches(value, sorted(regions), n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
    raise ValueError(
        f"{_shown(value)} is not an AWS region with both Lambda and API Gateway{suggestion} (orch knows "
        f"the regions of botocore {botocore.__version__}: a region newer than that needs a newer boto3)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _plain_path(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("a path cannot contain control characters")
    if not value:
        raise ValueError("a path cannot be empty")
    return value


ProjectPath = Annotated[str, AfterValidator(_plain_path)]
"""A path relative to the project (checked against the file system in _check_files)."""
Region = Annotated[str, AfterValidator(check_region)]


ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SecretSource(_Strict):
    """Where a secret's value comes from: an environment variable of the orch process, or a
    file outside `stages/` (relative to the project, or absolute, `~` allowed). Never the
    value itself: a stage file is committed, so it holds no secrets."""

    env: str | None = None
    file: str | None = None

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_VAR_RE.match(value):
            raise ValueError("must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*)")
        return value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        return _plain_path(value) if value is not None else None

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env: VARIABLE` or `file: PATH`")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env is not None else f"file {self.file}"


class FunctionConfig(_Strict):
    """The Lambda function."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,48}$")] = "loopback"
    source: ProjectPath = "functions/loopback"
    handler: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+\.[A-Za-z_][A-Za-z0-9_]*$")] = (
        "handler.handler"
    )
    runtime: Literal[RUNTIMES] = "python3.12"  # type: ignore[valid-type]
    memory_size: Annotated[int, Field(ge=128, le=10240)] = 128
    timeout: Annotated[int, Field(ge=1, le=900)] = 10
    environment: dict[str, str] = Field(default_factory=dict)
    # Environment variables whose values are secret: name -> {env: VAR} or {file: PATH}.
    secrets: dict[str, SecretSource] = Field(default_factory=dict)
    log_retention_days: Literal[LOG_RETENTION_DAYS] = 14  # type: ignore[valid-type]
    reserved_concurrency: Annotated[int, Field(ge=-1, le=INT32_MAX)] = -1

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        _check_variable_names(value)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > ENVIRONMENT_MAX_BYTES:
            raise ValueError(f"the variables take {size} bytes; Lambda allows {ENVIRONMENT_MAX_BYTES} in all")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _no_literals(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, source in value.items():
                if not isinstance(source, dict):
                    raise ValueError(
                        f"{key}: a secret's value is never written in a stage file; give where it comes from, "
                        f"`{key}: {{env: VARIABLE}}` or `{key}: {{file: PATH}}` (outside stages/)")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, SecretSource]) -> dict[str, SecretSource]:
        _check_variable_names(value)
        return value

    @model_validator(mode="after")
    def _secret_or_plain(self) -> FunctionConfig:
        both = sorted(set(self.secrets) & set(self.environment))
        if both:
            raise ValueError(f"{', '.join(both)}: in both `environment` and `secrets`; keep it in `secrets` only")
        return self


def _check_variable_names(value: dict[str, Any]) -> None:
    for key in value:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", key):
            raise ValueError(f"environment variable name {key!r} must match [A-Za-z][A-Za-z0-9_]*")
        if key.startswith("AWS_") or key.startswith("LAMBDA_"):
            raise ValueError(f"environment variable {key!r} is reserved by Lambda")


class Parameters(_Strict):
    """Method-request parameters: name -> required."""

    headers: dict[str, bool] = Field(default_factory=dict)
    querystrings: dict[str, bool] = Field(default_factory=dict)
    paths: dict[str, bool] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, bool]) -> dict[str, bool]:
        return _valid_header_names(value)


def _valid_header_names(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if not HEADER_NAME_RE.match(key):
            raise ValueError(f"{key!r} is not a valid HTTP header name")
    return value


class TemplateFile(_Strict):
    file: ProjectPath



class TemplateInline(_Strict):
    inline: str


class Integration(_Strict):
    """How API Gateway hands the request to the function."""

    type: Literal["AWS", "AWS_PROXY"] = "AWS"
    request_template: str | TemplateFile | TemplateInline = "passthrough"
    # The request template applies to each of these Content-Types (AWS selects by header;
    # a request without Content-Type uses application/json).
    content_types: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["application/json"]
    )
    passthrough_behavior: Literal["WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER"] = (
        "WHEN_NO_TEMPLATES"
    )
    timeout_milliseconds: Annotated[int, Field(ge=50, le=29000)] = 29000

    @field_validator("request_template")
    @classmethod
    def _builtin(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in BUILTIN_TEMPLATES:
            raise ValueError(
                f"{value!r} is not a built-in template (known: {', '.join(BUILTIN_TEMPLATES)}); "
                "use {file: path/to/template.vtl} or {inline: '...'} for your own"
            )
        return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


RegexText = Annotated[str, AfterValidator(_regex)]
"""A Python regular expression (checked to compile)."""


class ErrorMapping(_Strict):
    """A Lambda error message regex mapped to an HTTP status."""

    status: Annotated[int, Field(ge=200, le=599)]
    pattern: RegexText
    template: str | None = None


CORS_DEFAULT_HEADERS = ("Content-Type", "Authorization", "X-Amz-Date", "X-Api-Key", "X-Amz-Security-Token")
"""Access-Control-Allow-Headers when a stage does not list its own: SAM's and the API Gateway
console's "Enable CORS" defaults."""
ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
BASE_PATH_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
ACM_ARN_RE = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):[0-9]{12}:certificate/[A-Za-z0-9-]+$")


class Cors(_Strict):
    """CORS of an API or a route: what the preflight (OPTIONS) answers and which
    Access-Control headers the real methods' responses and API Gateway's own error answers
    carry. https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-cors.html

    One origin (or `*`): API Gateway maps response headers from static values, which carry
    one value, as SAM's `AllowOrigin` and Chalice's `CORSConfig.allow_origin` do.
    """

    allow_origin: str = "*"
    allow_methods: list[Literal[HTTP_METHODS]] | None = None  # type: ignore[valid-type]
    allow_headers: list[str] = Field(default_factory=lambda: list(CORS_DEFAULT_HEADERS))
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Annotated[int, Field(ge=0, le=86400)] | None = None
    allow_credentials: bool = False

    @field_validator("allow_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if value != "*" and not ORIGIN_RE.match(value):
            raise ValueError(
                f"{_shown(value)} is not an origin: use '*' or scheme://host[:port] such as "
                "'https://app.example.com' (no path, no trailing slash; one origin)"
            )
        return value

    @field_validator("allow_methods", mode="before")
    @classmethod
    def _upper_methods(cls, value: Any) -> Any:
        return [v.upper() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "*" and not HEADER_NAME_RE.match(name):
                raise ValueError(f"{_shown(name)} is not a valid HTTP header name")
        return value

    @model_validator(mode="after")
    def _credentials_need_an_origin(self) -> Cors:
        if self.allow_credentials and self.allow_origin == "*":
            raise ValueError(
                "allow_credentials: true needs a named allow_origin: browsers refuse credentialed "
                "responses whose Access-Control-Allow-Origin is '*'"
            )
        return self


CorsSetting = bool | Cors
"""`cors: true` (the defaults, or the API's settings on a route), `false`, or settings."""


def _host_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(HOST_LABEL_RE.match(label) for label in labels):
        raise ValueError(
            f"{_shown(value)} is not a valid host name: labels of letters, digits and inner hyphens "
            "(1-63 characters each) joined by dots, at least two labels, no trailing dot"
        )
    if labels[-1].isdigit():
        raise ValueError(f"{_shown(value)} is not a valid host name: the last label cannot be a number")
    return value.lower()


HostName = Annotated[str, AfterValidator(_host_name)]


class Domain(_Strict):
    """A custom domain name for the stage, with its TLS certificate (ACM).

    Either `certificate_arn` (an existing certificate) or `create_certificate: true` with the
    Route 53 `hosted_zone` the domain lives in (DNS validation and an alias record).
    https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-custom-domains.html
    """

    name: HostName
    base_path: str = ""
    endpoint_type: Literal["REGIONAL", "EDGE"] = "REGIONAL"
    security_policy: Literal["TLS_1_2", "TLS_1_0"] = "TLS_1_2"
    certificate_arn: str | None = None
    create_certificate: bool = False
    hosted_zone: HostName | None = None

    @field_validator("base_path")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        if value and not BASE_PATH_RE.match(value):
            raise ValueError(
                f"{_shown(value)} is not one path segment: letters, digits and '._~-' only, no "
                "slashes (empty: the whole domain serves this stage)"
            )
        return value

    @field_validator("certificate_arn")
    @classmethod
    def _acm_arn(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        found = ACM_ARN_RE.match(value)
        if not found:
            raise ValueError(
                f"{_shown(value)} is not an ACM certificate ARN "
                "(arn:aws:acm:<region>:<account>:certificate/<id>)"
            )
        if info.data.get("endpoint_type") == "EDGE" and found.group("region") != "us-east-1":
            raise ValueError(
                f"an EDGE domain needs a certificate in us-east-1 (CloudFront's region), but this one is "
                f"in {found.group('region')}; request one in us-east-1, or use endpoint_type: REGIONAL"
            )
        return value

    @model_validator(mode="after")
    def _certificate(self) -> Domain:
        if self.create_certificate == (self.certificate_arn is not None):
            raise ValueError("set either certificate_arn or create_certificate: true (exactly one)")
        if self.create_certificate and self.hosted_zone is None:
            raise ValueError("create_certificate needs hosted_zone: the Route 53 zone that validates it")
        if self.hosted_zone is not None and not (
            self.name == self.hosted_zone or self.name.endswith("." + self.hosted_zone)
        ):
            raise ValueError(f"domain {self.name!r} is not inside hosted_zone {self.hosted_zone!r}")
        return self

    @property
    def certificate_region(self) -> str | None:
        """The region of `certificate_arn` (None when orch creates the certificate)."""
        found = ACM_ARN_RE.match(self.certificate_arn or "")
        return found.group("region") if found else None

    @property
    def url(self) -> str:
        """The stage's URL on this domain (https://name[/base_path])."""
        return f"https://{self.name}" + (f"/{self.base_path}" if self.base_path else "")


class Docs(_Strict):
    """Where `orch docs STAGE --publish` puts the stage's documentation page."""

    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class Route(_Strict):
    method: Literal[HTTP_METHODS]  # type: ignore[valid-type]
    path: str = "/"
    parameters: Parameters = Field(default_factory=Parameters)
    integration: Integration = Field(default_factory=Integration)
    errors: list[ErrorMapping] = Field(default_factory=list)
    description: Annotated[str, Field(max_length=4096)] = ""  # the route's text in `orch openapi`/`docs`
    cors: CorsSetting | None = None  # None: the API's `cors`

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not PATH_RE.match(value):
            raise ValueError(
                "must start with '/' and contain segments of letters, digits, '._~-', "
                "'{name}' or a final '{name+}'"
            )
        if value.count("/") > 8:
            raise ValueError("at most 8 path segments are supported")
        return value

    @model_validator(mode="after")
    def _path_params(self) -> Route:
        in_path = set(re.findall(r"\{([A-Za-z0-9_]+)\+?\}", self.path))
        unknown = set(self.parameters.paths) - in_path
        if unknown:
            raise ValueError(
                f"parameters.paths names {sorted(unknown)} which do not appear in path {self.path!r}"
            )
        return self


class ApiConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9 _.-]{1,100}$")] = "loopback"
    description: str = "Managed by orch"
    endpoint_type: Literal["REGIONAL", "EDGE", "PRIVATE"] = "REGIONAL"
    routes: Annotated[list[Route], Field(min_length=1)] = Field(
        default_factory=lambda: [Route(method="POST", path="/")]
    )
    cors: CorsSetting = False

    @model_validator(mode="after")
    def _unique_routes(self) -> ApiConfig:
        seen: set[str] = set()
        for route in self.routes:
            key = f"{route.method} {route.path}"
            if key in seen:
                raise ValueError(f"route {key!r} is defined twice")
            seen.add(key)
        self._cors_per_path()
        return self

    def route_cors(self, route: Route) -> Cors | None:
        """The CORS settings of one route: its own (over the API's), the API's, or None (off)."""
        own, api = route.cors, self.cors
        base = api if isinstance(api, Cors) else Cors()
        if own is None:
            return base if api is not False else None
        if own is False:
            return None
        if own is True:
            return base
        return base.model_copy(update={k: getattr(own, k) for k in own.model_fields_set})

    def preflights(self) -> dict[str, Cors]:
        """Resource path -> the CORS settings its OPTIONS preflight answers with, for every path
        with a CORS route. `allow_methods` unset: the methods of that path's CORS routes."""
        out: dict[str, Cors] = {}
        for route in self.routes:
            cors = self.route_cors(route)
            if cors is None:
                continue
            if cors.allow_methods is None:
                methods = [r.method for r in self.routes if r.path == route.path and self.route_cors(r) is not None]
                cors = cors.model_copy(update={"allow_methods": methods})
            out.setdefault(route.path, cors)
        return out

    def error_cors(self) -> Cors | None:
        """The settings of the Access-Control headers on API Gateway's own 4XX/5XX answers:
        the API's, else the one setting every CORS route shares; None without CORS."""
        if isinstance(self.cors, Cors):
            return self.cors
        return next((c for c in (self.route_cors(r) for r in self.routes) if c is not None), None)

    def _cors_per_path(self) -> None:
        by_path: dict[str, tuple[str, Cors]] = {}
        origins: set[tuple[str, bool]] = set()
        for route in self.routes:
            cors = self.route_cors(route)
            if cors is None:
                continue
            key = f"{route.method} {route.path}"
            origins.add((cors.allow_origin, cors.allow_credentials))
            if any(r.method == "OPTIONS" and r.path == route.path for r in self.routes):
                raise ValueError(
                    f"route {key!r} has CORS on, and path {route.path!r} has its own OPTIONS route: "
                    "the preflight would be the function's; turn CORS off for that path or drop the route"
                )
            first = by_path.setdefault(route.path, (key, cors))
            if first[1] != cors:
                raise ValueError(
                    f"routes {first[0]!r} and {key!r} share the path {route.path!r} (one preflight) but "
                    "have different CORS settings; give them the same"
                )
        if len(origins) > 1 and not isinstance(self.cors, Cors):
            raise ValueError(
                "routes have different CORS allow_origin/allow_credentials, but API Gateway's own error "
                "answers (DEFAULT_4XX, DEFAULT_5XX) carry one: set them once in api.cors"
            )


class Throttling(_Strict):
    burst_limit: Annotated[int, Field(ge=0, le=5000)] = 100
    rate_limit: Annotated[float, Field(ge=0, le=10000)] = 50


class Logging(_Strict):
    level: Literal["OFF", "ERROR", "INFO"] = "OFF"
    metrics: bool = False
    data_trace: bool = False
    access_logs: bool = False

    @field_validator("level", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare OFF as the boolean false.
        return "OFF" if value is False else value


class StageSettings(_Strict):
    name: Annotated[str | None, Field(pattern=STAGE_NAME_RE.pattern)] = None
    variables: dict[str, str] = Field(default_factory=dict)
    throttling: Throttling = Field(default_factory=Throttling)
    logging: Logging = Field(default_factory=Logging)
    tracing: bool = False

    @field_validator("variables")
    @classmethod
    def _var_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not re.match(r"^[A-Za-z0-9_]+$", key):
                raise ValueError(f"stage variable name {key!r} must match [A-Za-z0-9_]+")
            if not re.match(r"^[A-Za-z0-9\-._~:/?#&=,]*$", val):
                raise ValueError(
                    f"stage variable {key!r} has characters API Gateway refuses "
                    "(allowed: letters, digits and -._~:/?#&=,)"
                )
        return value


class Backend(_Strict):
    type: Literal["local", "s3"] = "local"
    bucket: str | None = None
    key: str | None = None
    region: Region | None = None
    use_lockfile: bool = True


    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> Backend:
        if self.type == "s3" and not self.bucket:
            raise ValueError("backend type 's3' needs 'bucket'")
        return self


class Artifacts(_Strict):
    bucket: str | None = None
    prefix: str = "orch/packages/"


# --------------------------------------------------------------------------- smoke checks

PLACEHOLDER_RE = re.compile(r"\$\{([a-z_]+)\}")
PLACEHOLDERS = ("stage",)
"""`${stage}` in a smoke check's values: the API Gateway stage name (the stage's own name
unless `stage.name` is set), the value `$context.stage` has."""


def _placeholders(value: Any) -> Any:
    for text in _strings(value):
        for name in PLACEHOLDER_RE.findall(text):
            if name not in PLACEHOLDERS:
                known = ", ".join("${" + known + "}" for known in PLACEHOLDERS)
                raise ValueError(f"unknown placeholder ${{{name}}} (known: {known})")
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _json_path(value: str) -> str:
    import jsonpath_rfc9535

    try:
        jsonpath_rfc9535.compile(value)
    except jsonpath_rfc9535.JSONPathError as exc:
        raise ValueError(
            f"{_shown(value)} is not an RFC 9535 JSONPath ({exc}); names with '-' need brackets: $.a['b-c']"
        ) from None
    return value


JsonPath = Annotated[str, AfterValidator(_json_path)]


class SmokeExpect(_Strict):
    """What a smoke request must answer: status, values at JSON paths, headers, latency."""

    status: Annotated[int, Field(ge=100, le=599)] = 200
    json_: Annotated[dict[JsonPath, Any], AfterValidator(_placeholders)] = Field(default_factory=dict, alias="json")
    headers: Annotated[dict[str, str], AfterValidator(_placeholders)] = Field(default_factory=dict)
    max_latency_ms: Annotated[int | None, Field(ge=1, le=600_000)] = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SmokeRequest(_Strict):
    """One data-plane smoke check: a real HTTP request to the stage's invoke URL."""

    method: Literal[HTTP_METHODS] = "GET"  # type: ignore[valid-type]
    path: Annotated[str, Field(pattern=r"^/")] = "/"
    headers: Annotated[dict[str, str], AfterValidator(_placeholders)] = Field(default_factory=dict)
    query: Annotated[dict[str, str], AfterValidator(_placeholders)] = Field(default_factory=dict)
    body: Annotated[Any, AfterValidator(_placeholders)] = None  # mapping or list: sent as JSON; text as is
    expect: SmokeExpect = Field(default_factory=SmokeExpect)
    enabled: bool = True

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _valid_header_names(value)


class SmokeSettings(_Strict):
    """`smoke:` of a stage: the checks `orch apply` runs after applying (and `orch smoke`).

    `checks` is a mapping from a check's name to its request, so a stage file can add a
    check or change one the defaults declare (mappings merge key by key). `timeout` bounds
    the whole run in seconds (every failing check is tried again with backoff until then);
    unset: 60 s on AWS, 10 s in the sandbox, whose gateway serves a new release at once.
    """

    enabled: bool = True
    timeout: Annotated[float | None, Field(gt=0, le=900)] = None
    request_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    checks: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:()-]{0,99}$")], SmokeRequest] = Field(
        default_factory=dict
    )


class StageConfig(_Strict):
    """Everything orch needs to deploy one stage."""

    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = "orch"
    protected: bool = False  # ask before `orch apply` changes this stage (unless --yes)
    region: Region = "ap-northeast-2"
    function: FunctionConfig = Field(default_factory=FunctionConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    stage: StageSettings = Field(default_factory=StageSettings)
    tags: dict[str, str] = Field(default_factory=dict)
    backend: Backend = Field(default_factory=Backend)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    domain: Domain | None = None
    docs: Docs | None = None
    smoke: SmokeSettings = Field(default_factory=SmokeSettings)
    # `orch apply` of this stage refuses a package that did not pass this stage's smoke checks
    promote_from: Annotated[str | None, Field(pattern=STAGE_NAME_RE.pattern)] = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not key or len(key) > TAG_KEY_MAX or len(val) > TAG_VALUE_MAX:
                raise ValueError(
                    f"tag {key[:40]!r}: keys are 1-{TAG_KEY_MAX} characters, values at most {TAG_VALUE_MAX}"
                )
            if key.lower().startswith("aws:"):
                raise ValueError(f"tag {key!r}: the aws: prefix is reserved by AWS")
        return value


@dataclass(frozen=True)
class Stage:
    """A validated stage and where its values came from (`secret_origins`: secret name ->
    `file: field` that declares it, for messages about its value)."""

    name: str
    config: StageConfig
    project_dir: Path
    files: tuple[Path, ...]
    secret_origins: Mapping[str, str] = field(default_factory=dict)

    @property
    def stage_name(self) -> str:
        """The API Gateway stage name (the stage's own name unless `stage.name` is set)."""
        return self.config.stage.name or self.name

    @property
    def function_name(self) -> str:
        return f"{self.config.project}-{self.config.function.name}-{self.name}"

    @property
    def api_name(self) -> str:
        return f"{self.config.project}-{self.config.api.name}-{self.name}"

    @property
    def source_dir(self) -> Path:
        return (self.project_dir / self.config.function.source).resolve()


# --------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one stage file (orch.stage_yaml: safe YAML, limits, errors naming file:line)."""
    return read_mapping(path)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge `override` into `base`: mappings key by key, everything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` that has a `stages/` folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "stages").is_dir():
            return folder
    raise ConfigError(
        f"no stages/ folder found in {here} or any folder above it.",
        hint="Run orch from your project (the folder with stages/), "
        "or pass --project PATH / set ORCH_PROJECT_DIR.",
    )


def stage_names(project_dir: Path) -> list[str]:
    """The stages defined in `stages/`: one `<name>.yaml` each, except NOT_STAGES (defaults.yaml,
    ci.yaml) and hidden files."""
    folder = project_dir / "stages"
    names = sorted(
        p.stem for p in folder.glob("*.yaml") if p.name not in NOT_STAGES and not p.name.startswith(".")
    )
    return names


def _locate(path: tuple[Any, ...], layers: list[tuple[Path, dict[str, Any]]]) -> Path | None:
    """The highest-precedence file that sets `path` (or its nearest existing parent)."""
    for depth in range(len(path), 0, -1):
        prefix = path[:depth]
        for file, data in reversed(layers):
            node: Any = data
            found = True
            for part in prefix:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                    node = node[part]
                else:
                    found = False
                    break
            if found:
                return file
    return None


def _yaml_kind(value: Any) -> str:
    """How YAML read `value`, in YAML's words (no value is ever printed whole)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return f"a {type(value).__name__}"


def _shown(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a scalar for an error message (a 5000-digit integer has
    no repr under Python's int-to-str limit, and long text is cut)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 200:
        return f"a number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model a validation error's location points into (for key suggestions)."""
    model: Any = StageConfig
    for part in loc:
        if isinstance(part, int):
            continue  # a list index: same element model
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _element_model(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _element_model(annotation: Any) -> Any:
    """`Route` from list[Route], `TemplateFile` from str | TemplateFile, ...: the first model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or getattr(annotation, "__metadata__", ()):
        found = _element_model(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    return _element_model(origin) if origin is not None and origin is not annotation else None


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    known = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    if known:
        return f"unknown key (known here: {', '.join(known)})"
    return "unknown key (check the spelling; see the README for the known keys)"


SECRET_FIELDS = (("function", "environment"), ("function", "secrets"))
"""Values under these are never shown in an error (an environment value may be a password
someone has not yet moved to `secrets`)."""


def _is_secret_field(loc: tuple[Any, ...]) -> bool:
    return any(loc[: len(prefix)] == prefix for prefix in SECRET_FIELDS)


def _explain(err: Any) -> str:
    """One validation error in orch's words (pydantic's wording rewritten where it speaks
    of Python types rather than of the YAML a person wrote). Values under SECRET_FIELDS are
    described, never shown."""
    kind, loc = err["type"], tuple(err["loc"])
    value = err.get("input")
    secret = _is_secret_field(loc)
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "missing":
        return "required but missing"
    if kind == "string_type" and isinstance(value, (bool, int, float)):
        if isinstance(value, bool):
            shown = "" if secret else f" {_shown(value)}"
            reads = f"the boolean{shown} (YAML reads unquoted yes/no/on/off/true/false so)"
        else:
            reads = "a number" if secret else f"the number {_shown(value)}"
        return f"should be text, but YAML read the unquoted value as {reads}; put it in quotes"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"should be a mapping of settings (`key: value` lines), not {_yaml_kind(value)}"
    if kind == "list_type":
        return f"should be a list (lines starting with `- `), not {_yaml_kind(value)}"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if value is not None and not isinstance(value, (dict, list)) and kind != "value_error" and not secret:
        message += f" (got {_shown(value)})"
    return message


def _dotted(loc: tuple[Any, ...]) -> str:
    """`api.routes[0].path` from ("api", "routes", 0, "path")."""
    dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)
    return dotted.replace(".[", "[") or "(top level)"


def _format_errors(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]], stage: str) -> str:
    lines = [f"stage {stage!r} is not valid:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc = loc[:-1]
        file = _locate(loc, layers)
        dotted = _dotted(loc)
        where = str(file) if file else "stage files"
        what = _explain(err)
        lines.append(f"  {where}: {dotted}: {'the key ' if is_key else ''}{what}")
    return "\n".join(lines)


def _is_extension(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(EXTENSION_PREFIX)


def load_stage(project_dir: Path, name: str) -> Stage:
    """Load, merge and validate one stage; raise ConfigError naming file and field on failure."""
    known = stage_names(project_dir)
    if name not in known:
        listing = ", ".join(known) if known else "none (add stages/<name>.yaml)"
        raise ConfigError(
            f"unknown stage {name!r}. Known stages: {listing}.",
            hint=f"Stages are the *.yaml files in {project_dir / 'stages'} except "
            f"{' and '.join(sorted(NOT_STAGES))}.",
        )
    if not STAGE_NAME_RE.match(name):
        raise ConfigError(
            f"stage file stages/{name}.yaml: the stage name must match [A-Za-z0-9_]{{1,64}} "
            "(API Gateway's rule for stage names)."
        )
    layers: list[tuple[Path, dict[str, Any]]] = []
    defaults = project_dir / "stages" / DEFAULTS_FILE
    if defaults.exists():
        layers.append((defaults, read_yaml(defaults)))
    stage_file = project_dir / "stages" / f"{name}.yaml"
    layers.append((stage_file, read_yaml(stage_file)))
    layers = [(file, {k: v for k, v in data.items() if not _is_extension(k)}) for file, data in layers]
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = deep_merge(merged, data)
    try:
        config = StageConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, layers, name)) from None
    stage = Stage(name=name, config=config, project_dir=project_dir, files=tuple(p for p, _ in layers))
    _check_files(stage, layers)
    _check_domain(stage, layers)
    _check_promote_from(stage, known, layers)
    return replace(stage, secret_origins=_secret_origins(stage, layers))


def secret_file(stage: Stage, source: SecretSource) -> Path:
    """The file a `{file: PATH}` secret is read from: `~` expanded, relative to the project."""
    path = Path(str(source.file)).expanduser()
    return (path if path.is_absolute() else stage.project_dir / path).resolve()


def _secret_origins(stage: Stage, layers: list[tuple[Path, dict[str, Any]]]) -> dict[str, str]:
    """Where each secret is declared; ConfigError for a secret file inside stages/ (stage
    files are committed: a secret kept beside them is not kept secret)."""
    origins = {}
    stages = (stage.project_dir / "stages").resolve()
    for name, source in stage.config.function.secrets.items():
        loc = ("function", "secrets", name)
        where = f"{_locate(loc, layers) or 'stage files'}: {_dotted(loc)}"
        origins[name] = where
        if source.file is not None and secret_file(stage, source).is_relative_to(stages):
            raise ConfigError(
                f"{where}: the file {source.file} is inside stages/, beside the committed stage files.",
                hint="Keep secret files outside stages/ (and out of version control), or use `{env: VARIABLE}`.",
            )
    return origins


def _check_domain(stage: Stage, layers: list[tuple[Path, dict[str, Any]]]) -> None:
    """What a custom domain must agree on with the rest of the stage (AWS refuses it only
    when it creates the domain name): a REGIONAL domain's certificate is in the stage's region,
    and a PRIVATE API cannot be mapped to a public domain."""
    domain = stage.config.domain
    if domain is None:
        return
    region = domain.certificate_region
    if domain.endpoint_type == "REGIONAL" and region is not None and region != stage.config.region:
        loc = ("domain", "certificate_arn")
        raise ConfigError(
            f"stage {stage.name!r} is not valid:\n  {_locate(loc, layers) or 'stage files'}: {_dotted(loc)}: "
            f"a REGIONAL domain needs a certificate in the stage's region ({stage.config.region}), but this "
            f"one is in {region}"
        )
    if stage.config.api.endpoint_type == "PRIVATE":
        loc = ("domain",)
        raise ConfigError(
            f"stage {stage.name!r} is not valid:\n  {_locate(loc, layers) or 'stage files'}: domain: "
            "a PRIVATE API cannot be mapped to a public custom domain; use api.endpoint_type REGIONAL or EDGE"
        )


def _project_path(stage: Stage, value: str, loc: tuple[Any, ...], layers: list[tuple[Path, dict[str, Any]]],
                  *, folder: bool) -> Path:
    """`value` (relative to the project) as an existing folder or file inside the project, or a
    ConfigError naming the file and field. Nothing outside the project is ever read: not a
    function source (`/srv/x`, `../../x`, a symlink out) nor a template file."""
    where = f"{_locate(loc, layers) or 'stage files'}: {_dotted(loc)}"
    root = stage.project_dir.resolve()
    try:
        path = (stage.project_dir / value).resolve()
        exists = path.is_dir() if folder else path.is_file()
    except (OSError, ValueError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{where}: {_shown(value)} is not a usable path ({reason}).") from None
    if not path.is_relative_to(root):
        raise ConfigError(
            f"{where}: {_shown(value)} is {path}, outside the project ({root}).",
            hint="orch reads and packages only what is inside the project folder: move it there "
            "(a symlink that leads outside does not count as inside).",
        )
    if not exists:
        kind = "folder" if folder else "template file"
        hint = (
            "Point function.source at the folder that holds your handler, relative to the project."
            if folder else None
        )
        raise ConfigError(f"{where}: {kind} {path} does not exist.", hint=hint)
    return path


def _check_files(stage: Stage, layers: list[tuple[Path, dict[str, Any]]]) -> None:
    """Checks that need the file system: the function source and template files exist, inside
    the project."""
    _project_path(stage, stage.config.function.source, ("function", "source"), layers, folder=True)
    for i, route in enumerate(stage.config.api.routes):
        tpl = route.integration.request_template
        if isinstance(tpl, TemplateFile):
            loc = ("api", "routes", i, "integration", "request_template", "file")
            _project_path(stage, tpl.file, loc, layers, folder=False)


def _check_promote_from(stage: Stage, known: list[str], layers: list[tuple[Path, dict[str, Any]]]) -> None:
    source = stage.config.promote_from
    if source is None:
        return
    where = f"{_locate(('promote_from',), layers) or 'stage files'}: promote_from"
    if source == stage.name:
        raise ConfigError(f"{where}: a stage cannot promote from itself ({source!r}).")
    if source not in known:
        raise ConfigError(f"{where}: {source!r} is not a stage (known: {', '.join(known)}).")


def load_all(project_dir: Path) -> list[Stage]:
    return [load_stage(project_dir, n) for n in stage_names(project_dir)]
