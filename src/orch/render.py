"""Render a stage into a Terraform working folder: `backend.tf`, `main.tf`, `terraform.tfvars.json`.

This module turns a validated stage (orch.config) plus a package reference into file
contents: `terraform.tfvars.json` from typed data (TfVars, dumped as JSON), `backend.tf` and
`main.tf` from Jinja2 templates (StrictUndefined) that a project may override with files of
the same name in its own `templates/` folder (orch.resources owns that lookup); and writes
them atomically. It does not run Terraform, build packages or talk to AWS.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2

from orch.aws import SANDBOX_ACCESS_KEY_ID, SANDBOX_SECRET_ACCESS_KEY
from orch.config import ALL_METHODS, Cors, Stage, TemplateFile, TemplateInline
from orch.errors import ConfigError
from orch.resources import modules_dir, passthrough_template, template_search_path

TEMPLATES = ("backend.tf", "main.tf")
TFVARS_FILE = "terraform.tfvars.json"
FILES = (*TEMPLATES, TFVARS_FILE)
ROOT_OUTPUTS = (
    "invoke_url",
    "rest_api_id",
    "function_name",
    "function_arn",
    "function_version",
    "published_version",
    "alias_name",
    "alias_arn",
    "stage_name",
    "deployment_id",
    "execution_arn",
    "log_group_name",
    "custom_domain_url",
    "custom_domain_target",
)
PROVIDER_MAX_RETRIES = 5
"""The aws provider's `max_retries` orch renders (the provider's default is 25)."""
SANDBOX_SERVICES = (
    "acm", "apigateway", "cloudwatch", "iam", "lambda", "logs", "route53", "s3", "sts",
)


@dataclass(frozen=True)
class Target:
    """Where a stage deploys: real AWS, or the sandbox emulator at `endpoint`."""

    name: str  # "aws" or "sandbox"
    endpoint: str | None = None

    @property
    def sandbox(self) -> bool:
        return self.name == "sandbox"


@dataclass(frozen=True)
class PackageRef:
    """Where Terraform finds the function code: a local zip or an S3 object."""

    sha256_b64: str
    filename: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None


def work_dir(project_dir: Path, stage: str, target: Target) -> Path:
    """The per-stage working folder; sandbox and real AWS never share one (or its state)."""
    return project_dir / ".orch" / "work" / target.name / stage


def request_template(stage: Stage, value: str | TemplateFile | TemplateInline) -> str:
    if isinstance(value, TemplateFile):
        path = stage.project_dir / value.file
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"template file {path}: cannot read it as UTF-8 text ({exc}).") from None
    if isinstance(value, TemplateInline):
        return value.inline
    return passthrough_template(stage.project_dir)  # the only built-in, validated by config


@dataclass(frozen=True)
class PackageVars:
    """`function.package` of modules/stack: a local zip (`filename`) or an S3 object."""

    filename: str | None
    s3_bucket: str | None
    s3_key: str | None
    source_code_hash: str


@dataclass(frozen=True)
class FunctionVars:
    """`function` of modules/stack."""

    name: str
    handler: str
    runtime: str
    memory_size: int
    timeout: int
    environment: dict[str, str]
    log_retention_days: int
    reserved_concurrency: int
    package: PackageVars
    alias_version: str | None = None  # None: the alias follows the version just published (a rollback pins one)


@dataclass(frozen=True)
class ResponseVars:
    """One integration response of a route: the status a Lambda error message maps to."""

    status_code: str
    selection_pattern: str
    response_templates: dict[str, str]


@dataclass(frozen=True)
class RouteCorsVars:
    """`api.routes[].cors`: the Access-Control headers of a route's responses (modules/integration)."""

    allow_origin: str
    expose_headers: list[str]
    allow_credentials: bool


@dataclass(frozen=True)
class RouteVars:
    """One entry of `api.routes` of modules/stack."""

    method: str
    path: str
    request_parameters: dict[str, bool]
    integration_type: str
    request_templates: dict[str, str]
    passthrough_behavior: str
    timeout_milliseconds: int
    responses: list[ResponseVars]
    cors: RouteCorsVars | None = None


@dataclass(frozen=True)
class PreflightVars:
    """`api.preflights[]`: what the OPTIONS method of one path answers (modules/cors)."""

    path: str
    allow_origin: str
    allow_methods: list[str]
    allow_headers: list[str]
    expose_headers: list[str]
    max_age: int | None
    allow_credentials: bool


@dataclass(frozen=True)
class ErrorCorsVars:
    """`api.error_cors`: the Access-Control headers of DEFAULT_4XX/DEFAULT_5XX (modules/cors)."""

    allow_origin: str
    allow_headers: list[str]
    expose_headers: list[str]
    allow_credentials: bool


@dataclass(frozen=True)
class ApiVars:
    """`api` of modules/stack."""

    name: str
    description: str
    endpoint_type: str
    routes: list[RouteVars]
    preflights: list[PreflightVars]
    error_cors: ErrorCorsVars | None


@dataclass(frozen=True)
class DomainVars:
    """`domain` of modules/stack (modules/domain)."""

    name: str
    base_path: str
    endpoint_type: str
    security_policy: str
    certificate_arn: str | None
    create_certificate: bool
    hosted_zone: str | None


@dataclass(frozen=True)
class StageVars:
    """`stage` of modules/stack (the API Gateway stage settings)."""

    variables: dict[str, str]
    throttling_burst_limit: int
    throttling_rate_limit: float
    logging_level: str
    metrics_enabled: bool
    data_trace_enabled: bool
    xray_tracing_enabled: bool
    enable_access_logs: bool
    access_log_retention_days: int


@dataclass(frozen=True)
class TfVars:
    """Everything `terraform.tfvars.json` holds: the variables of modules/stack.

    Attribute names are the module's (checked against modules/stack/variables.tf by
    tests/test_tfvars_contract.py: Terraform drops unknown object attributes silently).
    """

    region: str
    stage_name: str
    tags: dict[str, str]
    function: FunctionVars
    api: ApiVars
    stage: StageVars
    domain: DomainVars | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n"


def tfvars(stage: Stage, package: PackageRef) -> TfVars:
    """The values handed to Terraform, typed in the shape modules/stack declares."""
    cfg = stage.config
    fn = cfg.function
    routes = []
    for route in cfg.api.routes:
        params: dict[str, bool] = {}
        for kind, names in (
            ("header", route.parameters.headers),
            ("querystring", route.parameters.querystrings),
            ("path", route.parameters.paths),
        ):
            for pname, required in names.items():
                params[f"method.request.{kind}.{pname}"] = required
        for pname in _path_params(route.path):
            params.setdefault(f"method.request.path.{pname}", True)
        integ = route.integration
        text = request_template(stage, integ.request_template) if integ.type == "AWS" else None
        templates = {ctype: text for ctype in integ.content_types} if text is not None else {}
        responses = [ResponseVars("200", "", {})]
        for err in route.errors:
            responses.append(ResponseVars(
                str(err.status), err.pattern, {"application/json": err.template} if err.template else {}
            ))
        routes.append(
            RouteVars(
                method=route.method,
                path=route.path,
                request_parameters=params,
                integration_type=integ.type,
                request_templates=templates,
                passthrough_behavior=integ.passthrough_behavior,
                timeout_milliseconds=integ.timeout_milliseconds,
                responses=responses if integ.type == "AWS" else [],
                cors=_route_cors(cfg.api.route_cors(route)),
            )
        )
    domain = cfg.domain
    return TfVars(
        region=cfg.region,
        stage_name=stage.stage_name,
        tags={**cfg.tags, "orch-stage": stage.name},
        function=FunctionVars(
            name=stage.function_name,
            handler=fn.handler,
            runtime=fn.runtime,
            memory_size=fn.memory_size,
            timeout=fn.timeout,
            environment=dict(fn.environment),
            log_retention_days=fn.log_retention_days,
            reserved_concurrency=fn.reserved_concurrency,
            package=PackageVars(package.filename, package.s3_bucket, package.s3_key, package.sha256_b64),
        ),
        api=ApiVars(
            name=stage.api_name,
            description=cfg.api.description,
            endpoint_type=cfg.api.endpoint_type,
            routes=routes,
            preflights=[_preflight(path, cors) for path, cors in cfg.api.preflights().items()],
            error_cors=_error_cors(cfg.api.error_cors()),
        ),
        stage=StageVars(
            variables=dict(cfg.stage.variables),
            throttling_burst_limit=cfg.stage.throttling.burst_limit,
            throttling_rate_limit=cfg.stage.throttling.rate_limit,
            logging_level=cfg.stage.logging.level,
            metrics_enabled=cfg.stage.logging.metrics,
            data_trace_enabled=cfg.stage.logging.data_trace,
            xray_tracing_enabled=cfg.stage.tracing,
            enable_access_logs=cfg.stage.logging.access_logs,
            access_log_retention_days=fn.log_retention_days,
        ),
        domain=None if domain is None else DomainVars(**domain.model_dump()),
    )


def allowed_methods(cors: Cors) -> list[str]:
    """Access-Control-Allow-Methods of a preflight: the configured methods (ANY as every
    method) and OPTIONS, in API Gateway console order."""
    methods = set(cors.allow_methods or ())
    if "ANY" in methods:
        methods |= set(ALL_METHODS)
    methods.discard("ANY")
    methods.add("OPTIONS")
    return sorted(methods)


def _route_cors(cors: Cors | None) -> RouteCorsVars | None:
    if cors is None:
        return None
    return RouteCorsVars(cors.allow_origin, list(cors.expose_headers), cors.allow_credentials)


def _preflight(path: str, cors: Cors) -> PreflightVars:
    return PreflightVars(
        path=path,
        allow_origin=cors.allow_origin,
        allow_methods=allowed_methods(cors),
        allow_headers=list(cors.allow_headers),
        expose_headers=list(cors.expose_headers),
        max_age=cors.max_age,
        allow_credentials=cors.allow_credentials,
    )


def _error_cors(cors: Cors | None) -> ErrorCorsVars | None:
    if cors is None:
        return None
    return ErrorCorsVars(cors.allow_origin, list(cors.allow_headers), list(cors.expose_headers),
                         cors.allow_credentials)


def _path_params(path: str) -> list[str]:
    return [part.strip("{}+") for part in path.split("/") if part.startswith("{")]


def _environment(project_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_search_path(project_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def state_backend(stage: Stage) -> dict[str, Any]:
    """The stage's backend settings with orch's defaults filled in: for S3, `key`
    (orch/<project>/<stage>/terraform.tfstate, so stages never share state) and `region`
    (the stage's). In the sandbox the bucket lives in the emulator's S3."""
    backend = stage.config.backend.model_dump()
    if backend["type"] == "s3":
        backend["key"] = backend["key"] or f"orch/{stage.config.project}/{stage.name}/terraform.tfstate"
        backend["region"] = backend["region"] or stage.config.region
    return backend


def render(stage: Stage, target: Target, package: PackageRef) -> dict[str, str]:
    """Render every file of the working folder in memory (name -> text); nothing is written.

    `backend.tf` and `main.tf` come from Jinja2 templates a project may override;
    `terraform.tfvars.json` is TfVars dumped as JSON. Raises ConfigError naming the template
    when one refers to an undefined value or has a syntax error.
    """
    folder = work_dir(stage.project_dir, stage.name, target)
    modules_source = os.path.relpath(modules_dir(stage.project_dir) / "stack", folder)
    if not modules_source.startswith("."):
        modules_source = "./" + modules_source
    values = tfvars(stage, package)
    data = values.as_dict()
    backend = state_backend(stage)
    sandbox = None
    if target.sandbox:
        sandbox = {
            "endpoint": target.endpoint,
            "access_key": SANDBOX_ACCESS_KEY_ID,
            "secret_key": SANDBOX_SECRET_ACCESS_KEY,
        }
    context = {
        "region": data["region"],
        "stage_name": data["stage_name"],
        "tags": data["tags"],
        "function": data["function"],
        "api": data["api"],
        "stage_settings": data["stage"],
        "domain": data["domain"],
        "stage": stage.name,
        "target": target.name,
        "backend": backend,
        "sandbox": sandbox,
        "sandbox_services": SANDBOX_SERVICES,
        "modules_source": modules_source,
        "outputs": ROOT_OUTPUTS,
        "max_retries": PROVIDER_MAX_RETRIES,
    }
    env = _environment(stage.project_dir)
    files: dict[str, str] = {}
    for name in TEMPLATES:
        template_name = f"{name}.j2"
        try:
            template = env.get_template(template_name)
            files[name] = template.render(context)
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"template {_where(env, template_name)}: {exc.message}.",
                hint="The template refers to a value orch does not provide; "
                "see docs/design.md for the values a template can use.",
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"template {exc.filename or template_name}:{exc.lineno}: {exc.message}."
            ) from None
    files[TFVARS_FILE] = values.to_json()
    return files


def _where(env: jinja2.Environment, name: str) -> str:
    try:
        _, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        return filename or name
    except jinja2.TemplateNotFound:
        return name


def write(files: dict[str, str], folder: Path) -> list[str]:
    """Write rendered files atomically (temp file + rename); return the names that changed."""
    folder.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, content in files.items():
        path = folder / name
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        changed.append(name)
    return changed
